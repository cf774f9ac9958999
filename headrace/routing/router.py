"""Which deployment serves a request, and what happens when it fails.

    plan = router.plan(model, tier=..., affinity=key, rollouts=table)   # ordered deployments
    async for deployment, event in router.failover(plan, open_stream):
        ...                                                           # events of one deployment

A plan is the model's deployments that the caller's tier may use, whose circuit is not open
and that are below their bound of requests in flight (`backpressure.py`), ordered by the
model's policy (see `policy.py`), grouped by version under a rollout (the version picked
for the conversation first, then the others of positive weight: `policy.version_order`);
then the same for each model of its fallback chain. Nothing left
because everything usable is at its bound: 503 `overloaded`. `failover` tries them in
order: a failure before the first event goes to the next one after a jittered backoff,
within the attempts and the time budget; a failure after the first event is the caller's
(its text is already out: a retry would send it twice). Every outcome feeds the
deployment's circuit breaker, in-flight count and latency average.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from headrace.errors import ServiceUnavailableError
from headrace.routing.backoff import RetryPolicy, delay_s, may_retry
from headrace.routing.backpressure import bound, overloaded
from headrace.routing.breaker import BreakerState, CircuitBreaker
from headrace.routing.policy import Candidate, Ewma, Policy, order, version_order
from headrace.routing.upstream import UpstreamTarget

DeploymentKind = Literal["engine", "worker", "openai"]
E = TypeVar("E")
# A model's rollout: (version, weight) pairs, in an order every replica shares.
VersionWeights = Sequence[tuple[str, float]]


@dataclass(slots=True)
class Deployment:
    """One place a model runs, and what the router knows of it right now."""

    name: str
    model: str  # the public model it serves
    kind: DeploymentKind = "engine"
    version: str = ""
    weight: float = 1.0
    tiers: frozenset[str] = frozenset()  # tenant tiers allowed; empty: every tier
    region: str = ""
    price_per_1m: float = 0.0
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    ttft: Ewma = field(default_factory=Ewma)
    outstanding: int = 0
    max_outstanding: int = 256  # the bound on `outstanding` (batch work: half of it)
    queue_depth: int = 0  # as the deployment last reported it (workers' `/stats`)
    target: UpstreamTarget | None = None  # how to reach it; None: this process's engine
    failures: int = 0  # tries that failed here, ever (a counter for metrics)

    def candidate(self) -> Candidate:
        return Candidate(
            self.name, self.weight, self.outstanding, self.queue_depth, self.ttft.value,
            self.price_per_1m,
        )  # fmt: skip


class Router:
    def __init__(
        self,
        deployments: Iterable[Deployment],
        *,
        policies: dict[str, Policy] | None = None,
        fallbacks: dict[str, Sequence[str]] | None = None,
        retry: RetryPolicy | None = None,
        budget_s: float = 30.0,
        retryable: Callable[[BaseException], bool] = lambda exc: False,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.deployments: dict[str, list[Deployment]] = {}
        for d in deployments:
            self.deployments.setdefault(d.model, []).append(d)
        self._policies = policies or {}
        self._fallbacks = fallbacks or {}
        self._retry = retry or RetryPolicy()
        self._budget_s = budget_s
        self._retryable = retryable
        self._rng = rng or random.Random()
        self._clock = clock

    def permits(self, model: str, tier: str) -> bool:
        """Whether any deployment of `model` (healthy or not) takes requests of `tier`."""
        return any(not d.tiers or tier in d.tiers for d in self.deployments.get(model, ()))

    def plan(
        self,
        model: str,
        *,
        tier: str = "",
        affinity: str | None = None,
        rollouts: Mapping[str, VersionWeights] | None = None,
        sticky_key: str | None = None,
        batch: bool = False,
    ) -> list[Deployment]:
        """Deployments to try, in order: the model's, then its fallbacks' (each model once).

        Under a rollout (`rollouts`: model to weights) a model's deployments come by
        version, the one picked for `sticky_key` (default: `affinity`) first, so a
        conversation keeps its version while that one can serve."""
        now = self._clock()
        sticky = sticky_key or affinity or f"{self._rng.random()}"
        out: list[Deployment] = []
        full = False  # something could serve, but for its bound
        for name in dict.fromkeys([model, *self._fallbacks.get(model, ())]):
            usable = [
                d
                for d in self.deployments.get(name, ())
                if (not d.tiers or tier in d.tiers) and d.breaker.available(now)
            ]
            room = [d for d in usable if d.outstanding < bound(d.max_outstanding, batch=batch)]
            full = full or len(room) < len(usable)
            for group in _by_version(room, (rollouts or {}).get(name), sticky):
                out.extend(self._ordered(name, group, affinity))
        if not out and full:
            raise overloaded(model, "every deployment is at its bound of requests in flight")
        return out

    def _ordered(
        self, model: str, deployments: list[Deployment], affinity: str | None
    ) -> list[Deployment]:
        if len(deployments) == 1:
            return deployments  # nothing to order (and most models have one deployment)
        by_name = {d.name: d for d in deployments}
        ranked = order(
            [d.candidate() for d in deployments],
            self._policies.get(model, "least_outstanding"),
            affinity=affinity,
            rng=self._rng,
        )
        return [by_name[c.name] for c in ranked]

    async def failover(
        self,
        plan: Sequence[Deployment],
        open_stream: Callable[[Deployment], AsyncIterator[E]],
    ) -> AsyncGenerator[tuple[Deployment, E]]:
        """The events of the first deployment of `plan` that delivers, each with it."""
        deadline = self._clock() + self._budget_s
        attempts = 0
        full = False
        last: BaseException | None = None
        for deployment in plan:
            now = self._clock()
            if deployment.outstanding >= deployment.max_outstanding:
                full = True  # filled up since the plan was made: the bound holds
                continue
            if not deployment.breaker.allow(now):
                continue  # opened (or its probe taken) since the plan was made
            attempts += 1
            started, first = now, True
            deployment.outstanding += 1
            verdict = False
            try:
                async for event in open_stream(deployment):
                    if first:
                        deployment.ttft.add(self._clock() - started)
                        first = False
                    yield deployment, event
                deployment.breaker.success()
                verdict = True
                return
            except Exception as exc:
                deployment.failures += 1
                deployment.breaker.failure(self._clock())
                verdict = True
                if not first or not self._retryable(exc):
                    raise
                last = exc
            finally:
                deployment.outstanding -= 1
                if not verdict:  # the caller stopped reading: no verdict on the deployment
                    deployment.breaker.release_probe()
            wait = delay_s(self._retry, attempts, self._rng)
            if not may_retry(self._retry, attempts, wait, deadline - self._clock()):
                break
            await asyncio.sleep(wait)
        if attempts == 0 and full:
            raise overloaded(
                plan[0].model, "every deployment is at its bound of requests in flight"
            )
        raise ServiceUnavailableError(
            "No deployment of this model could serve the request; retry later."
            + (f" Last error: {last}" if last is not None else ""),
            code="no_healthy_deployment",
            headers={"Retry-After": "1"},
        )

    def states(self) -> dict[str, BreakerState]:
        """Each deployment's circuit state, for metrics and the admin API."""
        return {d.name: d.breaker.state for ds in self.deployments.values() for d in ds}


def _by_version(
    deployments: list[Deployment], weights: VersionWeights | None, sticky_key: str
) -> list[list[Deployment]]:
    """All in one group without a rollout; with one, a group per version to try."""
    if not weights:
        return [deployments]
    versions = version_order(weights, sticky_key, {d.version for d in deployments})
    return [[d for d in deployments if d.version == v] for v in versions]
