"""The drills of training/tasks.py, train split only: digits for arithmetic, two-letter
pieces for the string tasks."""

from __future__ import annotations

import random
import re

import pytest

from training import sampling, tasks


def operands(split: str, seed: int) -> list[tuple[str, int, int]]:
    """(operator, a, b) of 300 arithmetic questions drawn for `split`."""
    rng = random.Random(seed)
    found = []
    for _ in range(300):
        answer = str(tasks.arithmetic(rng, split)[-1][0]["content"])
        result = answer.rsplit("So ", 1)[-1]  # worked answers end with `So a + b = c.`
        match = re.match(r"(\d+) ([-+x]) (\d+) =", result)
        assert match is not None, answer
        found.append((match[2], int(match[1]), int(match[3])))
    return found


def test_the_eval_split_does_not_see_the_drill(monkeypatch: pytest.MonkeyPatch) -> None:
    before = operands("eval", 5)
    monkeypatch.setattr(tasks, "DIGIT_DRILL", 1.0)
    assert operands("eval", 5) == before  # same draws: the eval set is unchanged


def test_the_train_split_drills_single_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "DIGIT_DRILL", 1.0)
    drawn = [(op, a, b) for op, a, b in operands("train", 5) if op != "x"]
    assert len(drawn) > 200
    assert all(a <= 18 and b <= 9 for _, a, b in drawn)
    assert all(a <= 9 for op, a, _ in drawn if op == "+")
    monkeypatch.setattr(tasks, "DIGIT_DRILL", 0.0)
    assert any(a > 18 for op, a, _ in operands("train", 5) if op != "x")


def words(split: str, seed: int, count: int = 300) -> list[str]:
    """The words of `count` string tasks drawn for `split`, and the draw that follows."""
    rng = random.Random(seed)
    drawn = []
    for _ in range(count):
        answer = str(tasks.string_task(rng, split)[-1][0]["content"])
        counted = re.search(r"So (\w+) has", answer)  # `1 c, 2 a, ... So cat has 3 letters.`
        drawn.append(counted[1] if counted else answer.split()[0])
    return [*drawn, str(rng.random())]


def test_the_letter_drill_leaves_every_other_draw_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tasks, "LETTER_DRILL", 0.0)
    plain_train, plain_eval = words("train", 3), words("eval", 3)
    monkeypatch.setattr(tasks, "LETTER_DRILL", 1.0)
    assert words("eval", 3) == plain_eval  # the eval set is unchanged
    drilled = words("train", 3)
    assert drilled[-1] == plain_train[-1]  # the generator's own draws go on as before
    assert drilled != plain_train
    pieces = set(sampling._train_pieces())
    for word in drilled[:-1]:
        assert 3 <= len(word) <= 7
        assert sampling._in_split("w:" + word, "train")
        assert all(word[i : i + 2] in pieces for i in range(0, len(word) - 1, 2)), word
