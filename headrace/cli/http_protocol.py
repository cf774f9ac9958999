"""uvicorn's HTTP protocol (httptools), with the writes of one turn of the event loop sent
in one system call.

uvicorn writes a response's head as soon as the app starts it and each body part as it
comes: a JSON answer is two `send` calls on the socket, a stream's end one more. On
loopback a send does the receiver's TCP work too, and in front of a fast upstream those
calls were a tenth of a proxied request's CPU (docs/benchmarks.md, "Fifth round"). Here
the transport holds what is written until the loop's current turn is over, then sends it
at once: the head with the body, a stream's last events with its terminator. Nothing
waits longer than that turn; a close sends what is held first.

    uvicorn.Config(app, http=HttpToolsProtocol, loop="uvloop")
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _UvicornProtocol


class CorkedTransport:
    """`transport`, its writes joined until the end of the loop's turn."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        """Send what is held, in one write."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        if not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:  # the rest as the transport has it
        return getattr(self._transport, name)


class HttpToolsProtocol(_UvicornProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        corked = CorkedTransport(transport, self.loop)  # type: ignore[arg-type]
        super().connection_made(corked)  # type: ignore[arg-type]
