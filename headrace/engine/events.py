"""The consumer's side of an engine thread: a request's events, relayed from a queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from headrace.engine.interface import EngineError, Finished, GenerationEvent

EventQueue = asyncio.Queue[GenerationEvent | BaseException]


async def relay(events: EventQueue, abandon: Callable[[], None]) -> AsyncIterator[GenerationEvent]:
    """Yield events up to `Finished`. An exception from the engine becomes `EngineError`; a
    consumer that stops early (a client disconnect) calls `abandon` so the engine frees the
    request at once."""
    finished = False
    try:
        while not finished:
            event = await events.get()
            if isinstance(event, BaseException):
                raise EngineError(str(event)) from event
            finished = isinstance(event, Finished)
            yield event
    finally:
        if not finished:
            abandon()
