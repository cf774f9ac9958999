"""Reading the usage ledger as pages of time buckets, for the admin API and the CLI."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from headrace.errors import InvalidRequestError
from headrace.storage import usage as usage_rows
from headrace.storage.database import Database
from headrace.storage.usage import GroupField, UsageTotals

WIDTHS = {"1m": 60, "1h": 3_600, "1d": 86_400}
# Buckets per page: (default, max), as OpenAI documents them.
USAGE_PAGE = {"1m": (60, 1_440), "1h": (24, 168), "1d": (7, 31)}
COSTS_PAGE = (7, 180)
_PAGE_PREFIX = "page_"
_GROUPS: tuple[GroupField, ...] = ("project_id", "api_key_id", "model")


@dataclass(frozen=True, slots=True)
class Bucket:
    start_time: int
    end_time: int
    results: list[UsageTotals] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Page:
    buckets: list[Bucket]
    next_page: str | None


@dataclass(frozen=True, slots=True)
class Query:
    """One page's worth of question, checked: 400 naming the bad parameter otherwise."""

    start_time: int
    end_time: int | None = None
    bucket_width: str = "1d"
    group_by: Sequence[str] = ()
    project_ids: Sequence[str] = ()
    api_key_ids: Sequence[str] = ()
    models: Sequence[str] = ()
    endpoints: Sequence[str] = ()  # which APIs' usage: all when empty
    limit: int | None = None
    page: str | None = None


async def usage_page(
    db: Database, q: Query, *, allowed_groups: Sequence[str], page_sizes: tuple[int, int]
) -> Page:
    """Buckets of `q.bucket_width` from the page's start, empty ones included, as OpenAI."""
    if q.bucket_width not in WIDTHS:
        raise InvalidRequestError(
            f"Invalid bucket_width {q.bucket_width!r}: use one of {sorted(WIDTHS)}.",
            param="bucket_width",
        )
    width = WIDTHS[q.bucket_width]
    default, most = page_sizes
    limit = default if q.limit is None else q.limit
    if not 1 <= limit <= most:
        raise InvalidRequestError(f"'limit' must be between 1 and {most}.", param="limit")
    for g in q.group_by:
        if g not in allowed_groups:
            raise InvalidRequestError(
                f"Invalid group_by {g!r}: use any of {list(allowed_groups)}.", param="group_by"
            )
    if q.start_time < 0:
        raise InvalidRequestError(
            "'start_time' must be a Unix time in seconds.", param="start_time"
        )
    end = q.end_time if q.end_time is not None else int(time.time()) + 1
    if end <= q.start_time:
        raise InvalidRequestError("'end_time' must be after 'start_time'.", param="end_time")
    start = _page_start(q)
    page_end = min(end, start + width * limit)
    # Costs by line item ("<model>, input") need the model's sums.
    groups = [g for g in _GROUPS if g in q.group_by or (g == "model" and "line_item" in q.group_by)]
    async with db.session() as session:
        rows = await usage_rows.totals(
            session,
            start=start,
            end=page_end,
            width_s=width,
            group_by=groups,
            project_ids=q.project_ids,
            api_key_ids=q.api_key_ids,
            models=q.models,
            endpoints=q.endpoints,
        )
    buckets = [Bucket(s, min(s + width, page_end)) for s in range(start, page_end, width)]
    for row in rows:
        buckets[row.bucket].results.append(row)
    return Page(buckets, f"{_PAGE_PREFIX}{page_end}" if page_end < end else None)


def _page_start(q: Query) -> int:
    if q.page is None:
        return q.start_time
    raw = q.page.removeprefix(_PAGE_PREFIX)
    if not raw.isdigit() or int(raw) < q.start_time:
        raise InvalidRequestError("Invalid 'page' cursor.", param="page")
    return int(raw)
