"""The proxy lane: generation requests for models on deployments elsewhere skip the web
framework's routing.

In front of a fast upstream a gateway's own cost is all there is, and FastAPI's routing,
dependency resolution and request objects were a third of it (docs/benchmarks.md,
"Gateway proxying an instant upstream"). A POST to a generation path whose JSON body names
a remote model takes this raw-ASGI lane instead: the same stages as the routes
(authenticate, validate, the route's checks, then `proxy.py`), the same errors in the same
envelope. Everything else (local models, bodies that are not JSON) goes on to the routes,
which also serve remote models when this lane is not installed.

    receive (middleware.py) -> idempotency -> this lane -> proxy.py
                                                  \\-> FastAPI routes (anything else)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from headrace.admission.auth import Principal
from headrace.api import proxy
from headrace.api.chat_request import priority, refuse_unsupported
from headrace.api.errors import error_response, validation_error
from headrace.api.idempotency import PRINCIPAL_KEY
from headrace.api.internal import SCOPE_KEY, InternalCall
from headrace.api.middleware import json_body, read_body
from headrace.api.routes.completions import refuse_unsupported_completion
from headrace.api.state import AppState
from headrace.errors import HeadraceError, unexpected_error
from headrace.observability.logging import get_logger
from headrace.observability.metrics import rejection_reason
from headrace.observability.request import RequestRecord
from headrace.protocol.chat import ChatCompletionRequest
from headrace.protocol.completions import CompletionRequest
from headrace.protocol.embeddings import EmbeddingRequest
from headrace.routing.affinity import HEADER as AFFINITY_HEADER
from headrace.routing.registry import RemoteModel

log = get_logger("headrace.api")

# (state, caller, record, model, validated body, the JSON it was validated from, scope,
# the batch line behind an in-process request)
Handler = Callable[
    [
        AppState,
        Principal,
        RequestRecord,
        RemoteModel,
        Any,
        dict[str, Any],
        Scope,
        InternalCall | None,
    ],
    Awaitable[Response],
]


_AFFINITY = AFFINITY_HEADER.lower().encode()


async def _chat(
    state: AppState,
    caller: Principal,
    record: RequestRecord,
    model: RemoteModel,
    body: ChatCompletionRequest,
    received: dict[str, Any],
    scope: Scope,
    internal: InternalCall | None,
) -> Response:
    affinity = _header(scope, _AFFINITY)
    batch = internal is not None or priority(body) > 0
    return await proxy.proxy_chat(
        state,
        caller,
        record,
        model,
        body,
        affinity=affinity,
        batch=batch,
        call=internal,
        received=received,
    )


def _batch_by_origin(run: Callable[..., Awaitable[Response]]) -> Handler:
    """A proxy function for requests whose only priority is their origin: batch lines
    (in-process calls) are batch work, HTTP requests interactive."""

    async def handle(
        state: AppState,
        caller: Principal,
        record: RequestRecord,
        model: RemoteModel,
        body: Any,
        received: dict[str, Any],
        scope: Scope,
        internal: InternalCall | None,
    ) -> Response:
        return await run(
            state,
            caller,
            record,
            model,
            body,
            batch=internal is not None,
            call=internal,
            received=received,
        )

    return handle


@dataclass(frozen=True, slots=True)
class _Lane:
    path: str  # the route's template, for the request's metrics label
    request: type[BaseModel]
    check: Callable[[Any], None]  # the route's own refusals, before anything is spent
    handler: Handler
    streams: bool  # whether the request has a `stream` flag


_LANES = {
    lane.path: lane
    for lane in (
        _Lane(
            "/v1/chat/completions",
            ChatCompletionRequest,
            refuse_unsupported,
            _chat,
            streams=True,
        ),
        _Lane(
            "/v1/completions",
            CompletionRequest,
            refuse_unsupported_completion,
            _batch_by_origin(proxy.proxy_completion),
            streams=True,
        ),
        _Lane(
            "/v1/embeddings",
            EmbeddingRequest,
            lambda body: None,
            _batch_by_origin(proxy.proxy_embeddings),
            streams=False,
        ),
    )
}


class ProxyLane:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = _LANES.get(scope["path"]) if scope["type"] == "http" else None
        if lane is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body, receive = await read_body(scope, receive)
        state: AppState = scope["app"].state.headrace
        parsed = _json_object(json_body(scope, body))
        model = state.registry.remote(parsed["model"]) if parsed is not None else None
        if parsed is None or model is None:
            await self.app(scope, receive, send)  # not ours: a local model, or not JSON
            return
        scope["route"] = lane  # its `path` names the route in metrics and the access log
        response = await _serve(lane, state, scope, parsed, model)
        await response(scope, receive, send)


async def _serve(
    lane: _Lane, state: AppState, scope: Scope, parsed: dict[str, Any], model: RemoteModel
) -> Response:
    """What the route would have answered: the proxied response, or an error."""
    scope_state = scope.setdefault("state", {})
    record: RequestRecord = scope_state.get("record") or RequestRecord("")
    internal = scope_state.get(SCOPE_KEY)
    internal = internal if isinstance(internal, InternalCall) else None
    try:
        caller = await _authenticate(state, scope, record, internal)
        body = lane.request.model_validate(parsed)
        if lane.streams:
            record.stream = bool(getattr(body, "stream", False))
        lane.check(body)
        record.mark("validate")
        caller.check_model(model.settings.name)
        record.model = model.settings.name
        return await lane.handler(state, caller, record, model, body, parsed, scope, internal)
    except HeadraceError as exc:
        record.rejection = rejection_reason(exc) or record.rejection
        return error_response(exc)
    except ValidationError as exc:
        record.rejection = "validation"
        return error_response(validation_error(RequestValidationError(exc.errors())))
    except Exception:
        log.exception("unhandled_error", path=scope["path"])
        return error_response(unexpected_error())


async def _authenticate(
    state: AppState, scope: Scope, record: RequestRecord, internal: InternalCall | None
) -> Principal:
    """As the routes' `authenticate` dependency does."""
    if internal is not None:  # a batch line: it runs as the batch's key
        principal = internal.principal
    elif PRINCIPAL_KEY in scope["state"]:  # the idempotency stage authenticated this header
        principal = scope["state"][PRINCIPAL_KEY]
    else:
        principal = await state.auth.authenticate(_header(scope, b"authorization"))
    record.project_id, record.org_id = principal.project_id, principal.org_id
    record.tier = principal.tier
    record.mark("auth")
    return principal


def _header(scope: Scope, name: bytes) -> str | None:
    value = next((v for k, v in scope["headers"] if k == name), None)
    return value.decode("latin-1") if value is not None else None


def _json_object(parsed: Any) -> dict[str, Any] | None:
    """The body, if it is a JSON object naming a model."""
    return parsed if isinstance(parsed, dict) and isinstance(parsed.get("model"), str) else None
