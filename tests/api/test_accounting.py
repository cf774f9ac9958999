"""Accounting runs exactly once per request, whatever way the request ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.requests import ClientDisconnect

from headrace.api.accounting import AccountedStream, accounted, once, settled
from headrace.metering.usage import Status


async def _chunks(fail: bool) -> AsyncIterator[bytes]:
    yield b"a"
    if fail:
        raise RuntimeError("engine died")
    yield b"b"


async def test_a_stream_is_accounted_once_however_it_ends() -> None:
    seen: list[Status] = []
    assert [c async for c in settled(_chunks(False), seen.append)] == [b"a", b"b"]
    with pytest.raises(RuntimeError):
        _ = [c async for c in settled(_chunks(True), seen.append)]
    dropped = settled(_chunks(False), seen.append)
    await anext(dropped)
    await dropped.aclose()  # what a client disconnect does to the response's iterator
    assert seen == ["ok", "error", "cancelled"]


async def test_a_completion_is_accounted_once_however_it_ends() -> None:
    seen: list[Status] = []

    async def work(outcome: str) -> object:
        if outcome == "error":
            raise RuntimeError("engine died")
        if outcome == "cancelled":
            await asyncio.sleep(3600)
        return "done"

    assert await accounted(work("ok"), seen.append) == "done"  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        await accounted(work("error"), seen.append)  # type: ignore[arg-type]
    task = asyncio.ensure_future(accounted(work("cancelled"), seen.append))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["ok", "error", "cancelled"]


def test_once_runs_the_first_ending_only() -> None:
    seen: list[Status] = []
    account = once(seen.append)
    account("ok")
    account("cancelled")
    assert seen == ["ok"]


async def test_a_stream_whose_client_left_before_the_first_byte_is_accounted() -> None:
    seen: list[Status] = []
    account = once(seen.append)
    started = False

    async def body() -> AsyncIterator[bytes]:
        nonlocal started
        started = True
        yield b"never sent"

    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    async def gone(message: object) -> None:
        raise OSError("client went away")

    response = AccountedStream(settled(body(), account), account)
    scope = {"type": "http", "asgi": {"spec_version": "2.4"}}
    with pytest.raises(ClientDisconnect):
        await response(scope, receive, gone)
    assert not started
    assert seen == ["cancelled"]


async def test_a_finished_stream_is_accounted_by_the_stream_only() -> None:
    seen: list[Status] = []
    account = once(seen.append)
    sent: list[object] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: object) -> None:
        sent.append(message)

    response = AccountedStream(settled(_chunks(False), account), account)
    await response({"type": "http", "asgi": {"spec_version": "2.4"}}, receive, send)
    assert seen == ["ok"]
    assert len(sent) == 4  # start, two chunks, end


async def test_a_client_leaving_mid_stream_stops_it_and_is_accounted_once() -> None:
    """uvicorn speaks ASGI 2.3: a gone client is a `http.disconnect` message, not an error."""
    seen: list[Status] = []
    account = once(seen.append)
    left = asyncio.Event()
    sent: list[object] = []
    stopped = False

    async def endless() -> AsyncIterator[bytes]:
        nonlocal stopped
        try:
            while True:
                yield b"chunk"
                await asyncio.sleep(0)
        finally:
            stopped = True

    async def receive() -> dict[str, object]:
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: object) -> None:
        sent.append(message)
        if len(sent) == 5:
            left.set()  # the client hangs up after a few chunks

    response = AccountedStream(settled(endless(), account), account)
    await asyncio.wait_for(
        response({"type": "http", "asgi": {"spec_version": "2.3"}}, receive, send), 5
    )
    assert stopped
    assert seen == ["cancelled"]
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
