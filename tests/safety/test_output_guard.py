"""The sliding-window output check on scripted event streams: what is held, what is sent,
and where a block cuts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from headrace.engine.interface import Finished, GenerationEvent, TextDelta, TokenLogprob
from headrace.safety.output_guard import OutputCheck, TextGate, moderated
from headrace.safety.policy import Decision

Events = list[tuple[int, GenerationEvent]]


class Checker:
    """Blocks any window holding `bad`; remembers every window it read."""

    def __init__(self, bad: str = "BAD") -> None:
        self.bad = bad
        self.windows: list[str] = []

    async def __call__(self, window: str) -> Decision:
        self.windows.append(window)
        if self.bad in window:
            return Decision("output", "block", ("violence",), ("violence",))
        return Decision("output", "allow")


async def stream(events: Events, closed: list[bool]) -> AsyncIterator[tuple[int, GenerationEvent]]:
    try:
        for item in events:
            yield item
    finally:
        closed.append(True)


def script(pieces: Sequence[str], index: int = 0, prompt: int = 5) -> Events:
    out: Events = [
        (index, TextDelta(p, (100 + i,), (TokenLogprob(100 + i, -0.5),)))
        for i, p in enumerate(pieces)
    ]
    out.append((index, Finished("stop", prompt, len(pieces))))
    return out


async def run(
    events: Events, check: OutputCheck, n: int = 1
) -> tuple[Events, list[int], list[bool]]:
    aborted: list[int] = []
    closed: list[bool] = []
    out = [e async for e in moderated(stream(events, closed), check, [5] * n, aborted.append)]
    return out, aborted, closed


def text(events: Events, index: int = 0) -> str:
    return "".join(e.text for i, e in events if i == index and isinstance(e, TextDelta))


def finish(events: Events, index: int = 0) -> Finished:
    [last] = [e for i, e in events if i == index and isinstance(e, Finished)]
    return last


async def test_clean_text_passes_whole_checked_every_n_chars() -> None:
    checker = Checker()
    pieces = ["abcd"] * 10  # 40 characters
    out, aborted, _ = await run(script(pieces), OutputCheck(checker, hold=True, every_chars=16))
    assert text(out) == "abcd" * 10
    assert finish(out).finish_reason == "stop"
    assert len(checker.windows) == 3  # at 16 and 32 characters, then the last 8 at the end
    assert aborted == []
    # Every token is counted as it comes, and every logprob arrives with its text.
    assert sum(len(e.token_ids) for _, e in out if isinstance(e, TextDelta)) == 10
    assert sum(len(e.logprobs) for _, e in out if isinstance(e, TextDelta)) == 10


async def test_held_text_never_runs_ahead_of_its_check() -> None:
    checker = Checker()
    out, _, _ = await run(script(["abcd"] * 6), OutputCheck(checker, hold=True, every_chars=8))
    sent = ""
    for _, event in out:
        if isinstance(event, TextDelta) and event.text:
            sent += event.text
            assert any(w.endswith(sent[-8:]) for w in checker.windows)  # checked first


async def test_block_mid_stream_stops_the_engine_and_withholds_the_window() -> None:
    checker = Checker()
    pieces = ["safe text "] * 4 + ["then BAD ", "words "] + ["more "] * 20
    out, aborted, closed = await run(
        script(pieces), OutputCheck(checker, hold=True, every_chars=20)
    )
    assert text(out) == "safe text " * 4  # the window with BAD was never sent
    end = finish(out)
    assert (end.finish_reason, end.prompt_tokens) == ("content_filter", 5)
    assert end.completion_tokens == 7  # generated up to the check (at 20 new chars): done
    assert aborted == [0]
    assert closed == [True]  # the source was closed: the rest was never produced


async def test_block_on_the_final_check_keeps_the_engines_counts() -> None:
    checker = Checker()
    out, aborted, _ = await run(
        script(["ok ", "BAD"]), OutputCheck(checker, hold=True, every_chars=64)
    )
    assert text(out) == ""
    assert (finish(out).finish_reason, finish(out).completion_tokens) == ("content_filter", 2)
    assert aborted == []  # it had finished anyway


async def test_flag_only_sends_text_at_once_and_never_blocks_text_already_sent() -> None:
    checker = Checker()
    out, aborted, _ = await run(
        script(["hello ", "BAD ", "world"]), OutputCheck(checker, hold=False, every_chars=4)
    )
    # Not held: the text goes out with its tokens, before any check.
    first = out[0][1]
    assert isinstance(first, TextDelta)
    assert first.text == "hello "
    assert finish(out).finish_reason == "content_filter"  # a block still ends the choice
    assert aborted == [0]


async def test_only_the_blocked_choice_ends_early() -> None:
    checker = Checker()
    clean = script(["fine "] * 8, index=0)
    dirty = script(["oh ", "BAD ", "stuff "] + ["x "] * 10, index=1)
    # Interleaved, as merged_events gives them.
    events = [e for pair in zip(clean, dirty, strict=False) for e in pair]
    events += dirty[len(clean) :]
    out, aborted, _ = await run(events, OutputCheck(checker, hold=True, every_chars=8), n=2)
    assert text(out, 0) == "fine " * 8
    assert finish(out, 0).finish_reason == "stop"
    assert finish(out, 1).finish_reason == "content_filter"
    assert "BAD" not in text(out, 1)
    assert aborted == [1]


async def test_window_slides() -> None:
    checker = Checker()
    await run(
        script(["0123456789"] * 10),
        OutputCheck(checker, hold=True, every_chars=10, window_chars=25),
    )
    assert all(len(w) <= 25 for w in checker.windows)
    assert checker.windows[-1] == ("0123456789" * 3)[-25:]


def test_gate_releases_held_deltas_as_they_came_without_token_ids() -> None:
    gate = TextGate(window_chars=100, every_chars=4)
    gate.push(TextDelta("ab", (1,), (TokenLogprob(1, -1.0),)), hold=True)
    assert not gate.due
    gate.push(TextDelta("cd", (2,), (TokenLogprob(2, -2.0),)), hold=True)
    assert gate.due
    assert gate.window() == "abcd"
    assert not gate.due
    released = gate.release()
    assert [(d.text, d.token_ids, len(d.logprobs)) for d in released] == [
        ("ab", (), 1),
        ("cd", (), 1),
    ]
    assert gate.release() == []


async def test_text_held_while_the_engine_stalls_is_checked_and_sent() -> None:
    import asyncio

    checker = Checker()
    release = asyncio.Event()

    async def stalling() -> AsyncIterator[tuple[int, GenerationEvent]]:
        yield 0, TextDelta("Hi", (1,))
        await release.wait()  # the engine stalls, as a slow or gated one does
        yield 0, TextDelta(" there", (2,))
        yield 0, Finished("stop", 5, 2)

    check = OutputCheck(checker, hold=True, every_chars=64, max_hold_s=0.01)
    stream = moderated(stalling(), check, [5], lambda i: None)
    seen = [await anext(stream), await anext(stream)]  # the count, then the text
    assert [e.text for _, e in seen if isinstance(e, TextDelta)] == ["", "Hi"]
    assert checker.windows == ["Hi"]
    release.set()
    rest = [e async for e in stream]
    assert text(rest) == " there"
    assert finish(rest).finish_reason == "stop"
