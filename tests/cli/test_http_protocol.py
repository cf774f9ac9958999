"""The server's transport: what one turn of the event loop writes leaves in one write."""

from __future__ import annotations

import asyncio
from typing import Any

from headrace.cli.http_protocol import CorkedTransport


class Transport:
    """A transport that records its writes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return f"info:{name}"


async def test_writes_in_one_turn_leave_together_at_its_end() -> None:
    inner = Transport()
    corked = CorkedTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
    corked.write(b"{}")
    assert inner.writes == []  # not yet: at the end of this turn
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    corked.write(b"next")
    await asyncio.sleep(0)
    assert inner.writes[-1] == b"next"
    assert corked.get_extra_info("peername") == "info:peername"  # the rest passes through


async def test_a_close_sends_what_is_held_first() -> None:
    inner = Transport()
    corked = CorkedTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    corked.write(b"last words")
    corked.close()
    assert inner.writes == [b"last words"]
    assert inner.closed
    corked.write(b"too late")
    await asyncio.sleep(0)
    assert inner.writes == [b"last words"]  # a closing transport takes no more
