"""Which deployment serves a request, and what happens when it fails.

    plan = router.plan(model, tier=..., affinity=conversation_id)   # ordered deployments
    async for deployment, event in router.failover(plan, open_stream):
        ...                                                           # events of one deployment

A plan is the model's deployments that the caller's tier may use and whose circuit is not
open, ordered by the model's policy (see `policy.py`), then the same for each model of its
fallback chain. `failover` tries them in order: a failure before the first event goes to the
next one after a jittered backoff, within the attempts and the time budget; a failure after
the first event is the caller's (its text is already out: a retry would send it twice).
Every outcome feeds the deployment's circuit breaker, in-flight count and latency average.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from headrace.errors import ServiceUnavailableError
from headrace.routing.backoff import RetryPolicy, delay_s, may_retry
from headrace.routing.breaker import BreakerState, CircuitBreaker
from headrace.routing.policy import Candidate, Ewma, Policy, order
from headrace.routing.upstream import UpstreamTarget

DeploymentKind = Literal["engine", "worker", "openai"]
E = TypeVar("E")


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

    def plan(self, model: str, *, tier: str = "", affinity: str | None = None) -> list[Deployment]:
        """Deployments to try, in order: the model's, then its fallbacks' (each model once)."""
        now = self._clock()
        out: list[Deployment] = []
        for name in [model, *self._fallbacks.get(model, ())]:
            usable = {
                d.name: d
                for d in self.deployments.get(name, ())
                if (not d.tiers or tier in d.tiers) and d.breaker.available(now)
            }
            if not usable or any(d.model == name for d in out):
                continue
            ranked = order(
                [d.candidate() for d in usable.values()],
                self._policies.get(name, "least_outstanding"),
                affinity=affinity,
                rng=self._rng,
            )
            out.extend(usable[c.name] for c in ranked)
        return out

    async def failover(
        self,
        plan: Sequence[Deployment],
        open_stream: Callable[[Deployment], AsyncIterator[E]],
    ) -> AsyncGenerator[tuple[Deployment, E]]:
        """The events of the first deployment of `plan` that delivers, each with it."""
        deadline = self._clock() + self._budget_s
        attempts = 0
        last: BaseException | None = None
        for deployment in plan:
            now = self._clock()
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
        raise ServiceUnavailableError(
            "No deployment of this model could serve the request; retry later."
            + (f" Last error: {last}" if last is not None else ""),
            code="no_healthy_deployment",
            headers={"Retry-After": "1"},
        )

    def states(self) -> dict[str, BreakerState]:
        """Each deployment's circuit state, for metrics and the admin API."""
        return {d.name: d.breaker.state for ds in self.deployments.values() for d in ds}
