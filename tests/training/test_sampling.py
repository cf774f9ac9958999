"""Held-out draws of names and cities for the training corpus (training/sampling.py)."""

from __future__ import annotations

import random

from training.sampling import INVENTED_SHARE, _heldout, pick_entity
from training.tables import CITIES, NAMES


def test_training_names_are_partly_made_up_and_never_held_out() -> None:
    rng = random.Random(0)
    drawn = [pick_entity(rng, NAMES, "train") for _ in range(2000)]
    invented = [name for name in drawn if name not in NAMES]
    assert abs(len(invented) / len(drawn) - INVENTED_SHARE) < 0.05
    assert all(name[0].isupper() and name[1:].islower() for name in invented)
    assert not any(_heldout(name) for name in drawn if name in NAMES)


def test_eval_cities_are_real_and_held_out() -> None:
    rng = random.Random(0)
    drawn = [pick_entity(rng, CITIES, "eval") for _ in range(500)]
    assert all(city in CITIES and _heldout(city) for city in drawn)


def test_the_same_seed_draws_the_same_entities() -> None:
    def draws() -> list[str]:
        rng = random.Random(7)
        return [pick_entity(rng, CITIES, "train") for _ in range(50)]

    assert draws() == draws()
