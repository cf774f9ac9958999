"""Admission overhead: what authentication, every rate limit and budget and the idempotency
check add to a request, in process and with Redis on loopback; and what the durable usage
record (the started row, part of metering) costs beside them.

    .venv/bin/python -m benchmarks.gateway_admission --requests 2000 \
        --redis-url redis://127.0.0.1:6379/13

Set-ups: limits off (a key without limits), all limits (a key, its project and its org each
with requests/min, tokens/min, tokens/day, concurrency and both budgets, none of them
reached), in process and in Redis (limits and idempotency keys both).

- `stack`: the stages alone, as the routes run them, timed around the calls: authenticate
  (key cache warm), `limiter.admit` and the idempotency claim (`admission`); the started
  row's commit (`begin`); all of it with the idempotency completion, the release and the
  record (`total`).
- `e2e`: the full gateway on loopback (uvicorn, SQLite) against an instant fake engine,
  one request at a time, moderation off (it is not admission). `bare`: admission bypassed
  (a fixed principal, no limits, no Idempotency-Key); `full`: the all-limits key with an
  Idempotency-Key on every request.
  Everything else (metering with its started row, metrics, traces, access log) runs in
  both, so `full - bare` is what admission adds to a request.
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

from headrace.admission.auth import Authenticator, Principal
from headrace.admission.idempotency import (
    Claimed,
    StoredResponse,
    build_idempotency,
    fingerprint,
    scoped_key,
)
from headrace.admission.limiter import Limiter, MemoryBackend, build_limiter
from headrace.admission.limits import Limits, ScopedLimits
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
    """p50s of the stages alone, in ms: authenticate + admit + idempotency claim
    (`admission`), the started row's commit (`begin`), and all of it with the idempotency
    completion, the release and the record (`total`)."""
    db = Database(settings.effective_database_url)
    auth = Authenticator(db, load_or_create_pepper(settings.data_dir))
    limiter = build_limiter(settings, db)
    idempotency = build_idempotency(settings)
    ledger = UsageLedger(db, replica=f"bench-{secret[-6:]}")
    await ledger.recover()
    ledger.start()
    header = f"Bearer {secret}"
    body = b'{"model":"headrace-tiny-chat","messages":[{"role":"user","content":"Hi"}]}'
    stored = StoredResponse(200, (("content-type", "application/json"),), b"{}")
    samples: dict[str, list[float]] = {"admission": [], "begin": [], "total": []}
    for i in range(n + n // 10):  # the first tenth warms the caches and connections
        t0 = time.perf_counter()
        principal = await auth.authenticate(header)
        claim = await idempotency.begin(
            scoped_key(principal.project_id, f"bench-{secret[-6:]}-{i}"),
            fingerprint("POST", "/v1/chat/completions", body),
        )
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
        assert isinstance(claim, Claimed)
        await idempotency.finish(claim, stored)
        if i >= n // 10:
            samples["admission"].append(t1 - t0)
            samples["begin"].append(t2 - t1)
            samples["total"].append(time.perf_counter() - t0)
    await limiter.close()
    await idempotency.close()
    await ledger.close()
    await db.close()
    return {name: round(p50_ms(values), 3) for name, values in samples.items()}


class _FixedPrincipal:
    """Admission bypassed: every request is this principal, with no lookup."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    async def authenticate(self, authorization: str | None) -> Principal:
        return self.principal


class _NoLimits:
    async def for_principal(self, principal: Principal) -> list[ScopedLimits]:
        return []


def _e2e(settings: Settings, secrets: dict[str, str], n: int) -> dict[str, float]:
    """p50 of a whole chat completion over loopback, in ms: admission bypassed (`bare`),
    and in full (`full`: every limit, an Idempotency-Key each request)."""
    app = create_app(settings, fake_registry(FakeEngine(reply_tokens=1)))
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    collected: dict[str, list[float]] = {}
    with serving(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        state = app.state.headrace
        real_auth, real_limiter = state.auth, state.limiter
        principal = asyncio.run(_principal(settings, secrets["on"]))
        for name in ("bare", "full", "bare ", "full "):  # twice, interleaved: drift cancels
            full = name.strip() == "full"
            state.auth = real_auth if full else _FixedPrincipal(principal)
            state.limiter = real_limiter if full else Limiter(_NoLimits(), MemoryBackend())
            samples = []
            for i in range(n + n // 10):
                headers = {"Authorization": f"Bearer {secrets['on']}"}
                if full:
                    headers["Idempotency-Key"] = f"bench-{name.strip()}-{len(name)}-{i}"
                t0 = time.perf_counter()
                response = http.post("/v1/chat/completions", json=body, headers=headers)
                elapsed = time.perf_counter() - t0
                response.raise_for_status()
                if i >= n // 10:
                    samples.append(elapsed)
            collected.setdefault(name.strip(), []).extend(samples)
    return {name: p50_ms(samples) for name, samples in collected.items()}


async def _principal(settings: Settings, secret: str) -> Principal:
    db = Database(settings.effective_database_url)
    principal = await Authenticator(db, load_or_create_pepper(settings.data_dir)).authenticate(
        f"Bearer {secret}"
    )
    await db.close()
    return principal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    for backend, redis_url in (("in_process", None), ("redis", args.redis_url)):
        with tempfile.TemporaryDirectory() as tmp:
            # Moderation off: it is not admission, and its model's CPU time (about 13 ms a
            # request here) would drown the differences measured.
            settings = Settings(
                data_dir=Path(tmp),
                redis_url=redis_url,
                log_level="warning",
                safety={"enabled": False},
            )
            secrets = asyncio.run(_keys(settings))
            stack_off = asyncio.run(_stack(settings, secrets["off"], args.requests))
            stack_on = asyncio.run(_stack(settings, secrets["on"], args.requests))
            e2e = _e2e(settings, secrets, max(200, args.requests // 4))
        results[backend] = {
            **{f"{k}_p50_ms_limits_off": v for k, v in stack_off.items()},
            **{f"{k}_p50_ms_all_limits": v for k, v in stack_on.items()},
            "e2e_p50_ms_bare": round(e2e["bare"], 3),
            "e2e_p50_ms_full": round(e2e["full"], 3),
            "e2e_added_by_admission_p50_ms": round(e2e["full"] - e2e["bare"], 3),
        }
        print(backend, json.dumps(results[backend]), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
