"""Graceful shutdown: stop taking requests, let the streams in flight finish, then end the
ones still going with an error event (not a cut connection) once the deadline passes.

    SIGTERM -> drain.request() -> new requests get 503 `server_shutting_down`
            -> streams run on until `server.drain_timeout_s` -> an error event ends them
            -> uvicorn closes the connections and the app shuts down
"""

from __future__ import annotations

import asyncio


class Drain:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._started = asyncio.Event()
        self._deadline = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the app runs on (at start-up): `request` may come from a signal handler."""
        self._loop = loop

    def request(self) -> None:
        """Begin draining; safe from a signal handler or another thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.start)

    def start(self) -> None:
        if not self._started.is_set():
            self._deadline = asyncio.get_running_loop().time() + self.timeout_s
            self._started.set()

    @property
    def draining(self) -> bool:
        return self._started.is_set()

    async def expired(self) -> None:
        """Returns once draining has begun and its deadline has passed."""
        await self._started.wait()
        await asyncio.sleep(max(0.0, self._deadline - asyncio.get_running_loop().time()))
