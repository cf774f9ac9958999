"""Server-Sent Events: the framing, exactly as OpenAI sends it, and the response that
streams a generation's events to the client.

    EventStream(events, account, heartbeat_s=15, drain=drain)

The events are written as the source yields them, in the request's own task: no task or
buffer between them, so a slow client holds the source back. The server joins the writes
of one turn of the event loop (cli/http_protocol.py): events that arrive together (an
upstream's packet) still leave in one system call. One task runs beside the request's:
it listens for the client's leaving and sends the heartbeats. A task and an event per
chunk, then a pump task per stream, were most of a proxied stream's cost
(docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import orjson
from pydantic import BaseModel
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from headrace.api.drain import Drain
from headrace.errors import HeadraceError, ServiceUnavailableError
from headrace.metering.usage import Status
from headrace.observability.logging import get_logger

DONE = b"data: [DONE]\n\n"
MEDIA_TYPE = "text/event-stream"
HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
log = get_logger("headrace.sse")


def event(payload: BaseModel) -> bytes:
    return b"data: " + payload.model_dump_json().encode() + b"\n\n"


def named_event(name: str, payload: BaseModel) -> bytes:
    """An event with its type on an `event:` line, as the Responses API streams them."""
    return b"event: " + name.encode() + b"\ndata: " + payload.model_dump_json().encode() + b"\n\n"


def error_event(error: HeadraceError) -> bytes:
    return b"data: " + orjson.dumps(error.envelope()) + b"\n\n"


HEARTBEAT = b": keep-alive\n\n"
SHUTTING_DOWN = ServiceUnavailableError(
    "The server is shutting down and ended this stream; retry the request.",
    code="server_shutting_down",
)


class EventStream(StreamingResponse):
    """A stream of SSE events, accounted exactly once: `account(status)` with `ok` when
    the source ended, `error` when it failed, `cancelled` when the stream was cut short
    (the client left, the drain deadline passed, the server stopped), also when the
    client left before the first byte.

    - A failure once the stream has started is an error event in the OpenAI envelope (the
      SDK raises it), then the end: the status went out with the first byte.
    - The client's leaving (`http.disconnect`) cancels the source at once: the engine
      frees the request's KV blocks, an upstream its connection.
    - A comment line every `heartbeat_s` while nothing is sent (a long queue wait) keeps
      proxies from closing the stream; SSE clients ignore comments.
    - `drain`'s passed deadline ends the stream with a `server_shutting_down` error event.
    """

    def __init__(
        self,
        events: AsyncIterator[bytes],
        account: Callable[[Status], None],
        *,
        headers: dict[str, str] | None = None,
        heartbeat_s: float | None = None,
        drain: Drain | None = None,
    ) -> None:
        super().__init__(events, media_type=MEDIA_TYPE, headers=HEADERS | (headers or {}))
        self._events = events
        self._account = account
        self._heartbeat_s = heartbeat_s
        self._drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        writer = asyncio.current_task()
        assert writer is not None
        line = _Line(send, asyncio.get_running_loop())
        # Why the writer was cancelled ("gone", "expired"), or "ended": too late to stop it.
        stopped: list[str] = []

        def stop(reason: str) -> None:
            if not stopped:
                stopped.append(reason)
                writer.cancel()

        listener = asyncio.ensure_future(_listen(receive, line, self._heartbeat_s, stop))
        unwatch = self._drain.on_expiry(lambda: stop("expired")) if self._drain else None
        status: Status = "cancelled"
        try:
            await line.start(self.status_code, self.raw_headers)
            status, failure = await _write(self._events, line)
            if failure is not None:
                await line.write(failure)
        except asyncio.CancelledError:
            if not stopped or writer.uncancel() > 0:
                raise  # cancelled from outside (shutdown), not by the client or the drain
            if stopped[0] == "expired":
                await line.write(error_event(SHUTTING_DOWN))
        except OSError as exc:  # ASGI 2.4: a send to a gone client raises
            raise ClientDisconnect() from exc
        finally:
            stopped.append("ended")  # no stopping it from here on
            listener.cancel()
            if unwatch is not None:
                unwatch()
            self._account(status)
            await _close(self._events)
        if stopped[0] != "gone":
            await line.end()


async def _write(events: AsyncIterator[bytes], line: _Line) -> tuple[Status, bytes | None]:
    """Write `events` as they come; how the source ended, and the error event to end the
    stream with if it failed."""
    writing = False
    try:
        async for chunk in events:
            writing = True
            await line.write(chunk)
            writing = False
    except Exception as exc:
        if writing:
            raise  # the client's side, not the source's
        if not isinstance(exc, HeadraceError):
            log.error("stream_failed", exc_info=exc)
            exc = HeadraceError(f"The generation failed: {exc}")
        return "error", error_event(exc)
    return "ok", None


class _Line:
    """The response's `send`, shared by the writer and the heartbeats: when it last sent,
    and the heartbeat in flight (the writer waits for it: sends never overlap)."""

    __slots__ = ("_loop", "_send", "beat", "last_s", "sending")

    def __init__(self, send: Send, loop: asyncio.AbstractEventLoop) -> None:
        self._send = send
        self._loop = loop
        self.last_s = loop.time()
        self.sending = False
        self.beat: asyncio.Future[None] | None = None

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def write(self, chunk: bytes) -> None:
        if self.beat is not None:
            await self.beat
            self.beat = None
        self.sending = True
        self.last_s = self._loop.time()
        await self._send({"type": "http.response.body", "body": chunk, "more_body": True})
        self.sending = False

    async def end(self) -> None:
        if self.beat is not None:
            await self.beat
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    def heartbeat(self) -> None:
        """A comment line, unless something is being sent now."""
        if not self.sending and (self.beat is None or self.beat.done()):
            self.last_s = self._loop.time()
            self.beat = asyncio.ensure_future(self._heartbeat())

    async def _heartbeat(self) -> None:
        # A send to a gone client raises in ASGI 2.4: the listener hears of the leaving.
        with contextlib.suppress(OSError):
            await self._send({"type": "http.response.body", "body": HEARTBEAT, "more_body": True})


async def _listen(
    receive: Receive, line: _Line, heartbeat_s: float | None, stop: Callable[[str], None]
) -> None:
    """Wait for the client to leave, then `stop` the writer; meanwhile a heartbeat
    whenever nothing has been sent for `heartbeat_s`."""
    loop = asyncio.get_running_loop()
    while True:
        deadline = None if heartbeat_s is None else line.last_s + heartbeat_s
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            if loop.time() >= line.last_s + heartbeat_s:  # type: ignore[operator]
                line.heartbeat()
            continue
        if message["type"] == "http.disconnect":
            stop("gone")
            return
        # else a replayed request body, or nothing the stream cares about


async def _close(iterator: AsyncIterator[bytes]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
