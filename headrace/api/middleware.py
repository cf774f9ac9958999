"""The receive stage: request id, body size limit, processing time, and the request's
telemetry record, observed (metrics, trace, access log) once the response has ended.

Raw ASGI rather than Starlette's BaseHTTPMiddleware: it sits on every request, and the
wrapper costs a task and a copy per request.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headrace.api.drain import Drain
from headrace.api.sse import SHUTTING_DOWN
from headrace.errors import (
    HeadraceError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    unexpected_error,
)
from headrace.ids import random_hex
from headrace.observability.request import RequestRecord
from headrace.observability.telemetry import Telemetry

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Where the receive stage leaves the body it read, in the request's scope state.
BODY_KEY = "received_body"
#: Where `json_body` leaves the body parsed, for the next stage that needs it.
PARSED_KEY = "received_json"
#: `json_body`'s answer for a body that is not JSON.
NOT_JSON = object()


def new_request_id() -> str:
    return f"req_{random_hex(16)}"


class ReceiveMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        telemetry: Telemetry,
        drain: Drain | None = None,
        uploads: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.drain = drain
        self.max_body_bytes = max_body_bytes
        self.telemetry = telemetry
        # path -> its own body limit: uploads, streamed to the route rather than read here.
        self.uploads = uploads or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        client_id = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = client_id if _VALID_REQUEST_ID.match(client_id) else new_request_id()
        record = RequestRecord(request_id, method=scope["method"], path=scope["path"])
        record.continue_trace(headers.get(b"traceparent", b"").decode("latin-1"))
        scope.setdefault("state", {}).update(request_id=request_id, record=record)
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                record.response_started_s = record.now_s()
                elapsed_ms = int((time.perf_counter() - started) * 1000)
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                    (b"openai-processing-ms", str(elapsed_ms).encode()),
                ]
            await send(message)

        try:
            if self.drain is not None and self.drain.draining:
                # A request on a kept-alive connection after SIGTERM: elsewhere, please.
                record.rejection = "overload"
                raise SHUTTING_DOWN
            upload_limit = self.uploads.get(scope["path"]) if scope["method"] == "POST" else None
            body_receive = (
                await self._bounded_body(scope, headers, receive)
                if upload_limit is None
                else _streamed_body(headers, receive, upload_limit)
            )
        except PayloadTooLargeError as exc:
            record.rejection = "validation"
            await _send_error(send_with_headers, exc)
        except ServiceUnavailableError as exc:
            await _send_error(send_with_headers, exc)
        else:
            record.mark("receive")
            try:
                await self.app(scope, body_receive, send_with_headers)
            except Exception:
                if not status:  # as FastAPI's error stage answers, for the stages before it
                    await _send_error(send_with_headers, unexpected_error())
                raise
        finally:
            route = scope.get("route")
            # The template, not the path: `/v1/models/{model}` is one label, not one per model.
            record.route = getattr(route, "path", "") or "unmatched"
            record.end(status or 500)  # no response started: an unhandled error
            self.telemetry.observe(record)

    async def _bounded_body(
        self, scope: Scope, headers: dict[bytes, bytes], receive: Receive
    ) -> Receive:
        """Read the whole body up front, refusing it as soon as it passes the limit; it is
        also left in the scope's state for the stages that need it before the route."""
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _too_large(self.max_body_bytes)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # A disconnect before the body finished: hand it on as it is.
                return _replay([message])
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _too_large(self.max_body_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        scope["state"][BODY_KEY] = body
        return _replay([{"type": "http.request", "body": body, "more_body": False}], receive)


def _streamed_body(headers: dict[bytes, bytes], receive: Receive, limit: int) -> Receive:
    """The body as it arrives, refused (413, raised to the route) once it passes `limit`."""
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    size = 0

    async def bounded() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise _too_large(limit)
        return message

    return bounded


async def read_body(scope: Scope, receive: Receive) -> tuple[bytes, Receive]:
    """The whole body, and a `receive` that hands it on again, then the client's own
    messages (a disconnect that came first too): for the stages after this one that need
    the body before the route does. The receive stage has read it already: it is taken
    from the scope's state, and `receive` is passed on as it is."""
    body = scope.get("state", {}).get(BODY_KEY)
    if isinstance(body, bytes):
        return body, receive
    chunks: list[bytes] = []
    early: list[Message] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            early.append(message)
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    return body, _replay(
        [{"type": "http.request", "body": body, "more_body": False}, *early], receive
    )


def json_body(scope: Scope, body: bytes) -> Any:
    """`body` (the request's, from `read_body`) parsed as JSON, or `NOT_JSON`: parsed once
    for all the stages that need it (the idempotency key's fingerprint, the proxy lane)."""
    state = scope.setdefault("state", {})
    parsed = state.get(PARSED_KEY, _UNPARSED)
    if parsed is _UNPARSED:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = NOT_JSON
        state[PARSED_KEY] = parsed
    return parsed


_UNPARSED = object()


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is None:
            return {"type": "http.disconnect"}
        return await then()  # after the body: wait for the client to go away

    return receive


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"Request body too large: the limit is {limit} bytes.")


async def _send_error(send: Send, exc: HeadraceError) -> None:
    body = orjson.dumps(exc.envelope())
    await send(
        {
            "type": "http.response.start",
            "status": exc.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
