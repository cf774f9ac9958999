"""`headrace usage`: the usage ledger as a table, per day or hour."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from headrace.config import Settings
from headrace.control import usage as usage_service
from headrace.storage.database import Database

GROUPS = {"model": "model", "project": "project_id", "key": "api_key_id"}


def show_usage(
    settings: Settings, console: Console, *, days: int, bucket: str, group_by: list[str]
) -> None:
    """Print one row per bucket (and group) of the last `days` days."""
    width = usage_service.WIDTHS[bucket]
    # Whole buckets up to the current one; at most one page's worth (168 hours, 31 days).
    limit = min(usage_service.USAGE_PAGE[bucket][1], days * 86_400 // width + 1)
    start = (int(time.time()) // width - limit + 1) * width
    fields = [GROUPS[g] for g in group_by]

    async def fetch() -> usage_service.Page:
        db = Database(settings.effective_database_url)
        await db.migrate()
        try:
            q = usage_service.Query(start_time=start, bucket_width=bucket, group_by=fields)
            return await usage_service.usage_page(
                db, q, allowed_groups=fields, page_sizes=(limit, limit)
            )
        finally:
            await db.close()

    page = asyncio.run(fetch())
    table = Table(title=f"Usage, last {days} day(s), per {bucket}")
    for column in ("from", *group_by, "requests", "input", "cached", "output", "cost (USD)"):
        table.add_column(column, justify="left" if column in ("from", *group_by) else "right")
    fmt = "%Y-%m-%d" if bucket == "1d" else "%Y-%m-%d %H:%M"
    totals = [0, 0, 0, 0, 0]
    for b in page.buckets:
        for r in b.results:
            values = [
                r.requests,
                r.input_tokens,
                r.cached_tokens,
                r.output_tokens,
                r.input_cost_nanousd + r.output_cost_nanousd,
            ]
            totals = [t + v for t, v in zip(totals, values, strict=True)]
            table.add_row(
                datetime.fromtimestamp(b.start_time, UTC).strftime(fmt),
                *(r.group.get(f, "") for f in fields),
                *(f"{v:,}" for v in values[:4]),
                f"{values[4] / 1e9:.6f}",
            )
    table.add_section()
    table.add_row(
        "total", *("" for _ in fields), *(f"{v:,}" for v in totals[:4]), f"{totals[4] / 1e9:.6f}"
    )
    console.print(table)
