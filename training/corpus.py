"""Seeded, deterministic synthetic instruction corpus for headrace-tiny-chat.

Each :class:`Conversation` is a short multi-turn chat in OpenAI message format
(optionally with tool definitions) built from one or more *exchanges*.  Every
exchange belongs to a task family and tags the assistant turns it produces;
those tags drive the per-family eval.

Answers use short, regular formats a tiny model can learn: arithmetic is worked
column by column, string tasks spell the word out first, facts come from the
tables below.  Held-out material (arithmetic operand pairs, words, names,
cities) is split by a stable hash so the ``eval`` split only contains numbers
and words never seen in the ``train`` split.

The pieces live in :mod:`training.chat` (types and assembly),
:mod:`training.tables` (shipped tables), :mod:`training.sampling` (held-out
draws and message helpers), :mod:`training.tasks` and
:mod:`training.tasks_context` (exchange generators) and :mod:`training.tools`
(tool conversations); this module mixes them into a corpus.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from training.chat import FAMILIES, Conversation, Exchange, Message, Split, assemble
from training.tables import (
    CAPITALS,
    CITIES,
    DAYS,
    MONTHS,
    NAMES,
    SYSTEM_PROMPTS,
    WORDS,
)
from training.tasks import arithmetic, counting, greeting, string_task
from training.tasks_context import facts, json_task, memory, refusal, repeat
from training.tools import TOOLS, tool_conversation

__all__ = [
    "CAPITALS",
    "CITIES",
    "DAYS",
    "FAMILIES",
    "GENERATORS",
    "MIXES",
    "MONTHS",
    "NAMES",
    "TOOLS",
    "WORDS",
    "Conversation",
    "Exchange",
    "Message",
    "Split",
    "conversation",
    "eval_set",
    "generate",
]

#: Exchange generators by name ("tool" conversations are built separately).
GENERATORS: dict[str, Callable[[random.Random, Split], Exchange]] = {
    "greeting": greeting,
    "arithmetic": arithmetic,
    "counting": counting,
    "string": string_task,
    "facts": facts,
    "repeat": repeat,
    "memory": memory,
    "json": json_task,
    "refusal": refusal,
}
#: Relative weights of the generators and of tool conversations in a corpus.
#: "copy" shifts weight from the families a tiny model learns quickly (fixed replies,
#: table facts) to those that need copying from the context.
MIXES: dict[str, dict[str, float]] = {
    "balanced": {
        "greeting": 4,
        "arithmetic": 22,
        "counting": 9,
        "string": 18,
        "facts": 7,
        "repeat": 8,
        "memory": 10,
        "json": 7,
        "refusal": 3,
        "tool": 14,
    },
    "copy": {
        "greeting": 2,
        "arithmetic": 18,
        "counting": 6,
        "string": 18,
        "facts": 4,
        "repeat": 16,
        "memory": 14,
        "json": 10,
        "refusal": 2,
        "tool": 16,
    },
    # The warm-up phase of a curriculum (`train.py --warm-mix`): only replies that copy from
    # the conversation, so the copying circuit (an induction head) forms first.
    "copyonly": {
        "greeting": 0,
        "arithmetic": 0,
        "counting": 0,
        "string": 35,
        "facts": 0,
        "repeat": 35,
        "memory": 20,
        "json": 10,
        "refusal": 0,
        "tool": 0,
    },
}


def conversation(rng: random.Random, split: Split, mix: str = "balanced") -> Conversation:
    """One random conversation: optional system prompt, then 1 to 3 exchanges."""
    weights = MIXES[mix]
    system = rng.choice(SYSTEM_PROMPTS) if rng.random() < 0.35 else None
    if rng.random() < weights["tool"] / sum(weights.values()):
        return tool_conversation(rng, split, system)
    names = list(GENERATORS)
    pending: Exchange = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        name = rng.choices(names, weights=[weights[n] for n in names])[0]
        pending += GENERATORS[name](rng, split)
    return assemble(pending, system, None)


def generate(
    count: int, seed: int, split: Split = "train", mix: str = "balanced"
) -> Iterator[Conversation]:
    """``count`` conversations from ``seed``; the same arguments give the same corpus."""
    rng = random.Random(f"headrace-{split}-{seed}")
    for _ in range(count):
        yield conversation(rng, split, mix)


def eval_set(per_family: int, seed: int) -> list[Conversation]:
    """Held-out conversations with ``per_family`` graded turns for every family.

    Conversations are drawn from the ``eval`` split until every family has enough
    graded turns; extra targets of a family that is already full are dropped.
    """
    counts = dict.fromkeys(FAMILIES, 0)
    chosen: list[Conversation] = []
    for conv in generate(10**9, seed, "eval"):
        keep = []
        for index, family in conv.targets:
            if counts[family] < per_family:
                counts[family] += 1
                keep.append((index, family))
        if keep:
            conv.targets = keep
            chosen.append(conv)
        if all(c >= per_family for c in counts.values()):
            return chosen
    raise AssertionError("unreachable")
