"""Conversations: the prefix cache across the turns of a conversation, and listing a long
conversation's items after a cursor.

    .venv/bin/python -m benchmarks.conversations --turns 10 --items 10000 \
        --postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/test

(a) A real gateway (the bundled chat model on the built-in engine) on loopback; the
    official SDK runs a `--turns` conversation through `/v1/responses` with
    `conversation=`. Per turn: input tokens, the tokens the engine's prefix cache served
    (`usage.input_tokens_details.cached_tokens`) and their share.
(b) A conversation of `--items` items in SQLite and in PostgreSQL; p50/p99 of one page
    (`limit=20`) after a random cursor, through the repository the API uses.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import openai
import uvicorn
from sqlalchemy import text

from headrace.admission.secrets import load_or_create_pepper
from headrace.api.app import create_app
from headrace.config import Settings
from headrace.control.keys import create_key
from headrace.storage.conversations import Conversations
from headrace.storage.database import Database
from headrace.storage.encryption import ContentCipher

MODEL = "headrace-tiny-chat"
QUESTIONS = [
    "What is a river?", "Where do rivers start?", "Why do rivers bend?",
    "What is a delta?", "How fast does a river flow?", "What is a tributary?",
    "Can a river run dry?", "What lives in rivers?", "What is a flood plain?",
    "Name a long river.", "What is a canal?", "How are dams built?",
]  # fmt: skip


def prefix_cache_turns(turns: int, output_tokens: int) -> list[dict[str, Any]]:
    data_dir = Path(tempfile.mkdtemp(prefix="headrace-bench-"))
    settings = Settings(data_dir=data_dir)

    async def first_key() -> str:
        db = Database(settings.effective_database_url)
        await db.migrate()
        created = await create_key(db, load_or_create_pepper(data_dir), name="bench")
        await db.close()
        return created.secret

    key = asyncio.run(first_key())
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:  # loading the models takes seconds
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
    rows = []
    try:
        conversation = client.conversations.create()
        for turn in range(turns):
            started = time.perf_counter()
            response = client.responses.create(
                model=MODEL,
                instructions="You are a patient geography teacher. Answer in one sentence.",
                input=QUESTIONS[turn % len(QUESTIONS)],
                conversation=conversation.id,
                max_output_tokens=output_tokens,
                temperature=0,
            )
            usage = response.usage
            assert usage is not None
            cached = usage.input_tokens_details.cached_tokens
            rows.append(
                {
                    "turn": turn + 1,
                    "input_tokens": usage.input_tokens,
                    "cached_tokens": cached,
                    "hit_rate": cached / usage.input_tokens,
                    "latency_ms": (time.perf_counter() - started) * 1000,
                }
            )
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    return rows


async def list_after_cursor(url: str, items: int, samples: int) -> dict[str, float]:
    db = Database(url)
    await db.migrate()
    convs = Conversations(db, ContentCipher([]))
    conversation_id = f"conv_bench_{time.monotonic_ns()}"
    await convs.create("proj_bench", conversation_id, {}, [], int(time.time()))
    ids = [f"msg_{conversation_id}_{i}" for i in range(items)]
    for start in range(0, items, 1000):
        batch = [
            {"type": "message", "id": item_id, "role": "user", "status": "completed",
             "content": [{"type": "input_text", "text": f"message number {n}"}]}
            for n, item_id in enumerate(ids[start : start + 1000], start)
        ]  # fmt: skip
        await convs.add_items("proj_bench", conversation_id, batch, int(time.time()))
    async with db.engine.begin() as conn:
        if db.engine.dialect.name == "postgresql":
            await conn.execute(text("ANALYZE conversation_items"))
    rng = random.Random(7)
    timings = []
    for n in range(samples + 20):
        cursor = rng.choice(ids)
        started = time.perf_counter()
        page = await convs.list_items(
            "proj_bench", conversation_id, after=cursor, limit=20, order="asc"
        )
        elapsed = (time.perf_counter() - started) * 1000
        assert page is not None
        if n >= 20:  # the first ones warm the pool and the caches
            timings.append(elapsed)
    await convs.delete("proj_bench", conversation_id)
    await db.close()
    timings.sort()
    return {
        "p50_ms": statistics.median(timings),
        "p99_ms": timings[int(len(timings) * 0.99) - 1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--output-tokens", type=int, default=32)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--skip-model", action="store_true")
    args = parser.parse_args()
    if not args.skip_model:
        rows = prefix_cache_turns(args.turns, args.output_tokens)
        print("turn  input  cached  hit rate  latency ms")
        for r in rows:
            print(
                f"{r['turn']:>4}  {r['input_tokens']:>5}  {r['cached_tokens']:>6}  "
                f"{r['hit_rate']:>8.1%}  {r['latency_ms']:>10.1f}"
            )
        later = rows[1:]
        total = sum(r["cached_tokens"] for r in later) / sum(r["input_tokens"] for r in later)
        print(f"turns 2-{len(rows)}: {total:.1%} of input tokens served by the prefix cache")
    stores = {"sqlite": f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"}
    if args.postgres_url:
        stores["postgresql"] = args.postgres_url
    for name, url in stores.items():
        result = asyncio.run(list_after_cursor(url, args.items, args.samples))
        print(
            f"{name}: list 20 items after a cursor, {args.items} items: "
            f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms"
        )


if __name__ == "__main__":
    main()
