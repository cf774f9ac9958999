"""Reading the audit log: pages for the admin API and the CLI, JSON Lines for exports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from headrace.errors import InvalidRequestError
from headrace.storage import audit
from headrace.storage.database import Database
from headrace.storage.schema import AuditEvent

MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Page:
    events: list[AuditEvent]
    has_more: bool


def build_filter(
    *,
    actor: str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: int | None = None,
    until: int | None = None,
    after: int | None = None,
) -> audit.Filter:
    """A query from the API's parameters (times in Unix seconds); 400 on a bad one."""
    if after is not None and after < 0:
        raise InvalidRequestError("'after' must be an event id (>= 0).", param="after")
    start, end = _time(since, "since"), _time(until, "until")
    if start is not None and end is not None and end <= start:
        raise InvalidRequestError("'until' must be after 'since'.", param="until")
    return audit.Filter(actor, action, target_type, target_id, start, end, after or 0)


async def page(db: Database, where: audit.Filter, *, limit: int = 100) -> Page:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequestError(f"'limit' must be 1 to {MAX_PAGE}.", param="limit")
    async with db.session() as session:
        events = await audit.query(session, where, limit=limit + 1)
    return Page(events[:limit], has_more=len(events) > limit)


async def export(db: Database, where: audit.Filter) -> AsyncIterator[bytes]:
    """Every matching event as one JSON line, oldest first, read in batches."""
    async with db.session() as session:
        async for event in audit.stream(session, where):
            yield orjson.dumps(audit.as_dict(event)) + b"\n"


def _time(seconds: int | None, param: str) -> datetime | None:
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidRequestError(f"'{param}' is not a valid Unix time.", param=param) from exc
