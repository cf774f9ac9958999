"""Running a request's choices on an engine and merging their events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from headrace.engine.interface import Engine, Finished, GenerationEvent, GenerationRequest


async def merged_events(
    engine: Engine, requests: list[GenerationRequest]
) -> AsyncIterator[tuple[int, GenerationEvent]]:
    """Events of all choices as they come, tagged with the choice index."""
    if len(requests) == 1:
        async for ev in engine.generate(requests[0]):
            yield 0, ev
        return
    queue: asyncio.Queue[tuple[int, GenerationEvent] | BaseException] = asyncio.Queue()

    async def pump(index: int, request: GenerationRequest) -> None:
        try:
            async for ev in engine.generate(request):
                await queue.put((index, ev))
        except Exception as exc:
            await queue.put(exc)

    tasks = [asyncio.create_task(pump(i, r)) for i, r in enumerate(requests)]
    remaining = len(requests)
    try:
        while remaining:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            remaining -= isinstance(item[1], Finished)
    finally:
        for task in tasks:
            task.cancel()
