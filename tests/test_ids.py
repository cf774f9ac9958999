"""Pooled random ids: the right length, and no id handed out twice."""

from __future__ import annotations

from headrace.ids import random_hex


def test_ids_are_hex_of_the_asked_length_and_distinct() -> None:
    ids = [random_hex(12) for _ in range(5000)]  # crosses several 4 KiB refills
    assert all(len(i) == 24 and int(i, 16) >= 0 for i in ids)
    assert len(set(ids)) == len(ids)
    assert len(random_hex(5000)) == 10_000  # larger than one refill
