"""Lines of a chunked byte stream are the same however the bytes are cut into chunks."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

from hypothesis import given
from hypothesis import strategies as st

from headrace.chunk_lines import Lines, split_lines


async def _chunks(data: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    edges = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    for start, end in itertools.pairwise(edges):
        yield data[start:end]


async def _lines(data: bytes, cuts: list[int]) -> list[bytes]:
    return [line async for line in split_lines(_chunks(data, cuts))]


@given(st.binary(max_size=200).map(lambda b: b.replace(b"x", b"\n")), st.lists(st.integers()))
def test_any_chunking_gives_the_lines_of_the_whole(data: bytes, cuts: list[int]) -> None:
    assert asyncio.run(_lines(data, cuts)) == _whole(data)


def _whole(data: bytes) -> list[bytes]:
    parts = data.split(b"\n")
    if parts[-1] == b"":  # a final line break ends the last line, it opens none
        parts.pop()
    return [part.rstrip(b"\r") for part in parts]


@given(st.binary(max_size=200).map(lambda b: b.replace(b"x", b"\n")), st.lists(st.integers()))
def test_fed_one_by_one_the_same_lines(data: bytes, cuts: list[int]) -> None:
    async def fed() -> list[bytes]:
        lines = Lines()
        out = [line async for chunk in _chunks(data, cuts) for line in lines.feed(chunk)]
        return out + lines.end()

    assert asyncio.run(fed()) == _whole(data)
