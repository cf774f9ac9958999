"""Failover across deployments and fallback models: retried only before the first event,
never twice the same text; circuits open on failures and are probed after the cooldown;
rollouts order a model's deployments by version; bounded requests in flight."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable

import pytest

from headrace.errors import ServiceUnavailableError
from headrace.routing.backoff import RetryPolicy
from headrace.routing.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from headrace.routing.router import Deployment, Router


class Flaky(Exception):
    pass


class Broken(Exception):
    pass


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def deployment(name: str, model: str = "m", **kw: object) -> Deployment:
    policy = BreakerPolicy(consecutive_failures=2, cooldown_s=10.0)
    return Deployment(name, model, breaker=CircuitBreaker(policy), **kw)  # type: ignore[arg-type]


def router(deps: list[Deployment], clock: Clock, **kw: object) -> Router:
    return Router(
        deps,
        retry=RetryPolicy(max_attempts=4, base_s=0.0),
        retryable=lambda exc: isinstance(exc, Flaky),
        rng=random.Random(1),
        clock=clock,
        **kw,  # type: ignore[arg-type]
    )


def scripted(behaviour: dict[str, str]) -> Callable[[Deployment], AsyncIterator[str]]:
    """Per deployment: `ok` streams a, b, c; `down` fails before any event; `cut` fails
    after the first; `bad` fails with a non-retryable error."""

    async def open_stream(d: Deployment) -> AsyncIterator[str]:
        mode = behaviour[d.name]
        if mode == "down":
            raise Flaky(d.name)
        if mode == "bad":
            raise Broken(d.name)
        yield f"{d.name}:a"
        if mode == "cut":
            raise Flaky(d.name)
        yield f"{d.name}:b"
        yield f"{d.name}:c"

    return open_stream


async def collect(r: Router, plan: list[Deployment], behaviour: dict[str, str]) -> list[str]:
    return [event async for _, event in r.failover(plan, scripted(behaviour))]


async def test_a_deployment_down_before_its_first_event_is_skipped() -> None:
    clock = Clock()
    a, b = deployment("a"), deployment("b")
    r = router([a, b], clock)
    events = await collect(r, [a, b], {"a": "down", "b": "ok"})
    assert events == ["b:a", "b:b", "b:c"]
    assert (a.outstanding, b.outstanding) == (0, 0)
    assert b.ttft.value is not None


async def test_a_failure_after_the_first_event_is_not_retried() -> None:
    clock = Clock()
    a, b = deployment("a"), deployment("b")
    r = router([a, b], clock)
    seen: list[str] = []

    async def read() -> None:
        async for _, event in r.failover([a, b], scripted({"a": "cut", "b": "ok"})):
            seen.append(event)

    with pytest.raises(Flaky):
        await read()
    assert seen == ["a:a"]  # b never ran: its text would have followed a's


async def test_a_bad_request_is_not_retried() -> None:
    a, b = deployment("a"), deployment("b")
    with pytest.raises(Broken):
        await collect(router([a, b], Clock()), [a, b], {"a": "bad", "b": "ok"})


async def test_the_fallback_model_serves_when_every_deployment_fails() -> None:
    clock = Clock()
    a1, a2, small = deployment("a1"), deployment("a2"), deployment("s", model="small")
    r = router([a1, a2, small], clock, fallbacks={"m": ["small"]})
    plan = r.plan("m")
    assert [d.name for d in plan][-1] == "s"
    served = [
        (d.model, e)
        async for d, e in r.failover(plan, scripted({"a1": "down", "a2": "down", "s": "ok"}))
    ]
    assert served == [("small", "s:a"), ("small", "s:b"), ("small", "s:c")]


async def test_all_down_is_a_503_with_retry_after() -> None:
    a, b = deployment("a"), deployment("b")
    with pytest.raises(ServiceUnavailableError) as err:
        await collect(router([a, b], Clock()), [a, b], {"a": "down", "b": "down"})
    assert err.value.status_code == 503
    assert err.value.headers["Retry-After"] == "1"


async def test_the_circuit_opens_leaves_the_plan_and_is_probed_after_the_cooldown() -> None:
    clock = Clock()
    a, b = deployment("a"), deployment("b")
    r = router([a, b], clock)
    for _ in range(2):
        await collect(r, [a, b], {"a": "down", "b": "ok"})
    assert r.states() == {"a": BreakerState.OPEN, "b": BreakerState.CLOSED}
    assert [d.name for d in r.plan("m")] == ["b"]
    clock.now = 10.0
    assert "a" in [d.name for d in r.plan("m")]  # half-open: one probe may go
    assert await collect(r, [a], {"a": "ok"}) == ["a:a", "a:b", "a:c"]
    assert r.states()["a"] is BreakerState.CLOSED


async def test_tiers_limit_who_may_use_a_deployment() -> None:
    premium, shared = deployment("p", tiers=frozenset({"premium"})), deployment("s")
    r = router([premium, shared], Clock())
    assert {d.name for d in r.plan("m", tier="premium")} == {"p", "s"}
    assert [d.name for d in r.plan("m", tier="free")] == ["s"]


async def test_a_conversation_sticks_to_its_deployment() -> None:
    deps = [deployment(n) for n in "abcde"]
    r = router(deps, Clock())
    first = {r.plan("m", affinity=f"conv-{i}")[0].name for i in range(50)}
    assert len(first) > 1  # conversations are spread...
    assert all(
        r.plan("m", affinity="conv-7")[0].name == r.plan("m", affinity="conv-7")[0].name
        for _ in range(5)
    )  # ...and each one stays put


async def test_a_reader_that_stops_early_leaves_no_count_behind() -> None:
    a = deployment("a")
    r = router([a], Clock())
    stream = r.failover([a], scripted({"a": "ok"}))
    await anext(stream)
    assert a.outstanding == 1
    await stream.aclose()
    assert a.outstanding == 0
    assert a.breaker.state is BreakerState.CLOSED


def versioned(**versions: str) -> list[Deployment]:
    return [deployment(name, version=v) for name, v in versions.items()]


def sticky_key_for(weights: list[tuple[str, float]], version: str) -> str:
    from headrace.routing.policy import pick_version

    return next(f"conv-{i}" for i in range(10_000) if pick_version(weights, f"conv-{i}") == version)


async def test_a_rollout_sends_a_conversation_to_its_version_first() -> None:
    deps = versioned(a="v1", b="v1", c="v2")
    r = router(deps, Clock())
    weights = [("v1", 95.0), ("v2", 5.0)]
    canary = sticky_key_for(weights, "v2")
    plan = r.plan("m", rollouts={"m": weights}, sticky_key=canary)
    assert [d.version for d in plan] == ["v2", "v1", "v1"]  # then the others, as failover
    stable = sticky_key_for(weights, "v1")
    assert [d.version for d in r.plan("m", rollouts={"m": weights}, affinity=stable)] == [
        "v1", "v1", "v2",
    ]  # fmt: skip
    assert {d.name for d in r.plan("m", rollouts={"m": [("v1", 1.0), ("v2", 0.0)]})} == {"a", "b"}
    assert len(r.plan("m", rollouts={"other": weights})) == 3  # no rollout of its own: all


async def test_a_version_whose_deployments_are_down_is_passed_over() -> None:
    clock = Clock()
    deps = versioned(a="v1", c="v2")
    r = router(deps, clock)
    weights = [("v1", 5.0), ("v2", 95.0)]
    key = sticky_key_for(weights, "v2")
    for _ in range(2):  # c's circuit opens
        await collect(r, [deps[1], deps[0]], {"a": "ok", "c": "down"})
    assert [d.name for d in r.plan("m", rollouts={"m": weights}, sticky_key=key)] == ["a"]


async def test_a_rollout_of_the_fallback_model_applies_to_it_too() -> None:
    a = deployment("a")
    s1, s2 = deployment("s1", "small", version="x"), deployment("s2", "small", version="y")
    r = router([a, s1, s2], Clock(), fallbacks={"m": ["small"]})
    plan = r.plan("m", rollouts={"small": [("x", 0.0), ("y", 1.0)]})
    assert [d.name for d in plan] == ["a", "s2"]


async def test_a_deployment_at_its_bound_is_skipped_and_all_full_is_overloaded() -> None:
    a, b = deployment("a", max_outstanding=2), deployment("b", max_outstanding=2)
    small = deployment("s", model="small", max_outstanding=1)
    r = router([a, b, small], Clock(), fallbacks={"m": ["small"]})
    a.outstanding = 2
    assert [d.name for d in r.plan("m")] == ["b", "s"]
    b.outstanding = small.outstanding = 2
    with pytest.raises(ServiceUnavailableError) as err:
        r.plan("m")
    assert err.value.code == "overloaded"
    assert err.value.headers["Retry-After"] == "1"


async def test_batch_work_is_shed_at_half_the_bound() -> None:
    a = deployment("a", max_outstanding=4)
    r = router([a], Clock())
    a.outstanding = 2
    assert [d.name for d in r.plan("m")] == ["a"]
    with pytest.raises(ServiceUnavailableError) as err:
        r.plan("m", batch=True)
    assert err.value.code == "overloaded"


async def test_open_circuits_are_not_overload() -> None:
    a = deployment("a")
    r = router([a], Clock())
    a.breaker.failure(0.0)
    a.breaker.failure(0.0)  # open
    assert r.plan("m") == []  # no healthy deployment: failover answers that


async def test_failover_holds_the_bound_when_the_deployment_filled_since_the_plan() -> None:
    a, b = deployment("a", max_outstanding=1), deployment("b", max_outstanding=1)
    r = router([a, b], Clock())
    plan = r.plan("m")
    plan[0].outstanding = 1  # taken by another request after the plan was made
    events = await collect(r, plan, {"a": "ok", "b": "ok"})
    assert events[0].startswith(plan[1].name)
    plan[1].outstanding = 1
    with pytest.raises(ServiceUnavailableError) as err:
        await collect(r, plan, {"a": "ok", "b": "ok"})
    assert err.value.code == "overloaded"
