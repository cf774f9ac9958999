"""Batch interference: interactive latency alone, then with a large batch running.

    .venv/bin/python -m benchmarks.batch_interference --requests 200 --batch-lines 2000

The gateway on loopback (uvicorn, SQLite) with the bundled chat model on the built-in
engine, and its own batch worker. Interactive load: `--concurrency` clients, each sending
short chat completions (`--max-tokens`) one after another; latency is the whole request, as
the client sees it. Phase `alone`: no batch. Phase `batch`: a batch of `--batch-lines`
longer completions is submitted and running (lines at batch priority, at most
`--max-lines-in-flight` at once) for the whole phase; it is cancelled afterwards. The two
alternate `--rounds` times. Reports p50/p99 of each and their ratio, and how many batch
lines finished during the batch phases.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from headrace.admission.secrets import load_or_create_pepper
from headrace.api.app import create_app
from headrace.config import Settings
from headrace.control.keys import create_key
from headrace.routing.registry import load_registry
from headrace.storage.database import Database
from tests.conftest import serving

MODEL = "headrace-tiny-chat"
QUESTIONS = ["What is a river?", "Name a colour.", "Say hello.", "Count to three."]


def _settings(data_dir: Path, args: argparse.Namespace) -> Settings:
    models = [
        m.model_copy(update={"device": args.device}) if m.kind == "chat" else m
        for m in Settings().models
    ]
    return Settings(
        data_dir=data_dir,
        models=models,
        log_level="warning",
        safety={"enabled": False},  # the engine's share is what this measures
        batch={"max_lines_in_flight": args.max_lines_in_flight, "poll_interval_s": 0.2},
    )


async def _key(settings: Settings) -> str:
    db = Database(settings.effective_database_url)
    await db.migrate()
    created = await create_key(db, load_or_create_pepper(settings.data_dir), name="bench")
    await db.close()
    return created.secret


async def _interactive(http: httpx.AsyncClient, args: argparse.Namespace) -> list[float]:
    latencies: list[float] = []
    per_client = args.requests // args.concurrency

    async def client(n: int) -> None:
        for i in range(per_client):
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": QUESTIONS[(n + i) % len(QUESTIONS)]}],
                "max_tokens": args.max_tokens,
                "temperature": 0,
            }
            start = time.perf_counter()
            response = await http.post("/v1/chat/completions", json=body)
            latencies.append(time.perf_counter() - start)
            response.raise_for_status()

    await asyncio.gather(*(client(n) for n in range(args.concurrency)))
    return latencies


async def _start_batch(http: httpx.AsyncClient, args: argparse.Namespace) -> str:
    lines = [
        {
            "custom_id": f"line-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": MODEL,
                "messages": [{"role": "user", "content": f"Tell a story about river {i}."}],
                "max_tokens": args.batch_max_tokens,
                "temperature": 0,
            },
        }
        for i in range(args.batch_lines)
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    upload = await http.post(
        "/v1/files", files={"file": ("batch.jsonl", io.BytesIO(data))}, data={"purpose": "batch"}
    )
    upload.raise_for_status()
    created = await http.post(
        "/v1/batches",
        json={
            "input_file_id": upload.json()["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
    )
    created.raise_for_status()
    batch_id: str = created.json()["id"]
    # Until lines are running: the phase measures a batch under way.
    await _until(http, batch_id, lambda b: b["request_counts"]["completed"] > 0)
    return batch_id


async def _until(
    http: httpx.AsyncClient, batch_id: str, done: Callable[[dict[str, Any]], bool]
) -> None:
    while True:  # the gateway is this process's, but its worker's progress is not awaitable
        if done((await http.get(f"/v1/batches/{batch_id}")).json()):
            return
        await asyncio.sleep(0.1)


def _summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(p99 * 1000, 1),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 1),
    }


async def _run(base_url: str, key: str, args: argparse.Namespace) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=args.concurrency + 4)
    alone: list[float] = []
    beside: list[float] = []
    done, elapsed = 0, 0.0
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=600, limits=limits
    ) as http:
        await _interactive(http, argparse.Namespace(**vars(args) | {"requests": 8}))  # warm-up
        # Alternating phases: a machine busy with something else slows both alike.
        for _ in range(args.rounds):
            alone += await _interactive(http, args)
            batch_id = await _start_batch(http, args)
            before = (await http.get(f"/v1/batches/{batch_id}")).json()["request_counts"]
            started = time.perf_counter()
            beside += await _interactive(http, args)
            elapsed += time.perf_counter() - started
            after = (await http.get(f"/v1/batches/{batch_id}")).json()
            if after["status"] != "in_progress":
                raise RuntimeError(f"the batch ended ({after['status']}) before the phase did")
            done += after["request_counts"]["completed"] - before["completed"]
            await http.post(f"/v1/batches/{batch_id}/cancel")
            # Its lines in flight finish before the next phase.
            await _until(http, batch_id, lambda b: b["status"] == "cancelled")
    result: dict[str, Any] = {"alone": _summary(alone), "batch": _summary(beside)}
    result["p99_ratio"] = round(result["batch"]["p99_ms"] / result["alone"]["p99_ms"], 3)
    result["p50_ratio"] = round(result["batch"]["p50_ms"] / result["alone"]["p50_ms"], 3)
    result["batch_lines_per_s"] = round(done / elapsed, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--batch-lines", type=int, default=2000)
    parser.add_argument("--batch-max-tokens", type=int, default=64)
    parser.add_argument("--max-lines-in-flight", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = _settings(Path(tmp), args)
        key = asyncio.run(_key(settings))
        registry = load_registry(settings.models)
        try:
            with serving(create_app(settings, registry)) as base_url:
                result = asyncio.run(_run(base_url, key, args))
        finally:
            registry.close()
    print(json.dumps({"settings": vars(args), **result}, indent=2))


if __name__ == "__main__":
    main()
