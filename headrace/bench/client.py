"""Sending the load: one streamed chat completion per request, timed chunk by chunk."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from headrace.bench.workload import BenchRequest


@dataclass(frozen=True, slots=True)
class Target:
    base_url: str  # up to and including `/v1`
    model: str
    api_key: str = ""
    timeout_s: float = 600.0


@dataclass(slots=True)
class Result:
    """One request as the client saw it; times are seconds since it was sent."""

    sent_at: float  # seconds since the run started
    ok: bool = False
    error: str = ""
    ttft_s: float | None = None
    chunk_times_s: list[float] = field(default_factory=list)  # each chunk with text
    e2e_s: float = 0.0
    prompt_tokens: int = 0
    output_tokens: int = 0

    @property
    def itl_s(self) -> list[float]:
        t = self.chunk_times_s
        return [b - a for a, b in itertools.pairwise(t)]

    @property
    def tpot_s(self) -> float | None:
        if self.ttft_s is None or self.output_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)


async def send(client: httpx.AsyncClient, target: Target, req: BenchRequest, at: float) -> Result:
    """One streamed request; failures are results too, never exceptions."""
    result = Result(sent_at=at)
    body = {
        "model": target.model,
        "messages": [{"role": "user", "content": req.prompt}],
        "max_tokens": req.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
    start = time.perf_counter()
    try:
        async with client.stream(
            "POST", f"{target.base_url}/chat/completions", json=body, headers=headers
        ) as response:
            if response.status_code != 200:
                result.error = f"HTTP {response.status_code}"
                return result
            async for line in response.aiter_lines():
                _read_event(line, result, time.perf_counter() - start)
        result.ok = not result.error
    except httpx.HTTPError as exc:
        result.error = type(exc).__name__
    finally:
        result.e2e_s = time.perf_counter() - start
    if result.output_tokens == 0:  # a server without usage in streams: one token a chunk
        result.output_tokens = len(result.chunk_times_s)
    return result


def _read_event(line: str, result: Result, now: float) -> None:
    if not line.startswith("data:") or line == "data: [DONE]":
        return
    event = json.loads(line.removeprefix("data:"))
    if "error" in event:
        result.error = str(event["error"].get("code") or "stream error")
        return
    if event.get("usage"):
        result.prompt_tokens = int(event["usage"].get("prompt_tokens") or 0)
        result.output_tokens = int(event["usage"].get("completion_tokens") or 0)
    for choice in event.get("choices") or []:
        if (choice.get("delta") or {}).get("content"):
            if result.ttft_s is None:
                result.ttft_s = now
            result.chunk_times_s.append(now)


async def run(
    target: Target,
    requests: list[BenchRequest],
    send_at: list[float],
    *,
    concurrency: int | None = None,
    on_done: Callable[[Result], None] = lambda _: None,
) -> tuple[list[Result], float]:
    """Send each request at its time (at most `concurrency` in flight); returns the results
    in send order and the run's wall time."""
    limit = asyncio.Semaphore(concurrency or len(requests) or 1)
    pool = httpx.Limits(max_connections=concurrency or len(requests) or 1)
    timeout = httpx.Timeout(target.timeout_s, connect=30.0)
    start = time.perf_counter()
    async with httpx.AsyncClient(limits=pool, timeout=timeout) as client:

        async def one(req: BenchRequest, at: float) -> Result:
            await asyncio.sleep(max(0.0, at - (time.perf_counter() - start)))
            async with limit:
                result = await send(client, target, req, time.perf_counter() - start)
            on_done(result)
            return result

        results = await asyncio.gather(*(one(r, t) for r, t in zip(requests, send_at, strict=True)))
    return list(results), time.perf_counter() - start
