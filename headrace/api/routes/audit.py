"""`/admin/v1/audit-events`: the audit log, queried in pages or exported as JSON Lines.

Read only: the log has no update or delete route, and the database refuses both.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from headrace.api.state import Admin, State
from headrace.control import audit as audit_service
from headrace.protocol.oversight import AuditEvent, AuditEventList
from headrace.storage.audit import Filter, as_dict

router = APIRouter(prefix="/admin/v1", tags=["admin"])
JSONL = "application/x-ndjson"


async def _filter(
    actor: str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: Annotated[int | None, Query(description="Unix seconds, inclusive.")] = None,
    until: Annotated[int | None, Query(description="Unix seconds, exclusive.")] = None,
    after: Annotated[int | None, Query(description="An event id: the events after it.")] = None,
) -> Filter:
    return audit_service.build_filter(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        since=since,
        until=until,
        after=after,
    )


Where = Annotated[Filter, Depends(_filter)]


@router.get("/audit-events")
async def list_audit_events(
    state: State, _: Admin, where: Where, limit: int = 100
) -> AuditEventList:
    """Events oldest first; `after=<last_id>` pages on."""
    page = await audit_service.page(state.db, where, limit=limit)
    data = [AuditEvent.model_validate(as_dict(e)) for e in page.events]
    return AuditEventList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=page.has_more,
    )


@router.get("/audit-events/export", response_model=None)
async def export_audit_events(state: State, _: Admin, where: Where) -> StreamingResponse:
    """Every matching event, one JSON object per line, oldest first."""
    return StreamingResponse(
        audit_service.export(state.db, where),
        media_type=JSONL,
        headers={"content-disposition": 'attachment; filename="audit-events.jsonl"'},
    )
