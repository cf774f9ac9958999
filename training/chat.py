"""Chat types shared by the corpus modules: messages, task families, conversations.

An *exchange* is a list of messages, each tagged with the task family of the
assistant turn it holds (or ``None``); :func:`assemble` turns exchanges into a
:class:`Conversation` whose graded targets are the tagged turns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Split = Literal["train", "eval"]
Message = dict[str, Any]

FAMILIES: tuple[str, ...] = (
    "greeting",
    "arithmetic",
    "counting",
    "string",
    "facts",
    "repeat",
    "memory",
    "json",
    "tool_call",
    "tool_answer",
    "refusal",
)


@dataclass
class Conversation:
    """A chat plus which assistant turns are graded and under which family."""

    messages: list[Message]
    tools: list[dict[str, Any]] | None = None
    #: (index into ``messages`` of an assistant turn, task family)
    targets: list[tuple[int, str]] = field(default_factory=list)


Exchange = list[tuple[Message, str | None]]


def assemble(
    pending: Exchange, system: str | None, tools: list[dict[str, Any]] | None
) -> Conversation:
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    targets: list[tuple[int, str]] = []
    for message, family in pending:
        if family in FAMILIES:
            targets.append((len(messages), family))
        messages.append(message)
    return Conversation(messages=messages, tools=tools, targets=targets)
