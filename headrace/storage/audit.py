"""The audit log: who did what to which object, when and from where; append-only.

    await audit.record(session, actor, "key.create", Target("api_key", key.id), after=...)

Call it inside the transaction that makes the change, so an action cannot happen without its
record, nor a record outlive a rolled-back action. Secrets never reach a row: every field
whose name says secret, hash, pepper, password or key value is replaced before writing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from headrace.storage.schema import AuditEvent
from headrace.storage.tenancy import now

REDACTED = "[redacted]"
# Field names (lower case) whose values are never written to the audit log.
SECRET_FIELDS = frozenset(
    {"secret", "value", "key", "key_hash", "hash", "pepper", "key_pepper", "password", "token"}
)
_SECRET_PARTS = ("secret", "hash", "pepper", "password", "encryption_key")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted and from where: an admin credential id, `cli:<os user>` or `system`."""

    name: str
    source_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


SYSTEM = Actor("system")


@dataclass(frozen=True, slots=True)
class Target:
    type: str  # organization | project | api_key | limits | review_item | key_suspension ...
    id: str


@dataclass(frozen=True, slots=True)
class Filter:
    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    after_id: int = 0  # the paging cursor: events with larger ids


def scrub(value: object) -> object:
    """`value` as JSON-ready data with every secret-named field redacted, recursively."""
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED if _is_secret(str(k)) and v is not None else scrub(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_FIELDS or any(part in lowered for part in _SECRET_PARTS)


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    target: Target,
    *,
    before: Mapping[str, object] | None = None,
    after: Mapping[str, object] | None = None,
) -> AuditEvent:
    """Append one event in `session`'s transaction (flushed, so its id is known)."""
    event = AuditEvent(
        created_at=now(),
        actor=actor.name[:200],
        action=action,
        target_type=target.type,
        target_id=target.id[:200],
        before=_scrubbed(before),
        after=_scrubbed(after),
        source_ip=actor.source_ip[:64] if actor.source_ip else None,
        user_agent=actor.user_agent[:300] if actor.user_agent else None,
        request_id=actor.request_id[:128] if actor.request_id else None,
    )
    session.add(event)
    await session.flush()
    return event


def _scrubbed(value: Mapping[str, object] | None) -> dict[str, object] | None:
    if value is None:
        return None
    cleaned = scrub(value)
    assert isinstance(cleaned, dict)  # a mapping scrubs to a dict
    return cleaned


async def query(session: AsyncSession, where: Filter, *, limit: int) -> list[AuditEvent]:
    """Events matching `where`, oldest first, at most `limit`, after the cursor."""
    stmt = select(AuditEvent).where(AuditEvent.id > where.after_id)
    if where.actor is not None:
        stmt = stmt.where(AuditEvent.actor == where.actor)
    if where.action is not None:
        stmt = stmt.where(AuditEvent.action == where.action)
    if where.target_type is not None:
        stmt = stmt.where(AuditEvent.target_type == where.target_type)
    if where.target_id is not None:
        stmt = stmt.where(AuditEvent.target_id == where.target_id)
    if where.since is not None:
        stmt = stmt.where(AuditEvent.created_at >= where.since)
    if where.until is not None:
        stmt = stmt.where(AuditEvent.created_at < where.until)
    return list(await session.scalars(stmt.order_by(AuditEvent.id).limit(limit)))


async def stream(
    session: AsyncSession, where: Filter, *, batch: int = 500
) -> AsyncIterator[AuditEvent]:
    """Every event matching `where`, oldest first, read `batch` rows at a time (exports)."""
    cursor = where.after_id
    while True:
        page = await query(session, replace(where, after_id=cursor), limit=batch)
        for event in page:
            yield event
        if len(page) < batch:
            return
        cursor = page[-1].id


def as_dict(event: AuditEvent) -> dict[str, object]:
    """An event as JSON-ready data (the admin API's and the export's shape)."""
    # SQLite hands back naive datetimes; they were stored as UTC.
    created = event.created_at if event.created_at.tzinfo else event.created_at.replace(tzinfo=UTC)
    return {
        "object": "audit_event",
        "id": event.id,
        "created_at": int(created.timestamp()),
        "actor": event.actor,
        "action": event.action,
        "target": {"type": event.target_type, "id": event.target_id},
        "before": event.before,
        "after": event.after,
        "source": {
            "ip": event.source_ip,
            "user_agent": event.user_agent,
            "request_id": event.request_id,
        },
    }
