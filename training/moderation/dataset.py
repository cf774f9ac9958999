"""The labelled moderation set, generated from `templates.py` with a fixed seed.

    python -m training.moderation.dataset      # prints its size per category and split

The split is by template, never by sentence: a held-out template's sentences are all
unseen in training, so the scores measure generalisation to new phrasings rather than
to new slot fillers.
"""

from __future__ import annotations

import itertools
import random
import string
from dataclasses import dataclass

from headrace.safety.moderation import CATEGORIES
from training.moderation.templates import SLOTS, TEMPLATES

SEED = 20261124
PER_TEMPLATE = 24  # sentences drawn from each template at most
MIN_PER_TEMPLATE = 10  # a template with fewer slot fillings is repeated inside `FRAMES`
TEST_EVERY = 4  # one template in this many, per label set, is held out


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    labels: tuple[str, ...]
    template: int  # index of its template: the unit of the split
    test: bool


# How a sentence reaches a model in practice: alone, quoted, inside a request.
FRAMES = (
    "{}",
    "{}",
    "my friend said: {}",
    "{} - what do you think?",
    "can you help me with this: {}",
    'Reply to this message: "{}"',
    "{}. please answer quickly",
    "ok here is my question. {}",
    "I need this for tomorrow: {}",
    "{} (asking for real)",
)


def _fillings(template: str, rng: random.Random) -> list[str]:
    slots = sorted({f for _, f, _, _ in string.Formatter().parse(template) if f})
    combos = list(itertools.product(*(SLOTS[s] for s in slots)))
    rng.shuffle(combos)
    texts = [template.format(**dict(zip(slots, c, strict=True))) for c in combos[:PER_TEMPLATE]]
    out = list(texts)
    for i in range(len(texts), MIN_PER_TEMPLATE):
        out.append(rng.choice(FRAMES[2:]).format(texts[i % len(texts)]))
    return out


def _variant(text: str, rng: random.Random) -> str:
    """Surface noise a real user adds: case, end punctuation, a leading word."""
    roll = rng.random()
    if roll < 0.25:
        text = text[0].upper() + text[1:]
    elif roll < 0.35:
        text = text.upper()
    text += rng.choice(("", "", ".", "!", "?", "..."))
    if rng.random() < 0.15:
        text = rng.choice(("honestly, ", "ok so ", "hey, ", "seriously ")) + text
    return text


def build() -> list[Example]:
    """Every example, in a fixed order, with its split."""
    rng = random.Random(SEED)
    out: list[Example] = []
    index = 0
    for labels, templates in TEMPLATES:
        unknown = set(labels) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"unknown categories {unknown}")
        order = list(range(len(templates)))
        rng.shuffle(order)
        held_out = {order[i] for i in range(0, len(order), TEST_EVERY)}
        for t, template in enumerate(templates):
            for text in _fillings(template, rng):
                out.append(Example(_variant(text, rng), labels, index + t, t in held_out))
        index += len(templates)
    return out


def label_matrix(examples: list[Example]) -> list[list[int]]:
    """One row per example, one 0/1 column per category in `CATEGORIES` order."""
    return [[int(c in e.labels) for c in CATEGORIES] for e in examples]


def main() -> None:
    examples = build()
    train = [e for e in examples if not e.test]
    test = [e for e in examples if e.test]
    print(f"{len(examples)} sentences from {len({e.template for e in examples})} templates")
    print(f"{'category':<24}{'train':>8}{'test':>8}")
    for c in (*CATEGORIES, "benign"):

        def has(e: Example, c: str = c) -> bool:
            return (not e.labels) if c == "benign" else c in e.labels

        print(f"{c:<24}{sum(map(has, train)):>8}{sum(map(has, test)):>8}")


if __name__ == "__main__":
    main()
