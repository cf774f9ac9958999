"""A gateway killed with SIGKILL in the middle of 50 streams: after a restart on the same
data directory, the usage ledger has exactly one event per request that did work, none
left `started`, and no concurrency seat outlives its lease."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path
from typing import cast

import httpx
import pytest

from headrace.admission.limits import Limits
from headrace.config import Settings
from headrace.storage.database import Database
from tests.conftest import _free_port, _reachable, new_key, usage_rows
from tests.gateway_process import LEASE_TTL_S, ROOT, running

MODEL = "headrace-tiny-chat"
ASK = [{"role": "user", "content": "Tell me a long story."}]
STREAMS = 50
FINISHED = 10
REDIS_URL = "redis://127.0.0.1:6379/14"
REDIS_UP = _reachable("127.0.0.1", 6379)


def gateway(
    data_dir: Path, port: int, redis_url: str | None
) -> ContextManager[subprocess.Popen[bytes]]:
    args = [sys.executable, "-m", "tests.gateway_process", str(data_dir), str(port)]
    return running([*args, *([redis_url] if redis_url else [])], port)


async def _streams_then_kill(base_url: str, secret: str, proc: subprocess.Popen[bytes]) -> None:
    """10 short requests that finish, then 50 long streams; SIGKILL once all 50 have
    streamed a token, so each is mid-generation."""
    headers = {"Authorization": f"Bearer {secret}"}
    url = f"{base_url}/v1/chat/completions"
    limits = httpx.Limits(max_connections=STREAMS + FINISHED)
    async with httpx.AsyncClient(limits=limits, timeout=60, headers=headers) as http:
        for _ in range(FINISHED):
            done = await http.post(url, json={"model": MODEL, "messages": ASK, "max_tokens": 2})
            assert done.status_code == 200, done.text
        streaming = asyncio.Event()
        started = 0

        async def stream() -> None:
            nonlocal started
            body = {"model": MODEL, "messages": ASK, "max_tokens": 1500, "stream": True}
            try:
                async with http.stream("POST", url, json=body) as response:
                    if response.status_code != 200:
                        streaming.set()  # fail fast: the count below is short
                        return
                    async for line in response.aiter_lines():
                        if '"content":"x"' in line:
                            started += 1
                            if started == STREAMS:
                                streaming.set()
                            await asyncio.Event().wait()  # hold the stream open
            except httpx.TransportError:
                return  # the gateway died before the stream was seen to start

        tasks = [asyncio.create_task(stream()) for _ in range(STREAMS)]
        await asyncio.wait_for(streaming.wait(), 60)
        assert started == STREAMS
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        for task in tasks:  # each holds its stream open: hang up
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _leases_lapse_at(key_id: str) -> float:
    """The dead gateway's seats in Redis: all 50 held, lapsing within a lease from now;
    the time the last one lapses."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    seats = cast(
        "list[tuple[bytes, float]]",
        client.zrange(f"headrace:limits:key:{key_id}:seats", 0, -1, withscores=True),
    )
    client.close()
    assert len(seats) == STREAMS
    lapse = max(score for _, score in seats)
    assert lapse <= time.time() + LEASE_TTL_S
    return float(lapse)


@pytest.mark.parametrize("redis", [False, True], ids=["in-process", "redis"])
def test_sigkill_during_50_streams(tmp_path: Path, redis: bool) -> None:
    if redis and not REDIS_UP:
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")
    redis_url = REDIS_URL if redis else None
    settings = Settings(data_dir=tmp_path)
    created = new_key(settings, limits=Limits(max_concurrent_requests=STREAMS))
    secret, key_id = created.secret, created.id
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    with gateway(tmp_path, port, redis_url) as proc:
        asyncio.run(_streams_then_kill(base_url, secret, proc))
    lapse = _leases_lapse_at(key_id) if redis else 0.0
    # While it is down, its streams' started rows are what the ledger holds.
    assert sum(e.status == "started" for e in usage_rows(settings)) == STREAMS

    with gateway(tmp_path, port, redis_url):
        events = usage_rows(settings)
        statuses = sorted(e.status for e in events)
        assert statuses == ["cancelled"] * STREAMS + ["ok"] * FINISHED
        assert len({e.request_id for e in events}) == STREAMS + FINISHED
        cancelled = [e for e in events if e.status == "cancelled"]
        assert all(e.input_tokens > 0 and e.input_cost_nanousd > 0 for e in cancelled)

        ask = {"model": MODEL, "messages": ASK, "max_tokens": 1}
        headers = {"Authorization": f"Bearer {secret}"}
        url = f"{base_url}/v1/chat/completions"
        first = httpx.post(url, json=ask, headers=headers)
        if time.time() < lapse - 0.2:  # the dead gateway's seats are still leased...
            assert first.status_code == 429
            assert "concurrent requests" in first.json()["error"]["message"]
        while time.time() < lapse + 0.2:  # ...until their leases lapse, not later
            time.sleep(0.05)
        assert httpx.post(url, json=ask, headers=headers).status_code == 200
        served = 1 + (first.status_code == 200)
    # A clean stop writes the events of the requests served since: no more, no fewer.
    events = usage_rows(settings)
    assert len(events) == len({e.request_id for e in events}) == STREAMS + FINISHED + served


def test_a_live_replica_id_is_not_shared(tmp_path: Path) -> None:
    """A second gateway with the same replica id refuses to start while the first lives:
    on a restart it would otherwise close the first one's in-flight usage rows. (After a
    SIGKILL the id is free at once: the test above restarts on it.)"""
    asyncio.run(Database(Settings(data_dir=tmp_path).effective_database_url).migrate())
    with gateway(tmp_path, _free_port(), None):
        args = [sys.executable, "-m", "tests.gateway_process", str(tmp_path), str(_free_port())]
        second = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert second.returncode != 0
    assert "replica id 'gateway-under-test' is held by a live gateway" in second.stderr
