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


async def guarded(
    events: AsyncIterator[bytes],
    *,
    heartbeat_s: float | None = None,
    drain: Drain | None = None,
) -> AsyncIterator[bytes]:
    """The stream as sent. A comment line every `heartbeat_s` while nothing comes (a long
    queue wait) keeps proxies from closing it; SSE clients ignore comments. Once the stream
    has started the status is sent: a failure becomes an error event in the OpenAI envelope
    (the SDK raises it), then the stream ends; so does a `drain` whose deadline passed."""
    iterator = aiter(events)
    pending: asyncio.Task[bytes] | None = None
    expired = asyncio.ensure_future(drain.expired()) if drain is not None else None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            waits = {pending} if expired is None else {pending, expired}
            done, _ = await asyncio.wait(waits, timeout=heartbeat_s, return_when="FIRST_COMPLETED")
            if expired is not None and expired in done and pending not in done:
                yield error_event(SHUTTING_DOWN)
                return
            if not done:
                yield HEARTBEAT
                continue
            try:
                chunk = pending.result()
            except StopAsyncIteration:
                return
            finally:
                if pending.done():
                    pending = None
            yield chunk
    except HeadraceError as exc:
        yield error_event(exc)
    except Exception as exc:
        log.exception("stream_failed")
        yield error_event(HeadraceError(f"The generation failed: {exc}"))
    finally:
        if expired is not None:
            expired.cancel()
        if pending is not None and not pending.done():  # the client went away mid-wait
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        await _close(iterator)


async def _close(iterator: AsyncIterator[bytes]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
