"""The upstream client's SSE stream: the events of one read come together, in order, and
whatever ends the stream (`[DONE]`, an error event, bad data, a cut) ends it after the
events before it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from headrace.routing.upstream import UpstreamClient, UpstreamError, UpstreamTarget
from tests.routing.test_http_client import Handler, serving


def _event(text: str) -> bytes:
    return b'data: {"choices": [{"index": 0, "delta": {"content": "%s"}}]}\n\n' % text.encode()


def sse_answer(*writes: bytes, close: bool = False) -> Handler:
    """A chunked SSE answer whose body leaves in `writes`, each one packet."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        for data in writes:
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            await writer.drain()
            await asyncio.sleep(0.01)  # a packet of its own
        if close:
            writer.close()
            return
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    return answer


async def _batches(url: str, client: UpstreamClient) -> tuple[list[list[str]], Exception | None]:
    """The texts of each list the stream yields, and what it raised."""
    target = UpstreamTarget("up", url.removesuffix("/chat/completions"), "m")
    batches: list[list[str]] = []
    try:
        async for events in client.stream(target, "/chat/completions", {"model": "m"}):
            batches.append([_text(e) for e in events])
    except UpstreamError as exc:
        return batches, exc
    return batches, None


def _text(event: dict[str, Any]) -> str:
    return str(event["choices"][0]["delta"]["content"])


async def test_the_events_of_one_read_come_together_in_order() -> None:
    answer = sse_answer(
        _event("a") + b": keep-alive\n\n" + _event("b"),
        _event("c")[:20],  # an event cut across two reads
        _event("c")[20:] + b"data: [DONE]\n\n" + _event("after the end"),
    )
    client = UpstreamClient()
    async with serving(answer) as (url, _):
        assert await _batches(url, client) == ([["a", "b"], ["c"]], None)
    await client.close()


@pytest.mark.parametrize(
    ("ending", "message"),
    [
        (b'data: {"error": {"message": "overloaded"}}\n\n', "overloaded"),
        (b"data: {not json\n\n", "bad SSE data"),
    ],
)
async def test_an_error_in_a_read_ends_the_stream_after_the_events_before_it(
    ending: bytes, message: str
) -> None:
    client = UpstreamClient()
    async with serving(sse_answer(_event("a"), _event("b") + ending + _event("c"))) as (url, _):
        batches, error = await _batches(url, client)
    await client.close()
    assert batches == [["a"], ["b"]]
    assert error is not None
    assert message in str(error)


async def test_a_stream_cut_before_done_is_a_retryable_error() -> None:
    client = UpstreamClient()
    async with serving(sse_answer(_event("a"), close=True)) as (url, _):
        batches, error = await _batches(url, client)
    await client.close()
    assert batches == [["a"]]
    assert isinstance(error, UpstreamError)
    assert error.retryable
