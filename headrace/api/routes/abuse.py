"""`/admin/v1/abuse/suspensions`: keys suspended by abuse signals or by hand; lift them.

A suspended key gets 403 `key_suspended` on every replica within `key_cache_ttl_s`; the
replica that suspends or lifts it applies the change from its next request.
"""

from __future__ import annotations

from fastapi import APIRouter

from headrace.admission.auth import Authenticator
from headrace.api.routes.review import unix
from headrace.api.state import Admin, AppState, Auditor, State
from headrace.control import suspensions as suspension_service
from headrace.protocol.oversight import (
    CreateSuspension,
    KeySignals,
    Suspension,
    SuspensionLifted,
    SuspensionList,
)

router = APIRouter(prefix="/admin/v1/abuse", tags=["admin"])


@router.get("/suspensions")
async def list_suspensions(state: State, _: Admin, key_id: str | None = None) -> SuspensionList:
    """Suspensions in force (one key's with `key_id`, plus this replica's signals for it)."""
    await state.abuse.flush()  # this replica's automatic suspensions being written
    rows = await suspension_service.list_active(state.db, api_key_id=key_id)
    signals = None
    if key_id is not None:
        monitor = state.abuse.monitor
        signals = KeySignals(
            spike_ratio=round(monitor.spike_ratio(key_id), 3), block_rate=monitor.block_rate(key_id)
        )
    return SuspensionList(data=[_wire(r) for r in rows], signals=signals)


@router.post("/suspensions")
async def suspend_key(body: CreateSuspension, state: State, actor: Auditor) -> Suspension:
    """Suspend a key by hand for `duration_s` seconds."""
    row = await suspension_service.suspend(
        state.db, body.key_id, duration_s=body.duration_s, note=body.note, actor=actor
    )
    _forget(state, body.key_id)
    return _wire(row)


@router.delete("/suspensions/{key_id}")
async def lift_suspension(key_id: str, state: State, actor: Auditor) -> SuspensionLifted:
    await state.abuse.flush()
    lifted = await suspension_service.lift(state.db, key_id, actor=actor)
    _forget(state, key_id)
    return SuspensionLifted(id=key_id, deleted=bool(lifted), lifted=[_wire(r) for r in lifted])


def _forget(state: AppState, key_id: str) -> None:
    if isinstance(state.auth, Authenticator):
        state.auth.release(key_id)


def _wire(v: suspension_service.SuspensionView) -> Suspension:
    return Suspension(
        id=v.id,
        api_key_id=v.api_key_id,
        reason=v.reason,
        detail=v.detail,
        created_at=unix(v.created_at),
        until=unix(v.until),
        created_by=v.created_by,
        lifted_at=unix(v.lifted_at) if v.lifted_at else None,
        lifted_by=v.lifted_by,
    )
