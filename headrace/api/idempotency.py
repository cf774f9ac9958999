"""The admit stage's first step, `Idempotency-Key`, around the generation POSTs.

Raw ASGI around the routes rather than a call inside them: a replay must be the bytes the
first request sent (a whole SSE stream included), and it must skip everything after this
point: no rate-limit tokens, no engine, no usage event. A request without the header, or
whose key does not authenticate (the route then answers 401), passes straight through.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headrace.admission.idempotency import (
    Claimed,
    Recorder,
    Replay,
    StoredResponse,
    fingerprint,
    scoped_key,
)
from headrace.api.middleware import json_body, read_body
from headrace.api.state import AppState
from headrace.errors import HeadraceError, InvalidRequestError

#: Where this stage leaves the principal it authenticated, in the request's scope state:
#: the proxy lane then does not authenticate the same header a second time.
PRINCIPAL_KEY = "idempotency_principal"
PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"})
HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 255


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", ()))
        state: AppState | None = _state(scope) if HEADER in headers else None
        if state is None or not state.settings.idempotency.enabled:
            await self.app(scope, receive, send)
            return
        key = headers[HEADER].decode("latin-1").strip()
        if not 0 < len(key) <= MAX_KEY_LENGTH:
            await _send(send, _error(_bad_key()))
            return
        try:
            authorization = headers.get(b"authorization", b"").decode("latin-1") or None
            principal = await state.auth.authenticate(authorization)
        except HeadraceError:  # the route answers 401 as it always does
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})[PRINCIPAL_KEY] = principal
        body, receive = await read_body(scope, receive)
        try:
            outcome = await state.idempotency.begin(
                scoped_key(principal.project_id, key),
                fingerprint(scope["method"], scope["path"], body, json_body(scope, body)),
            )
        except HeadraceError as exc:
            await _send(send, _error(exc))
            return
        if isinstance(outcome, Replay):
            await _send(send, outcome.response, replayed=True)
            return
        await self._run_and_record(scope, receive, send, state, outcome)

    async def _run_and_record(
        self, scope: Scope, receive: Receive, send: Send, state: AppState, claim: Claimed
    ) -> None:
        recorder = Recorder(max_bytes=state.settings.idempotency.max_response_bytes)

        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                recorder.start(message["status"], message["headers"])
            elif message["type"] == "http.response.body":
                recorder.body(message.get("body", b""), more=message.get("more_body", False))
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            # A request cancelled by its client still frees (or stores) its key.
            await state.idempotency.finish(claim, recorder.stored())


def _state(scope: Scope) -> AppState | None:
    """The app's state for a generation POST, else None (not ours to handle)."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in PATHS:
        return None
    state: AppState = scope["app"].state.headrace
    return state


def _bad_key() -> InvalidRequestError:
    return InvalidRequestError(
        f"The Idempotency-Key header must be 1 to {MAX_KEY_LENGTH} characters.",
        param="Idempotency-Key",
    )


def _error(exc: HeadraceError) -> StoredResponse:
    return StoredResponse(
        exc.status_code, (("content-type", "application/json"),), orjson.dumps(exc.envelope())
    )


async def _send(send: Send, response: StoredResponse, *, replayed: bool = False) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
