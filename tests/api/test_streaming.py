"""Streams: a client that goes away frees the engine at once; failures become error events;
heartbeats while a stream waits; the drain's deadline ends it; each ending accounted once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from starlette.requests import ClientDisconnect

from headrace.api import sse
from headrace.api.drain import Drain
from headrace.errors import HeadraceError, InvalidRequestError
from headrace.metering.usage import Status
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


class Client:
    """The server's side of one stream: what was sent, and a client that may leave."""

    def __init__(self, spec: str = "2.3") -> None:
        self.scope = {"type": "http", "asgi": {"spec_version": spec}}
        self.sent: list[dict[str, object]] = []
        self.left = asyncio.Event()
        self.accounted: list[Status] = []

    async def receive(self) -> dict[str, object]:
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, object]) -> None:
        self.sent.append(message)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent)  # type: ignore[misc]

    @property
    def frames(self) -> list[bytes]:
        return self.body.split(b"\n\n")

    async def serve(self, events: AsyncIterator[bytes], **kwargs: object) -> None:
        response = sse.EventStream(events, self.accounted.append, **kwargs)  # type: ignore[arg-type]
        async with asyncio.timeout(10):
            await response(self.scope, self.receive, self.send)


async def _chunks(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_a_finished_stream_is_sent_and_accounted_ok() -> None:
    client = Client()
    await client.serve(_chunks(b"data: 1\n\n", sse.DONE), headers={"x-a": "b"})
    start, *body, end = client.sent
    assert start["type"] == "http.response.start"
    assert (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]  # type: ignore[operator]
    assert (b"x-a", b"b") in start["headers"]  # type: ignore[operator]
    assert [m["body"] for m in body] == [b"data: 1\n\n", sse.DONE]
    assert end == {"type": "http.response.body", "body": b"", "more_body": False}
    assert client.accounted == ["ok"]


async def test_failure_after_the_stream_started_is_an_error_event() -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"data: {}\n\n"
        raise InvalidRequestError("bad thing", param="x")

    async def crashing() -> AsyncIterator[bytes]:
        yield b"data: {}\n\n"
        raise RuntimeError("boom")

    for source, kind in ((failing(), "invalid_request_error"), (crashing(), "server_error")):
        client = Client()
        await client.serve(source)
        frames = client.frames
        assert frames[0] == b"data: {}"
        error = orjson.loads(frames[1].removeprefix(b"data: "))["error"]
        assert error["type"] == kind
        assert frames[2:] == [b""]  # and nothing after it
        assert client.sent[-1]["more_body"] is False
        assert client.accounted == ["error"]


async def test_a_client_leaving_mid_stream_stops_the_source_and_is_accounted_once() -> None:
    """uvicorn speaks ASGI 2.3: a gone client is a `http.disconnect` message, not an error."""
    client = Client()
    stopped = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"data: x\n\n"
                if len(client.sent) == 5:
                    client.left.set()  # the client hangs up after a few chunks
                    await asyncio.Event().wait()  # a long wait for the next token
                await asyncio.sleep(0)
        finally:
            stopped.set()

    await client.serve(endless())
    assert stopped.is_set()
    assert client.accounted == ["cancelled"]
    assert client.sent[-1]["more_body"] is True  # no end sent to a client that has gone
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_client_gone_before_the_first_byte_is_accounted() -> None:
    """ASGI 2.4: a send to a gone client raises."""
    client = Client(spec="2.4")
    started = False

    async def body() -> AsyncIterator[bytes]:
        nonlocal started
        started = True
        yield b"never sent"

    async def gone(message: object) -> None:
        raise OSError("client went away")

    client.send = gone  # type: ignore[method-assign]
    with pytest.raises(ClientDisconnect):
        await client.serve(body())
    assert not started
    assert client.accounted == ["cancelled"]


async def test_a_stream_cancelled_from_outside_stays_cancelled() -> None:
    client = Client()
    waiting = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        waiting.set()
        await asyncio.Event().wait()
        yield b"never"

    task = asyncio.ensure_future(client.serve(stalled()))
    await waiting.wait()
    task.cancel()  # the server shutting down
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client.accounted == ["cancelled"]


async def test_a_slow_client_holds_the_source_back() -> None:
    produced = 0
    room = asyncio.Event()
    client = Client()
    fast_send = client.send

    async def slow(message: dict[str, object]) -> None:
        await fast_send(message)
        if len(client.sent) == 2:  # the head and the first chunk, then the client stalls
            await room.wait()

    async def fast() -> AsyncIterator[bytes]:
        nonlocal produced
        for _ in range(100):
            produced += 1
            yield b"data: x\n\n"

    client.send = slow  # type: ignore[method-assign]
    task = asyncio.ensure_future(client.serve(fast()))
    for _ in range(10):
        await asyncio.sleep(0)
    assert produced == 1
    room.set()
    await task
    assert produced == 100


async def test_a_passed_drain_deadline_ends_the_stream_with_an_error_event() -> None:
    drain = Drain(timeout_s=0.0)
    client = Client()
    closed = False

    async def endless() -> AsyncIterator[bytes]:
        nonlocal closed
        try:
            while True:
                yield b"data: x\n\n"
                if len(client.sent) == 3:
                    drain.start()
                await asyncio.sleep(0.001)
        finally:
            closed = True

    await client.serve(endless(), heartbeat_s=10, drain=drain)
    last = client.body.rstrip(b"\n").split(b"\n\n")[-1]
    assert orjson.loads(last.removeprefix(b"data: "))["error"]["code"] == "server_shutting_down"
    assert client.sent[-1]["more_body"] is False
    assert closed
    assert client.accounted == ["cancelled"]


def test_error_event_carries_the_envelope() -> None:
    data = sse.error_event(HeadraceError("x"))
    assert data.startswith(b"data: {")
    assert data.endswith(b"\n\n")


async def test_heartbeats_while_waiting_then_the_events() -> None:
    release = asyncio.Event()
    client = Client()
    fast_send = client.send

    async def counting(message: dict[str, object]) -> None:
        await fast_send(message)
        if client.body.count(sse.HEARTBEAT) == 3:
            release.set()

    async def slow() -> AsyncIterator[bytes]:
        await release.wait()  # a long queue wait
        yield b"data: 1\n\n"

    client.send = counting  # type: ignore[method-assign]
    await client.serve(slow(), heartbeat_s=0.001)
    assert [m.get("body") for m in client.sent[1:]] == [sse.HEARTBEAT] * 3 + [b"data: 1\n\n", b""]
    assert client.accounted == ["ok"]


async def test_no_heartbeat_while_events_flow() -> None:
    client = Client()

    async def steady() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"data: x\n\n"
            await asyncio.sleep(0.002)  # well inside the heartbeat

    await client.serve(steady(), heartbeat_s=0.05)
    assert sse.HEARTBEAT not in client.body
