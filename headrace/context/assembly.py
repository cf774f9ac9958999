"""Prompt assembly for the Responses API: one function turns instructions, history, the new
input, tools and the output format into the model's input, and fits it into the window.

The order is fixed so that every turn of a conversation extends the previous turn's prompt
(the engine's prefix cache then recomputes only the new turn):

    system: instructions (+ the output format's instruction)    never dropped
    history, oldest first, in whole turns                       the oldest dropped first
    the new input                                               never dropped

A turn starts at a user message and holds everything up to the next one: the assistant's
answers, its tool calls and their results, so a call is never parted from its result.
Pure: the caller passes plain item dicts and an `Encode` that renders and tokenises.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from headrace.context.prompt import fit_output_budget
from headrace.errors import ContextLengthError

Item = dict[str, Any]
Message = dict[str, Any]
# Chat-template messages and tool definitions to the prompt's token ids.
Encode = Callable[[list[Message], list[dict[str, Any]] | None], Sequence[int]]
Truncation = Literal["auto", "disabled"]


@dataclass(frozen=True, slots=True)
class Assembled:
    messages: list[Message]
    token_ids: tuple[int, ...]
    max_tokens: int  # output budget that fits the window
    dropped: tuple[str, ...]  # ids of the history items left out to fit, oldest first


def assemble(
    *,
    instructions: str | None,
    history: Sequence[Item],
    new_input: Sequence[Item],
    tools: list[dict[str, Any]] | None,
    output_format: dict[str, Any] | None,
    encode: Encode,
    context_window: int,
    max_tokens: int | None,
    default_max_tokens: int,
    truncation: Truncation,
    transform: Callable[[list[Message]], list[Message]] | None = None,
) -> Assembled:
    """The prompt for one response. With `truncation="auto"` the oldest whole turns of
    `history` are dropped until the prompt and the requested output fit; with "disabled"
    (or when even the instructions and the new input alone do not fit) it raises
    `context_length_exceeded`. `transform` rewrites the messages before they are encoded
    (personal data masked by the project's privacy policy)."""
    head = _system(instructions, output_format)
    tail = to_messages(new_input)
    groups = turns(history)

    def attempt(drop: int) -> tuple[list[Message], tuple[int, ...], int] | None:
        kept = [item for turn in groups[drop:] for item in turn]
        messages = head + to_messages(kept) + tail
        if transform is not None:
            messages = transform(messages)
        ids = tuple(encode(messages, tools))
        try:
            return (
                messages,
                ids,
                fit_output_budget(len(ids), context_window, max_tokens, default_max_tokens),
            )
        except ContextLengthError:
            return None

    whole = attempt(0)
    if whole is not None:
        return Assembled(*whole, dropped=())
    if truncation == "disabled" or attempt(len(groups)) is None:
        _refuse(head + to_messages(history) + tail, tools, encode, context_window, max_tokens)
    # Fitting is monotone in the turns dropped: search the fewest that fit.
    low, high = 1, len(groups)  # attempt(high) fits, attempt(low - 1) does not
    while low < high:
        mid = (low + high) // 2
        if attempt(mid) is None:
            low = mid + 1
        else:
            high = mid
    fitted = attempt(low)
    if fitted is None:  # unreachable: attempt(len(groups)) fits
        raise AssertionError("window fitting lost its fit")
    dropped = tuple(str(item.get("id", "")) for turn in groups[:low] for item in turn)
    return Assembled(*fitted, dropped=dropped)


def turns(items: Sequence[Item]) -> list[list[Item]]:
    """`items` split before each user message: whole turns, oldest first."""
    out: list[list[Item]] = []
    for item in items:
        starts = item.get("type", "message") == "message" and item.get("role") == "user"
        if starts or not out:
            out.append([])
        out[-1].append(item)
    return out


def to_messages(items: Sequence[Item]) -> list[Message]:
    """Response items as the chat template's messages: function calls join the assistant
    message before them, function call outputs become tool messages."""
    out: list[Message] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            out.append({"role": item["role"], "content": item_text(item)})
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            out.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
    return out


def item_text(item: Item) -> str:
    """The text of a message item (its text parts, joined)."""
    content = item.get("content")
    if isinstance(content, str):
        return content
    return "".join(str(part.get("text", part.get("refusal", ""))) for part in content or () if part)


def _system(instructions: str | None, output_format: dict[str, Any] | None) -> list[Message]:
    parts = [instructions] if instructions else []
    kind = (output_format or {}).get("type")
    if kind == "json_schema":
        schema = json.dumps((output_format or {}).get("schema", {}), sort_keys=True)
        parts.append(f"Respond only with JSON that matches this JSON schema: {schema}")
    elif kind == "json_object":
        parts.append("Respond only with a JSON object.")
    return [{"role": "system", "content": "\n\n".join(parts)}] if parts else []


def _refuse(
    messages: list[Message],
    tools: list[dict[str, Any]] | None,
    encode: Encode,
    context_window: int,
    max_tokens: int | None,
) -> NoReturn:
    prompt_tokens = len(encode(messages, tools))
    asked = max_tokens if max_tokens is not None else 1
    raise ContextLengthError(
        f"This model's maximum context length is {context_window} tokens. However, your "
        f"input and requested output come to {prompt_tokens + asked} tokens "
        f"({prompt_tokens} of input, {asked} of output). Shorten the input, or set "
        "'truncation' to 'auto' to drop the oldest turns of the conversation.",
        param="input",
    )
