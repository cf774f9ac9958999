"""Streams: a client that goes away frees the engine at once; failures become error events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import orjson

from headrace.api import sse
from headrace.api.drain import Drain
from headrace.errors import HeadraceError, InvalidRequestError
from headrace.routing.registry import ModelRegistry
from tests.conftest import Server

MODEL = "headrace-tiny-chat"


def test_disconnect_aborts_generation_and_frees_the_cache(
    server: Server, registry: ModelRegistry
) -> None:
    engine = registry.chat(MODEL).engine
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Count from 1 to 100."}],
        "stream": True,
        "max_tokens": 1500,
        "logit_bias": {"2": -100},  # no <|im_end|>: it would run to max_tokens
    }
    with httpx.stream(
        "POST",
        f"{server.base_url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {server.api_key}"},
    ) as response:
        lines = response.iter_lines()
        for _ in range(4):
            next(lines)
        assert engine.stats().running == 1
    # The server notices at its next write, within a step or two; bounded, not a fixed sleep.
    deadline = time.monotonic() + 10
    while engine.stats().running and time.monotonic() < deadline:
        time.sleep(0.005)
    assert engine.stats().running == 0
    assert engine.stats().kv_cache_usage == 0.0  # its blocks went back to the pool


async def test_failure_after_the_stream_started_is_an_error_event() -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"data: {}\n\n"
        raise InvalidRequestError("bad thing", param="x")

    async def crashing() -> AsyncIterator[bytes]:
        yield b"data: {}\n\n"
        raise RuntimeError("boom")

    for source, kind in ((failing(), "invalid_request_error"), (crashing(), "server_error")):
        frames = b"".join([c async for c in sse.guarded(source)]).split(b"\n\n")
        assert frames[0] == b"data: {}"
        error = orjson.loads(frames[1].removeprefix(b"data: "))["error"]
        assert error["type"] == kind
        assert frames[2:] == [b""]  # and nothing after it


async def test_events_produced_together_leave_in_one_write_in_order() -> None:
    async def burst() -> AsyncIterator[bytes]:
        for i in range(5):  # produced without waiting: one read of an upstream's packet
            yield b"data: %d\n\n" % i
        await asyncio.sleep(0)
        yield b"data: 5\n\n"

    writes = [c async for c in sse.guarded(burst(), heartbeat_s=10)]
    assert b"".join(writes) == b"".join(b"data: %d\n\n" % i for i in range(6))
    assert writes[0] == b"".join(b"data: %d\n\n" % i for i in range(5))


async def test_a_slow_client_holds_the_source_back() -> None:
    produced = 0

    async def fast() -> AsyncIterator[bytes]:
        nonlocal produced
        for _ in range(10 * sse.MAX_BUFFERED):
            produced += 1
            yield b"data: x\n\n"

    stream = sse.guarded(fast(), heartbeat_s=10)
    await anext(stream)  # the client reads once, then stalls
    for _ in range(5):
        await asyncio.sleep(0)
    assert produced <= 2 * sse.MAX_BUFFERED
    await stream.aclose()


async def test_a_passed_drain_deadline_ends_the_stream_with_an_error_event() -> None:
    drain = Drain(timeout_s=0.0)

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"data: x\n\n"
            await asyncio.sleep(0.001)

    out = b""
    stream = sse.guarded(endless(), heartbeat_s=10, drain=drain)
    out += await anext(stream)
    drain.start()
    async for chunk in stream:
        out += chunk
    last = out.rstrip(b"\n").split(b"\n\n")[-1]
    assert orjson.loads(last.removeprefix(b"data: "))["error"]["code"] == "server_shutting_down"


def test_error_event_carries_the_envelope() -> None:
    data = sse.error_event(HeadraceError("x"))
    assert data.startswith(b"data: {")
    assert data.endswith(b"\n\n")


async def test_heartbeats_while_waiting_then_the_events() -> None:
    release = asyncio.Event()
    heartbeats = 0

    async def slow() -> AsyncIterator[bytes]:
        await release.wait()  # a long queue wait
        yield b"data: 1\n\n"

    out = []
    async for chunk in sse.guarded(slow(), heartbeat_s=0.001):
        out.append(chunk)
        if chunk == sse.HEARTBEAT:
            heartbeats += 1
            if heartbeats == 3:
                release.set()
    assert out == [sse.HEARTBEAT] * 3 + [b"data: 1\n\n"]


async def test_closing_the_stream_closes_the_source() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"data: x\n\n"
                await asyncio.sleep(0)
        finally:
            closed.set()

    stream = sse.guarded(endless(), heartbeat_s=10)
    assert (await anext(stream)).startswith(b"data: x\n\n")
    await stream.aclose()
    assert closed.is_set()
