"""What the request handlers share, built once by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request

from headrace.admission.admin_auth import AdminAuthenticator, Operator
from headrace.admission.auth import Authenticator, Principal
from headrace.admission.idempotency import IdempotencyKeys
from headrace.admission.limiter import Limiter
from headrace.admission.worker_auth import StaticKeyAuthenticator
from headrace.config import Settings
from headrace.metering.ledger import UsageLedger
from headrace.observability.request import RequestRecord
from headrace.observability.telemetry import Telemetry
from headrace.routing.registry import ModelRegistry
from headrace.storage.database import Database


@dataclass(slots=True)
class AppState:
    settings: Settings
    db: Database
    auth: Authenticator | StaticKeyAuthenticator
    registry: ModelRegistry
    limiter: Limiter
    ledger: UsageLedger
    admin_auth: AdminAuthenticator
    idempotency: IdempotencyKeys
    telemetry: Telemetry


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.headrace
    return state


async def authenticate(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """The authenticate stage, as a dependency so it runs before the body is validated."""
    principal = await app_state(request).auth.authenticate(authorization)
    record = request_record(request)
    record.project_id, record.org_id = principal.project_id, principal.org_id
    record.mark("auth")
    return principal


def request_record(request: Request) -> RequestRecord:
    """The request's telemetry record, made by the receive stage."""
    record: RequestRecord | None = getattr(request.state, "record", None)
    # Only an app mounted without the receive stage lacks one; record into the void then.
    return record if record is not None else RequestRecord("")


async def authenticate_operator(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Operator:
    """Admin-key authentication for the admin and organization APIs."""
    return await app_state(request).admin_auth.authenticate(authorization)


State = Annotated[AppState, Depends(app_state)]
Caller = Annotated[Principal, Depends(authenticate)]
Admin = Annotated[Operator, Depends(authenticate_operator)]
Record = Annotated[RequestRecord, Depends(request_record)]
