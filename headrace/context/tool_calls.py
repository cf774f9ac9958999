"""The bundled template's tool-call syntax, parsed out of generated text.

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

`ToolCallStream` consumes text as it streams and splits it into plain content and complete
tool calls; a tail that could still become `<tool_call>` is held back. A block that does
not parse as a call stays content: a model's malformed attempt is shown, never dropped. So
does a call that `accept` refuses (arguments its tool's JSON schema rejects).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

OPEN = "<tool_call>"
CLOSE = "</tool_call>"


@dataclass(frozen=True, slots=True)
class ParsedToolCall:
    id: str
    name: str
    arguments: str  # a JSON object, serialised, as the OpenAI API carries it


@dataclass(slots=True)
class ToolCallStream:
    """Feed text with `push`; each call returns (content to show, calls completed)."""

    _buffer: str = ""
    _inside: bool = False
    _after_call: bool = False  # newlines right after a call separate calls: not content
    calls: list[ParsedToolCall] = field(default_factory=list)
    accept: Callable[[ParsedToolCall], bool] | None = None  # None: every call that parses

    def push(self, text: str) -> tuple[str, list[ParsedToolCall]]:
        content: list[str] = []
        done: list[ParsedToolCall] = []
        self._buffer += text
        while True:
            if not self._inside:
                if self._after_call:
                    self._buffer = self._buffer.lstrip("\n")
                    self._after_call = not self._buffer
                start = self._buffer.find(OPEN)
                if start < 0:
                    keep = _partial_open(self._buffer)  # may still become `<tool_call>`
                    content.append(self._buffer[: len(self._buffer) - keep])
                    self._buffer = self._buffer[len(self._buffer) - keep :]
                    break
                content.append(self._buffer[:start])
                self._buffer = self._buffer[start + len(OPEN) :]
                self._inside = True
            end = self._buffer.find(CLOSE)
            if end < 0:
                break
            body, self._buffer = self._buffer[:end], self._buffer[end + len(CLOSE) :]
            self._inside = False
            call = _parse(body)
            if call is None or (self.accept is not None and not self.accept(call)):
                content.append(OPEN + body + CLOSE)
            else:
                done.append(call)
                self.calls.append(call)
                self._after_call = True
        return "".join(content), done

    def flush(self) -> str:
        """The end of the output: an unfinished block is returned as content."""
        rest = (OPEN + self._buffer) if self._inside else self._buffer
        self._buffer, self._inside = "", False
        return rest


def parse_tool_calls(
    text: str, accept: Callable[[ParsedToolCall], bool] | None = None
) -> tuple[str, list[ParsedToolCall]]:
    """Split a whole output into its content and its tool calls (those `accept` takes)."""
    stream = ToolCallStream(accept=accept)
    content, calls = stream.push(text)
    return content + stream.flush(), calls


def _partial_open(text: str) -> int:
    for n in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-n:]):
            return n
    return 0


def _parse(body: str) -> ParsedToolCall | None:
    try:
        value = json.loads(body.strip())
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get("arguments", {})
    if isinstance(arguments, str):  # some models emit the arguments already serialised
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ParsedToolCall(f"call_{secrets.token_hex(12)}", value["name"], json.dumps(arguments))
