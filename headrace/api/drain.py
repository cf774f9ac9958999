"""Graceful shutdown: stop taking requests, let the streams in flight finish, then end the
ones still going with an error event (not a cut connection) once the deadline passes.

    SIGTERM -> drain.request() -> new requests get 503 `server_shutting_down`
            -> streams run on until `server.drain_timeout_s` -> an error event ends them
            -> uvicorn closes the connections and the app shuts down
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Drain:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._started = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._expired = False
        self._on_expiry: set[Callable[[], None]] = set()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the app runs on (at start-up): `request` may come from a signal handler."""
        self._loop = loop

    def request(self) -> None:
        """Begin draining; safe from a signal handler or another thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.start)

    def start(self) -> None:
        if not self._started.is_set():
            loop = asyncio.get_running_loop()
            self._started.set()
            loop.call_at(loop.time() + self.timeout_s, self._expire)

    def _expire(self) -> None:
        self._expired = True
        for callback in list(self._on_expiry):
            callback()

    @property
    def draining(self) -> bool:
        return self._started.is_set()

    def on_expiry(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` once the deadline has passed (soon, if it already has); returns
        the function that cancels it. One timer for every stream, not a task each."""
        if self._expired:
            asyncio.get_running_loop().call_soon(callback)
        else:
            self._on_expiry.add(callback)
        return lambda: self._on_expiry.discard(callback)
