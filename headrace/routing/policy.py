"""The router's choice, pure: which deployment serves a request, and in what order the
others are tried after it.

Permission, tier and health filter the candidates first (the router's job); here the
policy orders what is left:

- `least_outstanding` (default): fewest requests in flight, counting what a worker reports
  waiting in its own queue.
- `lowest_latency`: lowest time to first token, as an exponentially weighted moving average.
- `lowest_cost`: cheapest per token.
- `weighted`: at random, in proportion to the weights.

A request with an affinity key (its conversation) goes to the same deployment as long as
that one is a candidate (rendezvous hashing: removing one deployment moves only its own
conversations), so the conversation's KV prefix stays warm there; unless that deployment
carries well over its share of the load (consistent hashing with bounded loads, Mirrokni
et al. 2018): then the next one in the conversation's order takes it, so one hot
conversation, or many that open alike, cannot pile onto one deployment.

A rollout splits a model's traffic between versions by weight (`pick_version`), sticky per
conversation; `version_order` also says where to go when the picked version has nothing
left to serve, or fails.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

Policy = Literal["least_outstanding", "lowest_latency", "lowest_cost", "weighted"]
# An affinity's deployment keeps its conversations up to this many times the average load.
AFFINITY_LOAD_FACTOR = 1.25


@dataclass(frozen=True, slots=True)
class Candidate:
    name: str
    weight: float = 1.0
    outstanding: int = 0  # sent by this gateway, not finished
    queue_depth: int = 0  # waiting in the deployment's own queue, as it last reported
    ttft_s: float | None = None  # moving average; None: not measured yet
    price_per_1m: float = 0.0  # input and output prices together


def order(
    candidates: Sequence[Candidate],
    policy: Policy,
    *,
    affinity: str | None = None,
    rng: random.Random,
) -> list[Candidate]:
    """Candidates in the order to try them: the choice first."""
    if not candidates:
        return []
    if affinity is not None:
        ranked = sorted(candidates, key=lambda c: _score(affinity, c.name), reverse=True)
        total = sum(_load(c) for c in candidates)
        cap = math.ceil(AFFINITY_LOAD_FACTOR * (total + 1) / len(candidates))
        return [c for c in ranked if _load(c) < cap] + [c for c in ranked if _load(c) >= cap]
    if policy == "weighted":
        return _weighted_order(candidates, rng)
    # Random tie-breaks: equal candidates share the load instead of the first taking it all.
    shuffled = list(candidates)
    rng.shuffle(shuffled)
    if policy == "least_outstanding":
        return sorted(shuffled, key=_load)
    if policy == "lowest_latency":
        # Unmeasured first: a new deployment gets traffic, and so a measurement.
        return sorted(shuffled, key=lambda c: -1.0 if c.ttft_s is None else c.ttft_s)
    return sorted(shuffled, key=lambda c: c.price_per_1m)


def pick_version(weights: Sequence[tuple[str, float]], sticky_key: str) -> str:
    """A rollout's version for `sticky_key` (a conversation, else the request): the same
    key always lands on the same version while the weights stay, so a conversation does
    not switch models between turns; over many keys each version gets its share."""
    total = sum(w for _, w in weights if w > 0)
    if total <= 0:
        raise ValueError("a rollout needs a version with a positive weight")
    point = _unit(sticky_key) * total
    for name, weight in weights:
        if weight <= 0:
            continue
        if point < weight:
            return name
        point -= weight
    return next(name for name, w in reversed(weights) if w > 0)  # float rounding at the top


def version_order(
    weights: Sequence[tuple[str, float]], sticky_key: str, available: Collection[str]
) -> list[str]:
    """The rollout's versions to try for `sticky_key`, among the `available` ones (those
    with a deployment that can take the request now): the sticky pick first, then the
    others of positive weight, each drawn in proportion to its weight from those left.
    A picked version with nothing available is passed over rather than failing the
    request; versions of weight 0 are never tried."""
    live = [(name, weight) for name, weight in weights if weight > 0 and name in available]
    if not live:
        return []
    picked = pick_version(weights, sticky_key)
    out = [picked] if picked in available else []
    rest = [(name, weight) for name, weight in live if name != picked]
    while rest:
        name = pick_version(rest, sticky_key)
        out.append(name)
        rest = [(n, w) for n, w in rest if n != name]
    return out


class Ewma:
    """An exponentially weighted moving average; `alpha` is the newest sample's weight."""

    __slots__ = ("alpha", "value")

    def __init__(self, alpha: float = 0.2) -> None:
        self.alpha = alpha
        self.value: float | None = None

    def add(self, sample: float) -> float:
        self.value = (
            sample if self.value is None else self.value + self.alpha * (sample - self.value)
        )
        return self.value


def _weighted_order(candidates: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
    """A weighted random permutation (Efraimidis-Spirakis keys): the first is drawn in
    proportion to the weights, the next from the rest, and so on."""
    keyed = [(rng.random() ** (1.0 / c.weight) if c.weight > 0 else -1.0, c) for c in candidates]
    return [c for _, c in sorted(keyed, key=lambda kc: kc[0], reverse=True)]


def _load(c: Candidate) -> int:
    return c.outstanding + c.queue_depth


def _unit(key: str) -> float:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _score(affinity: str, name: str) -> float:
    return _unit(f"{affinity}\x00{name}")
