"""The router's choice: policies, conversation affinity and rollout weights."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from headrace.routing.policy import Candidate, Ewma, order, pick_version, version_order

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


def test_an_affinitys_deployment_hands_over_when_it_carries_well_over_its_share() -> None:
    idle = [Candidate(n) for n in "abcd"]
    home = order(idle, "least_outstanding", affinity="conv", rng=RNG)
    busy = [Candidate(c.name, outstanding=20 if c is home[0] else 1) for c in idle]
    moved = order(busy, "least_outstanding", affinity="conv", rng=RNG)
    assert moved[0].name == home[1].name  # the conversation's next choice, not any other
    assert moved[-1].name == home[0].name
    level = [Candidate(c.name, outstanding=5 if c is home[0] else 4) for c in idle]
    assert order(level, "least_outstanding", affinity="conv", rng=RNG)[0].name == home[0].name


def test_a_hot_opening_spreads_once_its_deployment_is_loaded() -> None:
    """Many conversations with one opening (one key): the first deployment takes them
    until it holds a bit over its share of what is in flight, then the next in the key's
    order takes over, and so on; no deployment gets more than 1.25 x the average."""
    load = dict.fromkeys("abcd", 0)
    for _ in range(40):
        cands = [Candidate(n, outstanding=o) for n, o in load.items()]
        load[order(cands, "least_outstanding", affinity="same", rng=RNG)[0].name] += 1
    assert max(load.values()) <= 13  # 1.25 x the average of 10, rounded up
    assert min(load.values()) > 0  # the last in its order got some too


def test_a_version_without_a_deployment_is_passed_over() -> None:
    weights = [("v1", 95.0), ("v2", 5.0), ("v3", 0.0)]
    key = next(f"c{i}" for i in range(1000) if pick_version(weights, f"c{i}") == "v2")
    assert version_order(weights, key, {"v1", "v2", "v3"}) == ["v2", "v1"]  # v3: weight 0
    assert version_order(weights, key, {"v1", "v3"}) == ["v1"]
    assert version_order(weights, key, {"v3"}) == []


versions = st.lists(
    st.tuples(st.sampled_from(["v1", "v2", "v3", "v4"]), st.integers(0, 100)),
    min_size=1,
    max_size=4,
    unique_by=lambda vw: vw[0],
).filter(lambda ws: any(w > 0 for _, w in ws))


@given(versions)
def test_each_version_gets_its_share(weights: list[tuple[str, int]]) -> None:
    pairs = [(v, float(w)) for v, w in sorted(weights)]
    n = 4000
    picks = Counter(pick_version(pairs, f"conversation-{i}") for i in range(n))
    total = sum(w for _, w in pairs)
    for version, weight in pairs:
        share = weight / total
        assert abs(picks[version] / n - share) < 0.045, (version, picks)  # > 5 sigma
        if weight == 0:
            assert picks[version] == 0


@given(versions, st.text(min_size=1, max_size=20))
def test_version_order_is_sticky_and_tries_every_live_version_once(
    weights: list[tuple[str, int]], key: str
) -> None:
    pairs = [(v, float(w)) for v, w in sorted(weights)]
    live = {v for v, w in pairs if w > 0}
    tried = version_order(pairs, key, {v for v, _ in pairs})
    assert tried[0] == pick_version(pairs, key)
    assert sorted(tried) == sorted(live)
    assert tried == version_order(pairs, key, {v for v, _ in pairs})


@given(st.integers(1, 99), st.integers(1, 99))
def test_raising_the_canary_only_moves_conversations_onto_it(before: int, after: int) -> None:
    """From 95/5 to 90/10, no conversation already on the canary goes back: a canary that
    grows keeps its users."""
    small, large = sorted((before, after))
    keys = [f"k{i}" for i in range(300)]
    was = {k: pick_version([("stable", 100.0 - small), ("zcanary", small)], k) for k in keys}
    now = {k: pick_version([("stable", 100.0 - large), ("zcanary", large)], k) for k in keys}
    assert all(now[k] == "zcanary" for k in keys if was[k] == "zcanary")


def test_ewma() -> None:
    e = Ewma(alpha=0.5)
    assert e.add(1.0) == 1.0
    assert e.add(3.0) == 2.0
    assert e.add(2.0) == 2.0
