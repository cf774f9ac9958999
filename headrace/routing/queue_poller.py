"""What `headrace worker` deployments report waiting in their own engine queues, read every
`interval_s` from their `/stats`, so `least_outstanding` counts the work other gateways
sent them too, not only this gateway's requests in flight.

    poller = QueuePoller(router.deployments, interval_s=1.0)
    poller.start()            # with the app; `await poller.close()` at shutdown
    await poller.poll_once()  # one round, for tests

A poll that fails (the worker is down, slow or answers nonsense) leaves the last value: the
circuit breaker, not the poller, is what takes a failing deployment out of the plan.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import httpx
import orjson

from headrace.observability.logging import get_logger
from headrace.periodic import Periodic
from headrace.routing.router import Deployment

log = get_logger("headrace.routing")


def stats_url(base_url: str) -> str:
    """A worker's `/stats`, beside its API root: `http://w:8000/v1` -> `http://w:8000/stats`."""
    root = base_url.rstrip("/")
    return f"{root.removesuffix('/v1')}/stats"


def waiting(stats: Any, model: str) -> int | None:
    """The queue depth of `model` in a worker's `/stats` answer (`{"models": {name:
    {"waiting": n, ...}}}`): the named model's, or the only model's; None if absent."""
    models = stats.get("models") if isinstance(stats, dict) else None
    if not isinstance(models, dict) or not models:
        return None
    entry = models.get(model)
    if entry is None and len(models) == 1:
        entry = next(iter(models.values()))
    value = entry.get("waiting") if isinstance(entry, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return int(value)


class QueuePoller:
    def __init__(
        self,
        deployments: Iterable[Deployment],
        *,
        interval_s: float,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.deployments = [d for d in deployments if d.kind == "worker" and d.target is not None]
        self._interval = interval_s
        # A poll older than the interval is stale by the time it lands: time out there.
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(min(interval_s, 5.0)))
        self._every = Periodic(self.poll_once, interval_s=interval_s, failed="worker_poll_failed")

    def start(self) -> None:
        if self.deployments:
            self._every.start()

    async def close(self) -> None:
        await self._every.close()
        await self._http.aclose()

    async def poll_once(self) -> None:
        """Read every worker's `/stats` at once; never raises."""
        await asyncio.gather(*(self._poll(d) for d in self.deployments))

    async def _poll(self, deployment: Deployment) -> None:
        target = deployment.target
        assert target is not None  # workers without a target are not polled
        headers = {"authorization": f"Bearer {target.api_key}"} if target.api_key else {}
        try:
            response = await self._http.get(stats_url(target.base_url), headers=headers)
            response.raise_for_status()
            depth = waiting(orjson.loads(response.content), target.model)
        except (httpx.HTTPError, orjson.JSONDecodeError) as exc:
            log.debug("worker_stats_failed", deployment=deployment.name, error=repr(exc))
            return
        if depth is not None:
            deployment.queue_depth = depth
