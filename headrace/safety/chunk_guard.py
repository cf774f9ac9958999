"""The check-output stage for proxied models: moderation of an upstream's chunks.

    chunks = guarded_chunks(upstream_chunks, output_check)     # streamed
    answer = await guarded_answer(answer, output_check)        # one JSON answer

The same rules as `output_guard.py` for our own engine, on OpenAI-shaped chunks instead of
engine events: each choice's text (`delta.content`, or `text` for completions) is checked
on its last `window_chars` characters every `every_chars` new ones and once more when the
choice finishes. While the policy can block, a choice's chunks wait until a check has
covered their text (or `max_hold_s` has passed, then they are checked at once); a block
drops the held chunks and finishes the choice with `content_filter`. When every choice
is blocked the upstream is no longer read. Flag-only policies hold nothing back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from headrace.safety.output_guard import OutputCheck

Chunk = dict[str, Any]


@dataclass(slots=True)
class _Gate:
    """One choice: its recent text, what is unchecked, and the chunks held back."""

    text: str = ""
    unchecked: int = 0
    held: list[Chunk] = field(default_factory=list)
    held_since: float = 0.0
    ended: bool = False


async def guarded_chunks(chunks: AsyncIterator[Chunk], check: OutputCheck) -> AsyncIterator[Chunk]:
    """`chunks` (an upstream's stream, parsed) with each choice's text checked."""
    guard = _Guard(check)
    iterator = aiter(chunks)
    pending: asyncio.Future[Chunk] | None = None
    try:
        while not guard.all_blocked:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=guard.hold_timeout())
            if not done:
                for out in await guard.flush():
                    yield out
                continue
            try:
                chunk = pending.result()
            except StopAsyncIteration:
                break
            except Exception:
                for out in await guard.finish():  # what came before a failure, checked
                    yield out
                raise
            finally:
                pending = None
            for out in await guard.on_chunk(chunk):
                yield out
        for out in await guard.finish():
            yield out
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()  # blocked or left early: the upstream connection is let go


async def guarded_answer(answer: Chunk, check: OutputCheck) -> Chunk:
    """A whole (non-streamed) answer, checked as if it had streamed: a blocked choice
    keeps the text that passed its checks and finishes with `content_filter`."""
    for choice in answer.get("choices") or ():
        message = choice.get("message")
        key, holder = ("content", message) if isinstance(message, dict) else ("text", choice)
        text = holder.get(key)
        if not isinstance(text, str) or not text:
            continue
        gate, passed = _Gate(), 0
        for start in range(0, len(text), check.every_chars):
            piece = text[start : start + check.every_chars]
            gate.text = (gate.text + piece)[-check.window_chars :]
            if (await check.check(gate.text)).action == "block":
                holder[key] = text[:passed] if check.hold else text
                choice["finish_reason"] = "content_filter"
                break
            passed = start + len(piece)
    return answer


class _Guard:
    def __init__(self, check: OutputCheck) -> None:
        self.check = check
        self.gates: dict[int, _Gate] = {}
        self.template: Chunk = {}  # id, object, created, model: for the chunks made here

    @property
    def all_blocked(self) -> bool:
        return bool(self.gates) and all(g.ended for g in self.gates.values())

    def hold_timeout(self) -> float | None:
        held = [g.held_since for g in self.gates.values() if g.held and not g.ended]
        if not held:
            return None
        return max(0.0, min(held) + self.check.max_hold_s - time.monotonic())

    async def on_chunk(self, chunk: Chunk) -> list[Chunk]:
        choices = chunk.get("choices") or []
        if not choices:
            return [chunk]  # the usage chunk, or anything else without text
        self.template = {k: v for k, v in chunk.items() if k not in ("choices", "usage")}
        out: list[Chunk] = []
        for choice in choices:  # one chunk per choice: each is held or released on its own
            part = {**chunk, "choices": [choice]}
            if len(choices) > 1:
                part.pop("usage", None)
            out.extend(await self._on_choice(int(choice.get("index", 0)), choice, part))
        if len(choices) > 1 and "usage" in chunk:
            out.append({**self.template, "choices": [], "usage": chunk["usage"]})
        return out

    async def _on_choice(self, index: int, choice: Chunk, part: Chunk) -> list[Chunk]:
        gate = self.gates.setdefault(index, _Gate())
        if gate.ended:
            return []  # blocked: the rest of this choice is dropped
        text = _text(choice)
        gate.text = (gate.text + text)[-self.check.window_chars :]
        gate.unchecked += len(text)
        finished = choice.get("finish_reason") is not None
        if not self.check.hold:
            out = [part]
            if gate.unchecked >= self.check.every_chars or (finished and gate.unchecked):
                gate.unchecked = 0
                await self.check.check(gate.text)  # flag-only: recorded, nothing withheld
            return out
        if not gate.held:
            gate.held_since = time.monotonic()
        gate.held.append(part)
        if gate.unchecked >= self.check.every_chars or finished:
            return await self._checked(index)
        return []

    async def flush(self) -> list[Chunk]:
        """Check every choice whose chunks have waited `max_hold_s`, now."""
        due = time.monotonic() - self.check.max_hold_s
        out: list[Chunk] = []
        for index, gate in self.gates.items():
            if gate.held and not gate.ended and gate.held_since <= due:
                out.extend(await self._checked(index))
        return out

    async def finish(self) -> list[Chunk]:
        """The upstream ended: whatever is still held gets its check."""
        out: list[Chunk] = []
        for index, gate in self.gates.items():
            if gate.held and not gate.ended:
                out.extend(await self._checked(index))
        return out

    async def _checked(self, index: int) -> list[Chunk]:
        gate = self.gates[index]
        window, gate.unchecked = gate.text, 0
        if not window.strip():
            released, gate.held = gate.held, []
            return released
        decision = await self.check.check(window)
        if decision.action != "block":
            released, gate.held = gate.held, []
            return released
        gate.held, gate.ended = [], True
        end = {"index": index, "delta": {}, "finish_reason": "content_filter"}
        if self.template.get("object") == "text_completion":
            end = {"index": index, "text": "", "finish_reason": "content_filter"}
        return [{**self.template, "choices": [end]}]


def _text(choice: Chunk) -> str:
    delta = choice.get("delta")
    text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
    return text if isinstance(text, str) else ""
