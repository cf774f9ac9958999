"""Admission overhead: what authentication, every rate limit and budget, and the durable
usage record add to a request, in process and with Redis on loopback.

    .venv/bin/python -m benchmarks.gateway_admission --requests 2000 \
        --redis-url redis://127.0.0.1:6379/13

Two measurements, each for three set-ups side by side: limits off (a key without limits:
authentication and the usage record still run), all limits in process, all limits in Redis
(a key, its project and its org each with requests/min, tokens/min, tokens/day, concurrency
and both budgets, none of them reached).

- `stack`: the admission stages alone, as the chat route runs them, timed around the calls:
  authenticate (key cache warm), `limiter.admit`, `ledger.begin` (the started row's commit),
  then `admission.release` and `ledger.record` (which only queue work).
- `e2e`: the full gateway on loopback (uvicorn, SQLite) against an instant fake engine,
  one request at a time with the official SDK's HTTP client; the difference between the
  columns is what the limits add.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from headrace.admission.auth import Authenticator
from headrace.admission.limiter import build_limiter
from headrace.admission.limits import Limits
from headrace.admission.secrets import load_or_create_pepper
from headrace.api.app import create_app
from headrace.config import Settings
from headrace.control.keys import create_key, create_project_key
from headrace.control.limits import set_limits
from headrace.control.tenants import create_org, create_project
from headrace.metering.ledger import UsageLedger
from headrace.metering.usage import Prices, usage_event
from headrace.storage.database import Database
from tests.conftest import serving
from tests.fakes import FakeEngine, fake_registry

MODEL = "headrace-tiny-chat"
# High enough never to refuse during the run: the point is their cost, not their effect.
ALL_LIMITS = Limits(
    requests_per_minute=10**9,
    tokens_per_minute=10**9,
    max_concurrent_requests=10**6,
    tokens_per_day=10**9,
    spend_per_day_usd=10**6,
    spend_per_month_usd=10**7,
)


def p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def _keys(settings: Settings) -> dict[str, str]:
    """One key without limits, one with every limit at key, project and org scope."""
    db = Database(settings.effective_database_url)
    await db.migrate()
    pepper = load_or_create_pepper(settings.data_dir)
    off = await create_key(db, pepper, project="bench-off", name="off")
    org = await create_org(db, "bench-limited")
    project = await create_project(db, org.id, "bench-on")
    on = await create_project_key(db, pepper, project_id=project.id, name="on", limits=ALL_LIMITS)
    await set_limits(db, "project", project.id, ALL_LIMITS)
    await set_limits(db, "org", org.id, ALL_LIMITS)
    await db.close()
    return {"off": off.secret, "on": on.secret}


async def _stack(settings: Settings, secret: str, n: int) -> dict[str, float]:
    """p50s of the admission stages alone, in ms: authenticate + admit (`admission`), the
    started row's commit (`begin`), and all of it with the release and record (`total`)."""
    db = Database(settings.effective_database_url)
    auth = Authenticator(db, load_or_create_pepper(settings.data_dir))
    limiter = build_limiter(settings, db)
    ledger = UsageLedger(db, replica="bench")
    ledger.start()
    header = f"Bearer {secret}"
    samples: dict[str, list[float]] = {"admission": [], "begin": [], "total": []}
    for i in range(n + n // 10):  # the first tenth warms the caches and connections
        t0 = time.perf_counter()
        principal = await auth.authenticate(header)
        admission = await limiter.admit(principal, model=MODEL, tokens=64)
        t1 = time.perf_counter()
        event = usage_event(
            request_id=f"chatcmpl-bench-{secret[-6:]}-{i}",
            created_at=int(time.time()),
            org_id=principal.org_id,
            project_id=principal.project_id,
            api_key_id=principal.key_id,
            model=MODEL,
            input_tokens=16,
            cached_tokens=0,
            output_tokens=0,
            latency_s=0.0,
            prices=Prices(0.1, 0.2),
            status="started",
        )
        await ledger.begin(event)
        t2 = time.perf_counter()
        admission.release(17)
        ledger.record(event)
        if i >= n // 10:
            samples["admission"].append(t1 - t0)
            samples["begin"].append(t2 - t1)
            samples["total"].append(time.perf_counter() - t0)
    await limiter.close()
    await ledger.close()
    await db.close()
    return {name: round(p50_ms(values), 3) for name, values in samples.items()}


def _e2e(settings: Settings, secrets: dict[str, str], n: int) -> dict[str, float]:
    """p50 of a whole chat completion over loopback, per key, in ms."""
    app = create_app(settings, fake_registry(FakeEngine(reply_tokens=1)))
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    out: dict[str, float] = {}
    with serving(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        for name, secret in secrets.items():
            headers = {"Authorization": f"Bearer {secret}"}
            samples = []
            for i in range(n + n // 10):
                t0 = time.perf_counter()
                response = http.post("/v1/chat/completions", json=body, headers=headers)
                elapsed = time.perf_counter() - t0
                response.raise_for_status()
                if i >= n // 10:
                    samples.append(elapsed)
            out[name] = p50_ms(samples)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    for backend, redis_url in (("in_process", None), ("redis", args.redis_url)):
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(data_dir=Path(tmp), redis_url=redis_url, log_level="warning")
            secrets = asyncio.run(_keys(settings))
            stack_off = asyncio.run(_stack(settings, secrets["off"], args.requests))
            stack_on = asyncio.run(_stack(settings, secrets["on"], args.requests))
            e2e = _e2e(settings, secrets, max(200, args.requests // 4))
        results[backend] = {
            **{f"{k}_p50_ms_limits_off": v for k, v in stack_off.items()},
            **{f"{k}_p50_ms_all_limits": v for k, v in stack_on.items()},
            "e2e_p50_ms_limits_off": round(e2e["off"], 3),
            "e2e_p50_ms_all_limits": round(e2e["on"], 3),
            "e2e_added_p50_ms": round(e2e["on"] - e2e["off"], 3),
        }
        print(backend, json.dumps(results[backend]), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
