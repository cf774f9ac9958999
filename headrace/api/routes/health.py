"""Liveness and readiness probes (no authentication: load balancers call them)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from headrace.api.responses import json_response
from headrace.api.state import State

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: State) -> Response:
    """Models are loaded and the store answers: safe to send traffic."""
    checks = {
        "models": bool(state.registry.all()),
        "database": await state.db.ping(),
    }
    ready = all(checks.values())
    return json_response(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )
