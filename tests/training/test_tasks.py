"""The arithmetic family's digit drill (training/tasks.py): train split only."""

from __future__ import annotations

import random
import re

import pytest

from training import tasks


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
