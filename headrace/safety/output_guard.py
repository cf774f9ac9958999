"""The check-output stage: moderation of generated text while it streams.

    events = OutputCheck(check, hold=True).wrap(events, engine, requests)

Each choice's text is checked on a sliding window (the last `window_chars` characters)
every `every_chars` new characters, and once more when the choice ends. While the project's
policy can block output, text is *held back* until a check has covered it, the way the
detokeniser holds back a possible stop string: a client never receives text that has not
passed a check, at the cost of arriving in bursts: text is checked once `every_chars` have
come or once its oldest part has waited `max_hold_s`, whichever is first, so no text is
kept back much longer than that. A block ends the
choice at once: the engine request is aborted (its KV cache freed), the held text and its
logprobs are dropped, and the choice finishes with `content_filter`. Tokens already
generated count as done. With a flag-only policy nothing is held back; the checks only
record.

Token counts pass through immediately (a `TextDelta` with the token ids and no text), so
metering and token timing see the engine's pace, not the checks'.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from headrace.engine.interface import (
    Engine,
    Finished,
    GenerationEvent,
    GenerationRequest,
    TextDelta,
)
from headrace.safety.policy import Decision

Check = Callable[[str], Awaitable[Decision]]
Tagged = tuple[int, GenerationEvent]  # an event and its choice's index
DEFAULT_EVERY_CHARS = 128
DEFAULT_WINDOW_CHARS = 256
DEFAULT_MAX_HOLD_S = 0.5


@dataclass(slots=True)
class TextGate:
    """One choice's text: what has been generated, what is checked, what is held back."""

    window_chars: int = DEFAULT_WINDOW_CHARS
    every_chars: int = DEFAULT_EVERY_CHARS
    text: str = ""  # the last `window_chars` characters generated, at most
    unchecked: int = 0  # characters generated since the last check
    held: list[TextDelta] = field(default_factory=list)
    held_since: float = 0.0  # when the oldest held delta came (monotonic seconds)

    def push(self, delta: TextDelta, *, hold: bool, now: float = 0.0) -> None:
        self.text = (self.text + delta.text)[-self.window_chars :]
        self.unchecked += len(delta.text)
        if hold and (delta.text or delta.logprobs):
            if not self.held:
                self.held_since = now
            self.held.append(delta)

    @property
    def due(self) -> bool:
        """Enough new text for a check."""
        return self.unchecked >= self.every_chars

    def window(self) -> str:
        """The text a check reads; marks everything generated so far as checked."""
        self.unchecked = 0
        return self.text

    def release(self) -> list[TextDelta]:
        """The held deltas, as they came (a client still gets one chunk per token), without
        their token ids: those were counted when they arrived."""
        out = [TextDelta(d.text, (), d.logprobs) for d in self.held]
        self.held.clear()
        return out


@dataclass(frozen=True, slots=True)
class OutputCheck:
    """How one request's output is checked: `check` scores a window and decides;
    `hold` when a block is possible."""

    check: Check
    hold: bool
    every_chars: int = DEFAULT_EVERY_CHARS
    window_chars: int = DEFAULT_WINDOW_CHARS
    max_hold_s: float = DEFAULT_MAX_HOLD_S

    def wrap(
        self,
        events: AsyncIterator[tuple[int, GenerationEvent]],
        engine: Engine,
        requests: Sequence[GenerationRequest],
    ) -> AsyncIterator[tuple[int, GenerationEvent]]:
        """`events` (tagged by choice index, as `merged_events` gives them), checked."""
        return moderated(
            events,
            self,
            [len(r.prompt_token_ids) for r in requests],
            lambda i: engine.abort(requests[i].request_id),
        )


async def moderated(
    events: AsyncIterator[tuple[int, GenerationEvent]],
    check: OutputCheck,
    prompt_tokens: Sequence[int],
    abort: Callable[[int], None],
) -> AsyncIterator[tuple[int, GenerationEvent]]:
    """`events` with each choice's text checked; see the module's docstring."""
    choices = _Choices(check, prompt_tokens, abort)
    iterator = aiter(events)
    pending: asyncio.Future[tuple[int, GenerationEvent]] | None = None
    try:
        while not choices.all_ended:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=choices.hold_timeout())
            if not done:
                for out in await choices.flush():
                    yield out
                continue
            try:
                index, event = pending.result()
            except StopAsyncIteration:
                return
            finally:
                pending = None
            for out in await choices.on_event(index, event):
                yield out
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()  # a stop before the end: the engine frees the rest


class _Choices:
    """Every choice's gate, and what each event or check lets through."""

    def __init__(
        self, check: OutputCheck, prompt_tokens: Sequence[int], abort: Callable[[int], None]
    ) -> None:
        self.check = check
        self.prompt_tokens = prompt_tokens
        self.abort = abort
        self.gates = [TextGate(check.window_chars, check.every_chars) for _ in prompt_tokens]
        self.generated = [0] * len(prompt_tokens)
        self.ended: set[int] = set()

    @property
    def all_ended(self) -> bool:
        return len(self.ended) == len(self.gates)

    def hold_timeout(self) -> float | None:
        """Seconds until the oldest held text has waited `max_hold_s`; None: none held."""
        held = [g.held_since for i, g in enumerate(self.gates) if g.held and i not in self.ended]
        if not held:
            return None
        return max(0.0, min(held) + self.check.max_hold_s - time.monotonic())

    async def on_event(self, index: int, event: GenerationEvent) -> list[Tagged]:
        if index in self.ended:
            return []  # a blocked choice's last events, already in flight
        gate = self.gates[index]
        if isinstance(event, Finished):
            if gate.unchecked == 0:  # everything already checked
                self.ended.add(index)
                return [*self._release(index), (index, event)]
            return await self._checked(index, event)
        self.generated[index] += len(event.token_ids)
        gate.push(event, hold=self.check.hold, now=time.monotonic())
        out: list[Tagged] = []
        if not self.check.hold:
            out.append((index, event))
        elif event.token_ids:  # counted now; its text waits for a check
            out.append((index, TextDelta("", event.token_ids, (), event.queue_s)))
        if gate.due:
            out.extend(await self._checked(index, None))
        return out

    async def flush(self) -> list[Tagged]:
        """Check every choice whose text has waited `max_hold_s`, now."""
        out: list[Tagged] = []
        due = time.monotonic() - self.check.max_hold_s
        for index, gate in enumerate(self.gates):
            if gate.held and index not in self.ended and gate.held_since <= due:
                out.extend(await self._checked(index, None))
        return out

    async def _checked(self, index: int, finished: Finished | None) -> list[Tagged]:
        gate = self.gates[index]
        decision = await self.check.check(gate.window())
        if decision.action != "block":
            if finished is None:
                return self._release(index)
            self.ended.add(index)
            return [*self._release(index), (index, finished)]
        gate.held.clear()
        self.ended.add(index)
        if finished is not None:  # the engine's counts are the truth
            return [
                (
                    index,
                    Finished(
                        "content_filter",
                        finished.prompt_tokens,
                        finished.completion_tokens,
                        finished.cached_tokens,
                    ),
                )
            ]
        self.abort(index)
        return [
            (index, Finished("content_filter", self.prompt_tokens[index], self.generated[index]))
        ]

    def _release(self, index: int) -> list[Tagged]:
        return [(index, delta) for delta in self.gates[index].release()]
