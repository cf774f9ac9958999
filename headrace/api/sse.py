"""Server-Sent Events framing, exactly as OpenAI sends it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
from pydantic import BaseModel

from headrace.api.drain import Drain
from headrace.errors import HeadraceError, ServiceUnavailableError
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


# Chunks a stream's source may run ahead of a slow client before it waits for room.
MAX_BUFFERED = 64


async def guarded(
    events: AsyncIterator[bytes],
    *,
    heartbeat_s: float | None = None,
    drain: Drain | None = None,
) -> AsyncIterator[bytes]:
    """The stream as sent. A comment line every `heartbeat_s` while nothing comes (a long
    queue wait) keeps proxies from closing it; SSE clients ignore comments. Once the stream
    has started the status is sent: a failure becomes an error event in the OpenAI envelope
    (the SDK raises it), then the stream ends; so does a `drain` whose deadline passed.

    The source runs in one task of its own (`_Pump`) and what it produced since the last
    write goes out in one write: events that arrive together (an upstream's chunks read
    from one packet) leave together, and none waits for another. A task and an
    `asyncio.wait` per event were most of a proxied stream's cost (docs/benchmarks.md)."""
    pump = _Pump(events)
    stop_watching = drain.on_expiry(pump.expire) if drain is not None else None
    try:
        while True:
            try:
                chunks = await pump.take(heartbeat_s)
            except TimeoutError:
                yield HEARTBEAT
                continue
            if pump.expired:
                chunks.append(error_event(SHUTTING_DOWN))
            elif pump.ended and pump.error is not None:
                chunks.append(_failure_event(pump.error))
            if chunks:
                yield chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if pump.expired or (pump.ended and not pump.pending):
                return
    finally:
        if stop_watching is not None:
            stop_watching()
        await pump.close()


def _failure_event(exc: Exception) -> bytes:
    if isinstance(exc, HeadraceError):
        return error_event(exc)
    log.error("stream_failed", exc_info=exc)
    return error_event(HeadraceError(f"The generation failed: {exc}"))


class _Pump:
    """Runs a stream's source ahead of its writer, into a bounded buffer."""

    def __init__(self, events: AsyncIterator[bytes]) -> None:
        self._iterator = aiter(events)
        self._buffer: list[bytes] = []
        self._ready = asyncio.Event()  # something to take: chunks, the end, the deadline
        self._room = asyncio.Event()
        self._room.set()
        self.ended = False
        self.error: Exception | None = None
        self.expired = False
        self._task = asyncio.ensure_future(self._run())

    @property
    def pending(self) -> bool:
        return bool(self._buffer)

    async def _run(self) -> None:
        try:
            async for chunk in self._iterator:
                self._buffer.append(chunk)
                self._ready.set()
                if len(self._buffer) >= MAX_BUFFERED:  # a slow client: wait for its writes
                    self._room.clear()
                    await self._room.wait()
        except Exception as exc:
            self.error = exc
        finally:
            self.ended = True
            self._ready.set()

    async def take(self, timeout_s: float | None) -> list[bytes]:
        """Everything produced since the last take, waiting up to `timeout_s` for some
        (TimeoutError: nothing came)."""
        if not (self._buffer or self.ended or self.expired):
            async with asyncio.timeout(timeout_s):
                await self._ready.wait()
        self._ready.clear()
        chunks, self._buffer = self._buffer, []
        self._room.set()
        return chunks

    def expire(self) -> None:
        self.expired = True
        self._ready.set()

    async def close(self) -> None:
        """Stop the source (the client went away, or the deadline passed) and close it."""
        if not self._task.done():
            self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await _close(self._iterator)


async def _close(iterator: AsyncIterator[bytes]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
