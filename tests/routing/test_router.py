"""Failover across deployments and fallback models: retried only before the first event,
never twice the same text; circuits open on failures and are probed after the cooldown."""

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
