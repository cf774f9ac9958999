"""The router's choice: policies, conversation affinity and rollout weights."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from headrace.routing.policy import Candidate, Ewma, order, pick_version

RNG = random.Random(0)


def test_least_outstanding_counts_the_reported_queue() -> None:
    a = Candidate("a", outstanding=3, queue_depth=0)
    b = Candidate("b", outstanding=1, queue_depth=5)
    c = Candidate("c", outstanding=2, queue_depth=0)
    assert [x.name for x in order([a, b, c], "least_outstanding", rng=RNG)] == ["c", "a", "b"]


def test_ties_are_shared() -> None:
    same = [Candidate(n) for n in "abcd"]
    firsts = Counter(order(same, "least_outstanding", rng=RNG)[0].name for _ in range(400))
    assert set(firsts) == set("abcd")
    assert min(firsts.values()) > 60


def test_lowest_latency_tries_the_unmeasured_first_then_the_fastest() -> None:
    fast, slow, new = Candidate("f", ttft_s=0.1), Candidate("s", ttft_s=0.9), Candidate("n")
    assert [c.name for c in order([slow, fast, new], "lowest_latency", rng=RNG)] == ["n", "f", "s"]


def test_lowest_cost() -> None:
    cheap, dear = Candidate("cheap", price_per_1m=0.2), Candidate("dear", price_per_1m=3.0)
    assert order([dear, cheap], "lowest_cost", rng=RNG)[0].name == "cheap"


def test_weighted_follows_the_weights_and_never_picks_zero_first() -> None:
    cands = [Candidate("a", weight=3), Candidate("b", weight=1), Candidate("z", weight=0)]
    firsts = Counter(order(cands, "weighted", rng=RNG)[0].name for _ in range(4000))
    assert firsts["z"] == 0
    assert 2.5 < firsts["a"] / firsts["b"] < 3.6


names = st.lists(st.text("abcdefgh", min_size=1, max_size=4), min_size=2, max_size=8, unique=True)


@given(names, st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=30))
def test_affinity_moves_only_the_conversations_of_a_removed_deployment(
    deployments: list[str], conversations: list[str]
) -> None:
    full = [Candidate(n) for n in deployments]
    gone = deployments[0]
    rest = [c for c in full if c.name != gone]
    for conv in conversations:
        before = order(full, "least_outstanding", affinity=conv, rng=RNG)[0].name
        after = order(rest, "least_outstanding", affinity=conv, rng=RNG)[0].name
        assert before == order(full, "lowest_cost", affinity=conv, rng=RNG)[0].name  # stable
        if before != gone:
            assert after == before


def test_canary_gets_its_share_and_a_conversation_stays_on_its_version() -> None:
    weights = [("v1", 95.0), ("v2-canary", 5.0)]
    picks = Counter(pick_version(weights, f"conv-{i}") for i in range(20_000))
    assert 0.04 < picks["v2-canary"] / 20_000 < 0.06
    assert {pick_version(weights, "conv-42") for _ in range(10)} == {
        pick_version(weights, "conv-42")
    }
    assert pick_version([("v1", 0.0), ("v2", 1.0)], "anything") == "v2"  # rolled forward
    assert pick_version([("v1", 1.0), ("v2", 0.0)], "anything") == "v1"  # rolled back


def test_ewma() -> None:
    e = Ewma(alpha=0.5)
    assert e.add(1.0) == 1.0
    assert e.add(3.0) == 2.0
    assert e.add(2.0) == 2.0
