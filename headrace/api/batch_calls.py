"""How the batch worker runs a line: through this app, in process, as the batch's key.

The worker (batch/worker.py) knows nothing of HTTP; it is handed `BatchCalls(app, db)` as
its `execute`. Each line is one in-process request (api/internal.py) to the batch's
endpoint, so it meets the same validation, limits, metering and engine as any request.
The key that created the batch is read again for each batch run (briefly cached): a key
revoked, expired or suspended since gets its lines refused as its requests would be.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from starlette.types import ASGIApp

from headrace.admission.auth import Principal
from headrace.api.internal import InternalCall, call_app
from headrace.batch.worker import LineCall, LineResponse
from headrace.errors import AuthenticationError, HeadraceError, PermissionDeniedError
from headrace.storage import suspensions, tenancy
from headrace.storage.database import Database


class BatchCalls:
    def __init__(self, app: ASGIApp, db: Database, *, ttl_s: float = 1.0) -> None:
        self._app = app
        self._db = db
        self._ttl = ttl_s
        self._principals: dict[str, tuple[float, Principal | HeadraceError]] = {}

    async def __call__(self, line: LineCall) -> LineResponse:
        principal = await self._principal(line.api_key_id)
        if isinstance(principal, HeadraceError):
            return LineResponse(principal.status_code, line.request_key, principal.envelope())
        response = await call_app(
            self._app, line.endpoint, line.body, InternalCall(principal, line.request_key)
        )
        retry = response.headers.get("retry-after")
        return LineResponse(
            response.status_code,
            response.headers.get("x-request-id", line.request_key),
            response.body,
            retry_after_s=float(retry) if retry and retry.replace(".", "", 1).isdigit() else None,
        )

    async def _principal(self, key_id: str) -> Principal | HeadraceError:
        hit = self._principals.get(key_id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        found = await self._load(key_id)
        self._principals[key_id] = (now, found)
        return found

    async def _load(self, key_id: str) -> Principal | HeadraceError:
        async with self._db.session() as session:
            key = await tenancy.get_api_key(session, key_id)
            project = await tenancy.get_project(session, key.project_id) if key else None
            suspended = await suspensions.suspended_until(session, key_id) if key else None
        if key is None or project is None or key.revoked_at is not None:
            return AuthenticationError("The API key that created this batch has been revoked.")
        now = datetime.now(UTC)
        if key.expires_at is not None and _aware(key.expires_at) <= now:
            return AuthenticationError("The API key that created this batch has expired.")
        if suspended is not None and _aware(suspended) > now:
            return PermissionDeniedError(
                "The API key that created this batch is suspended.", code="key_suspended"
            )
        return Principal(
            key.id,
            project.id,
            project.org_id,
            tuple(key.scopes),
            None if key.allowed_models is None else tuple(key.allowed_models),
        )


def _aware(value: datetime) -> datetime:
    # SQLite returns naive datetimes for timezone-aware columns; they are stored as UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
