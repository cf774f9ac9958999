"""PII mode `mask`: the model sees placeholders, the caller sees their own data.

    masker = Masker()
    prompt = masker.mask("Write to bob@example.com")   # "Write to <EMAIL_1>"
    restorer = masker.restorer()
    restorer.push("Sent to <EMA") + restorer.push("IL_1>.") + restorer.flush()
    # "Sent to bob@example.com."

One `Masker` per request: the same value gets the same placeholder in every message, and
the mapping lives only as long as the request. The restorer streams: a tail that may still
become a known placeholder is held back until it does (or cannot), so a placeholder split
across deltas is restored whole, and other text is never delayed.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from headrace.engine.interface import Finished, GenerationEvent, TextDelta
from headrace.safety.pii import PiiKind, find_pii

_PLACEHOLDER = re.compile(r"<[A-Z_]+_\d+>")


@dataclass(slots=True)
class Masker:
    kinds: frozenset[PiiKind] | None = None  # None: every kind
    originals: dict[str, str] = field(default_factory=dict)  # placeholder -> value
    _placeholders: dict[str, str] = field(default_factory=dict)  # value -> placeholder
    _counts: dict[str, int] = field(default_factory=dict)

    def mask(self, text: str) -> str:
        """`text` with each piece of personal data replaced by a placeholder."""
        spans = find_pii(text, self.kinds)
        if not spans:
            return text
        out: list[str] = []
        at = 0
        for span in spans:
            out.append(text[at : span.start])
            out.append(self._placeholder(span.kind, span.text))
            at = span.end
        out.append(text[at:])
        return "".join(out)

    def _placeholder(self, kind: PiiKind, value: str) -> str:
        found = self._placeholders.get(value)
        if found is None:
            n = self._counts[kind] = self._counts.get(kind, 0) + 1
            found = f"<{kind.upper()}_{n}>"
            self._placeholders[value] = found
            self.originals[found] = value
        return found

    def unmask(self, text: str) -> str:
        """A whole text with every known placeholder restored."""
        if not self.originals or "<" not in text:
            return text
        return _PLACEHOLDER.sub(lambda m: self.originals.get(m.group(), m.group()), text)

    def restorer(self) -> Restorer:
        """A streaming restorer for one output (one per choice)."""
        return Restorer(self)


@dataclass(slots=True)
class Restorer:
    masker: Masker
    _held: str = ""

    def push(self, text: str) -> str:
        """What of the output so far can be shown, placeholders restored."""
        buf = self._held + text
        self._held = ""
        start = buf.rfind("<")
        if start >= 0 and self._may_become_placeholder(buf[start:]):
            buf, self._held = buf[:start], buf[start:]
        return self.masker.unmask(buf)

    def flush(self) -> str:
        """The end of the output: a held tail that never completed is shown as it is."""
        rest, self._held = self._held, ""
        return rest

    def _may_become_placeholder(self, tail: str) -> bool:
        return ">" not in tail and any(p.startswith(tail) for p in self.masker.originals)


def mask_messages(masker: Masker, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with their content and earlier tool-call arguments masked: chat-template
    messages (text content), or the wire's, whose content may be a list of parts (each
    text part masked; images and audio go as they are)."""
    out = []
    for msg in messages:
        masked = msg | {"content": _masked_content(masker, msg.get("content"))}
        if msg.get("tool_calls"):
            masked["tool_calls"] = [
                call
                | {
                    "function": call["function"]
                    | {"arguments": masker.mask(call["function"].get("arguments", ""))}
                }
                for call in msg["tool_calls"]
            ]
        out.append(masked)
    return out


def mask_prompt(masker: Masker, prompt: Any) -> Any:
    """A legacy completion's prompt masked: a string, or each string of a list (token ids
    are sent as they are: they cannot be read without the model's tokenizer)."""
    if isinstance(prompt, str):
        return masker.mask(prompt)
    if isinstance(prompt, list):
        return [masker.mask(p) if isinstance(p, str) else p for p in prompt]
    return prompt


def _masked_content(masker: Masker, content: Any) -> Any:
    if isinstance(content, list):
        return [
            part | {"text": masker.mask(part["text"])}
            if isinstance(part, dict) and isinstance(part.get("text"), str)
            else part
            for part in content
        ]
    return masker.mask(content or "")


async def restore_events(
    events: AsyncIterator[tuple[int, GenerationEvent]], masker: Masker
) -> AsyncIterator[tuple[int, GenerationEvent]]:
    """A run's events (tagged with their choice) with placeholders restored in the text,
    one restorer per choice; a held tail comes out just before its choice's `Finished`."""
    restorers: dict[int, Restorer] = {}
    async for index, ev in events:
        restorer = restorers.setdefault(index, masker.restorer())
        if isinstance(ev, Finished):
            if tail := restorer.flush():
                yield index, TextDelta(text=tail, token_ids=())
            yield index, ev
        else:
            yield index, replace(ev, text=restorer.push(ev.text))


# Proxied models: their answers arrive as the API's JSON (a chat completion or its chunks).


def restore_answer(answer: dict[str, Any], masker: Masker) -> None:
    """A chat completion's (or completion's) text and tool-call arguments, restored."""
    for choice in answer.get("choices") or ():
        if isinstance(choice.get("text"), str):
            choice["text"] = masker.unmask(choice["text"])
        message = choice.get("message") or {}
        if isinstance(message.get("content"), str):
            message["content"] = masker.unmask(message["content"])
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            if isinstance(function.get("arguments"), str):
                function["arguments"] = masker.unmask(function["arguments"])


async def restored_chunks(
    chunks: AsyncIterator[dict[str, Any]], masker: Masker
) -> AsyncIterator[dict[str, Any]]:
    """Chat completion (or completion) chunks with placeholders restored: one restorer per
    choice's text and per tool call's arguments; what they hold comes out in the choice's
    last chunk (the one with its `finish_reason`)."""
    restorers: dict[tuple[int, int | None], Restorer] = {}
    async for chunk in chunks:
        for choice in chunk.get("choices") or ():
            index = int(choice.get("index") or 0)
            if isinstance(choice.get("text"), str):  # a completion's chunk
                held = restorers.setdefault((index, None), masker.restorer())
                choice["text"] = held.push(choice["text"])
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                held = restorers.setdefault((index, None), masker.restorer())
                delta["content"] = held.push(delta["content"])
            for call in delta.get("tool_calls") or ():
                function = call.get("function") or {}
                if isinstance(function.get("arguments"), str):
                    held = restorers.setdefault((index, call.get("index", 0)), masker.restorer())
                    function["arguments"] = held.push(function["arguments"])
            if choice.get("finish_reason") is not None:
                _flush_choice(choice, index, restorers)
        yield chunk


def _flush_choice(
    choice: dict[str, Any], index: int, restorers: dict[tuple[int, int | None], Restorer]
) -> None:
    for key in [k for k in restorers if k[0] == index]:
        tail = restorers.pop(key).flush()
        if not tail:
            continue
        if isinstance(choice.get("text"), str):
            choice["text"] += tail
            continue
        delta = choice.setdefault("delta", {})
        if key[1] is None:
            delta["content"] = (delta.get("content") or "") + tail
        else:
            delta.setdefault("tool_calls", []).append(
                {"index": key[1], "function": {"arguments": tail}}
            )
