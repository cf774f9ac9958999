"""The output check on an upstream's chunks (proxied models): what is held, what is sent,
where a block cuts, and that a blocked stream stops being read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from headrace.safety.chunk_guard import guarded_answer, guarded_chunks
from headrace.safety.output_guard import OutputCheck
from tests.safety.test_output_guard import Checker

Chunk = dict[str, Any]
BASE = {"id": "up", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def chunks(pieces: Sequence[str], index: int = 0) -> list[Chunk]:
    out = [{**BASE, "choices": [{"index": index, "delta": {"content": p}}]} for p in pieces]
    out.append({**BASE, "choices": [{"index": index, "delta": {}, "finish_reason": "stop"}]})
    return out


async def source(items: list[Chunk], read: list[int]) -> AsyncIterator[Chunk]:
    for item in items:
        read.append(1)
        yield item


def run(items: list[Chunk], check: OutputCheck) -> tuple[list[Chunk], int]:
    read: list[int] = []

    async def go() -> list[Chunk]:
        return [c async for c in guarded_chunks(source(items, read), check)]

    return asyncio.run(go()), len(read)


def text(out: list[Chunk], index: int = 0) -> str:
    return "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in out
        if c["choices"] and c["choices"][0]["index"] == index
    )


def test_clean_text_passes_whole_and_in_order() -> None:
    pieces = [f"word{i} " for i in range(30)]
    out, _ = run(chunks(pieces), OutputCheck(Checker(), hold=True, every_chars=20))
    assert text(out) == "".join(pieces)
    assert out[-1]["choices"][0]["finish_reason"] == "stop"


def test_a_block_drops_the_held_text_ends_the_choice_and_stops_reading() -> None:
    pieces = ["safe " * 8, "still fine ", "BAD thing ", "more "] + ["tail "] * 50
    checker = Checker()
    out, read = run(chunks(pieces), OutputCheck(checker, hold=True, every_chars=16))
    assert "BAD" not in text(out)
    assert text(out).startswith("safe ")
    assert out[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "content_filter"}
    assert out[-1]["id"] == "up"
    assert read < len(pieces)  # the upstream was let go at the block


def test_flag_only_holds_nothing_back() -> None:
    pieces = ["BAD " * 10, "rest"]
    checker = Checker()
    out, _ = run(chunks(pieces), OutputCheck(checker, hold=False, every_chars=16))
    assert text(out) == "".join(pieces)  # a flag-only policy withholds nothing
    assert checker.windows  # but every window was checked


def test_choices_are_cut_independently_and_usage_passes() -> None:
    good, bad = chunks(["fine text here"], 0), chunks(["BAD text"], 1)
    usage = {**BASE, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
    items = [good[0], bad[0], good[1], bad[1], usage]
    out, _ = run(items, OutputCheck(Checker(), hold=True, every_chars=1000))
    assert text(out, 0) == "fine text here"
    assert text(out, 1) == ""
    ends = {c["choices"][0]["index"]: c["choices"][0]["finish_reason"] for c in out if c["choices"]
            and c["choices"][0].get("finish_reason")}  # fmt: skip
    assert ends == {0: "stop", 1: "content_filter"}
    assert out[-1]["usage"] == usage["usage"]


def test_a_whole_answer_keeps_what_passed() -> None:
    content = "a" * 40 + "BAD" + "b" * 40
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                           "finish_reason": "stop"}]}  # fmt: skip
    checked = asyncio.run(guarded_answer(answer, OutputCheck(Checker(), hold=True, every_chars=20)))
    choice = checked["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] == "a" * 40  # the windows that passed, no more
