"""What the request handlers share, built once by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request

from headrace.admission.abuse import AbuseGuard
from headrace.admission.admin_auth import AdminAuthenticator, Operator
from headrace.admission.auth import Authenticator, Principal
from headrace.admission.idempotency import IdempotencyKeys
from headrace.admission.limiter import Limiter
from headrace.admission.worker_auth import StaticKeyAuthenticator
from headrace.api.drain import Drain
from headrace.api.internal import InternalCall, internal_call
from headrace.batch.worker import BatchWorker
from headrace.config import Settings
from headrace.control.prompts import PromptResolver
from headrace.metering.ledger import UsageLedger
from headrace.observability.request import RequestRecord
from headrace.observability.telemetry import Telemetry
from headrace.routing.queue_poller import QueuePoller
from headrace.routing.registry import ModelRegistry
from headrace.routing.rollouts import RolloutTable
from headrace.routing.router import Router
from headrace.routing.upstream import UpstreamClient
from headrace.safety.checks import SafetyChecks
from headrace.safety.privacy import PrivacyPolicies
from headrace.storage.audit import Actor
from headrace.storage.batches import Batches
from headrace.storage.conversations import Conversations
from headrace.storage.database import Database
from headrace.storage.encryption import ContentCipher
from headrace.storage.files import Files
from headrace.storage.responses import Responses


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
    # Seals stored content (review items, conversations) when an encryption key is set.
    cipher: ContentCipher
    abuse: AbuseGuard
    # Conversations, stored responses (content sealed by `cipher`) and the prompt registry.
    conversations: Conversations
    responses: Responses
    prompts: PromptResolver
    # Each project's privacy policy (PII mode, injection action), cached.
    privacy: PrivacyPolicies
    # Moderation: the classifier and each project's safety policy, cached.
    safety: SafetyChecks
    # `/v1/files` and `/v1/batches`; the batch worker, when this gateway runs one.
    files: Files
    batches: Batches
    # Models on deployments elsewhere: which deployment serves, and the client to reach it.
    router: Router
    upstream: UpstreamClient
    # Rollout weights between model versions (cached), and the workers' queue depths.
    rollouts: RolloutTable
    queue_poller: QueuePoller
    drain: Drain  # graceful shutdown
    batch_worker: BatchWorker | None = None


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.headrace
    return state


def _record(request: Request) -> RequestRecord:
    """The request's telemetry record, made by the receive stage."""
    record: RequestRecord | None = getattr(request.state, "record", None)
    # Only an app mounted without the receive stage lacks one; record into the void then.
    return record if record is not None else RequestRecord("")


# The dependencies are `async`, however little they do: FastAPI runs a plain `def`
# dependency in a worker thread, a thread hop on every request.


async def app_state(request: Request) -> AppState:
    return _state(request)


async def request_record(request: Request) -> RequestRecord:
    return _record(request)


async def internal(request: Request) -> InternalCall | None:
    return internal_call(request)


async def authenticate(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """The authenticate stage, as a dependency so it runs before the body is validated."""
    internal = internal_call(request)  # a batch line: it runs as the batch's key
    principal = (
        internal.principal
        if internal is not None
        else await _state(request).auth.authenticate(authorization)
    )
    record = _record(request)
    record.project_id, record.org_id = principal.project_id, principal.org_id
    record.tier = principal.tier
    record.mark("auth")
    return principal


async def authenticate_operator(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Operator:
    """Admin-key authentication for the admin and organization APIs."""
    return await _state(request).admin_auth.authenticate(authorization)


async def audit_actor(
    request: Request, operator: Annotated[Operator, Depends(authenticate_operator)]
) -> Actor:
    """The operator behind an admin write, and where it came from, for the audit log."""
    client = request.client
    return Actor(
        operator.credential_id,
        source_ip=client.host if client is not None else None,
        user_agent=request.headers.get("user-agent"),
        request_id=getattr(request.state, "request_id", None),
    )


State = Annotated[AppState, Depends(app_state)]
Caller = Annotated[Principal, Depends(authenticate)]
Admin = Annotated[Operator, Depends(authenticate_operator)]
# An admin write's actor: authenticates like `Admin`, and names the operator and source.
Auditor = Annotated[Actor, Depends(audit_actor)]
Record = Annotated[RequestRecord, Depends(request_record)]
# The batch line behind a request made in process (api/internal.py); None for HTTP.
Internal = Annotated[InternalCall | None, Depends(internal)]
