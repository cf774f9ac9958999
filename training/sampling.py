"""Random draws that respect the held-out split, and message helpers.

Held-out material (operand pairs, words, names, cities) is split by a stable
hash so the ``eval`` split only contains items never seen in the ``train``
split.  :func:`user`, :func:`assistant` and :func:`vary` build tagged messages.
"""

from __future__ import annotations

import functools
import random
import zlib
from collections.abc import Callable

from training.chat import Message, Split
from training.tables import WORDS

_SYLLABLES: tuple[str, ...] = tuple(c + v for c in "bdfgklmnprstvz" for v in "aeiou")


# --------------------------------------------------------------------------- #
# Held-out splits
# --------------------------------------------------------------------------- #


def _heldout(key: str) -> bool:
    """Stable hash split: about one key in five is reserved for the eval split."""
    return zlib.crc32(key.encode("utf-8")) % 5 == 0


def _in_split(key: str, split: Split) -> bool:
    return _heldout(key) == (split == "eval")


#: Share of the names and cities drawn for the train split that are made up
#: (:func:`pick_entity`). A closed list of real ones, seen thousands of times each, let
#: the model recall a likely entity instead of copying the one in the conversation
#: (`Weather in Naples?` -> `get_weather(city="Nairobi")`, docs/models.md); with made-up
#: ones in the mix, only copying gets them right. The eval split keeps real ones.
INVENTED_SHARE = 0.5


def pick_entity(rng: random.Random, items: tuple[str, ...], split: Split) -> str:
    """A name or city for ``split``: from ``items`` (held-out split respected) or, for
    the train split, a made-up capitalised word ``INVENTED_SHARE`` of the time."""
    if split == "train" and rng.random() < INVENTED_SHARE:
        return _pseudo_word(rng).capitalize()
    return pick(rng, items, split)


def pick(rng: random.Random, items: tuple[str, ...] | list[str], split: Split) -> str:
    """A random item whose held-out status matches ``split``."""
    while True:
        item = rng.choice(items)
        if _in_split(item, split):
            return item


def _pseudo_word(rng: random.Random) -> str:
    """A pronounceable made-up word of 2 or 3 syllables (4 to 6 letters)."""
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 2, 3))))


def draw_word(rng: random.Random, split: Split) -> str:
    """A real or made-up word from ``split``."""
    while True:
        word = rng.choice(WORDS) if rng.random() < 0.6 else _pseudo_word(rng)
        if 3 <= len(word) <= 7 and _in_split("w:" + word, split):
            return word


@functools.cache
def _train_pieces() -> tuple[str, ...]:
    """The two-letter pieces the tokenizer cuts the train split's real words into."""
    words = [w for w in WORDS if _in_split("w:" + w, "train")]
    return tuple(sorted({w[i : i + 2] for w in words for i in range(0, len(w) - 1, 2)}))


def drill_word(rng: random.Random) -> str:
    """A made-up word of the train split, of two-letter pieces of real training words
    (`ct` + `ab`, and maybe a last letter): spelling it is spelling those pieces."""
    while True:
        word = "".join(rng.choice(_train_pieces()) for _ in range(rng.choice((2, 3))))
        if rng.random() < 0.5:
            word += rng.choice("abcdefghijklmnopqrstuvwxyz")
        if 3 <= len(word) <= 7 and _in_split("w:" + word, "train"):
            return word


def draw_pair(
    rng: random.Random, split: Split, kind: str, draw: Callable[[], tuple[int, int]]
) -> tuple[int, int]:
    """Draw operand pairs until one falls in ``split``."""
    while True:
        a, b = draw()
        if _in_split(f"{kind}:{a}:{b}", split):
            return a, b


# --------------------------------------------------------------------------- #
# Messages: assistant turns are tagged with a family
# --------------------------------------------------------------------------- #


def user(text: str) -> tuple[Message, None]:
    return {"role": "user", "content": text}, None


def assistant(text: str, family: str) -> tuple[Message, str]:
    return {"role": "assistant", "content": text}, family


def vary(rng: random.Random, text: str) -> str:
    """Light surface noise on user text: lower-case first letter, drop end punctuation."""
    if rng.random() < 0.15 and text[:1].isupper() and not text.startswith("I "):
        text = text[0].lower() + text[1:]
    if rng.random() < 0.15 and text[-1:] in ".?!":
        text = text[:-1]
    return text
