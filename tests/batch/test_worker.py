"""The batch worker's lifecycle (batch/worker.py) with a stand-in for the gateway: each
round is driven by `step()` on a clock the test sets."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from headrace.batch.worker import BatchWorker, LineCall, LineResponse, line_id
from headrace.config import BatchSettings
from headrace.storage.batches import Batches
from headrace.storage.database import Database
from headrace.storage.encryption import ContentCipher
from headrace.storage.files import CHUNK, Files
from tests.batch.test_queue import BLANK


class Gateway:
    """Answers each line from `answers` (status per custom id; 200 by default)."""

    def __init__(self) -> None:
        self.calls: list[LineCall] = []
        self.answers: dict[str, list[int]] = {}

    async def __call__(self, call: LineCall) -> LineResponse:
        self.calls.append(call)
        custom = json.loads(call.body)["messages"][0]["content"]
        status = self.answers.get(custom, [200]).pop(0) if self.answers.get(custom) else 200
        if status == 599:
            raise RuntimeError("the gateway broke")
        body: dict[str, Any] = (
            {"id": "x", "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
            if status == 200
            else {"error": {"message": "no", "type": "invalid_request_error"}}
        )
        return LineResponse(status, call.request_key, body, retry_after_s=None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def setup(
    tmp_path: Path,
) -> AsyncIterator[tuple[BatchWorker, Batches, Files, Gateway, Clock]]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await db.migrate()
    cipher = ContentCipher([])
    batches, files, gateway, clock = (
        Batches(db, cipher),
        Files(db, tmp_path, cipher),
        Gateway(),
        Clock(),
    )
    worker = BatchWorker(
        batches, files, gateway, worker_id="w1",
        settings=BatchSettings(max_lines_in_flight=8, lease_s=30), clock=clock,
    )  # fmt: skip
    yield worker, batches, files, gateway, clock
    await worker.close()
    await db.close()


async def _submit(
    batches: Batches, files: Files, lines: list[Any], max_bytes: int = 10**6, **batch: Any
) -> str:
    async def chunks() -> AsyncIterator[bytes]:
        for line in lines:
            yield (line if isinstance(line, str) else json.dumps(line)).encode() + b"\n"

    source = await files.write("p1", filename="in.jsonl", purpose="batch", chunks=chunks(),
                               max_bytes=max_bytes, now=1)  # fmt: skip
    await batches.create(replace(BLANK, input_file_id=source.id, **batch))
    return BLANK.id


def _line(custom_id: str) -> dict[str, Any]:
    body = {"model": "m", "messages": [{"role": "user", "content": custom_id}]}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


async def _read(files: Files, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    lines = await files.lines("p1", file_id)
    assert lines is not None
    return [json.loads(line) async for line in lines]


async def test_a_batch_runs_to_completed_with_output_and_error_files(setup: Any) -> None:
    worker, batches, files, gateway, _ = setup
    gateway.answers = {"bad": [400]}
    batch_id = await _submit(batches, files, [_line("a"), _line("bad"), _line("c")])
    await worker.drain()
    done = await batches.by_id(batch_id)
    assert done is not None
    assert done.status == "completed"
    assert (done.total, done.completed, done.failed) == (3, 2, 1)
    assert (done.input_tokens, done.output_tokens, done.model) == (6, 4, "m")
    assert done.in_progress_at
    assert done.finalizing_at
    assert done.completed_at
    output = await _read(files, done.output_file_id)
    assert [o["custom_id"] for o in output] == ["a", "c"]
    assert output[0]["id"] == line_id(batch_id, 0)
    assert output[0]["response"]["request_id"] == f"{batch_id}-0"
    [error] = await _read(files, done.error_file_id)
    assert error["custom_id"] == "bad"
    assert error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"]["message"] == "no"
    assert {c.request_key for c in gateway.calls} == {f"{batch_id}-{i}" for i in range(3)}


async def test_a_large_input_file_is_never_held_whole(setup: Any) -> None:
    """16,000 requests of 1 KB: checked in one pass and stored in a second, a page of
    rows at a time; the validating round holds what a few of the file's 1 MiB chunks
    take, however large the file."""
    worker, batches, files, _, _ = setup
    lines = [_line(f"r{i}") for i in range(16_000)]
    for line in lines:
        line["body"]["messages"].append({"role": "user", "content": "x" * 900})
    size = sum(len(json.dumps(line)) + 1 for line in lines)
    batch_id = await _submit(batches, files, lines, max_bytes=size)
    del lines
    tracemalloc.start()
    try:
        await worker.step()  # validates, stores the lines, starts the first few
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    started = await batches.by_id(batch_id)
    assert started is not None
    assert (started.status, started.total) == ("in_progress", 16_000)
    assert peak < 10 * CHUNK < size, f"held {peak:,} bytes for a {size:,}-byte file"


async def test_a_bad_input_file_fails_the_batch_with_line_numbers(setup: Any) -> None:
    worker, batches, files, gateway, _ = setup
    wrong_url = _line("b") | {"url": "/v1/embeddings"}
    batch_id = await _submit(batches, files, [_line("a"), "{not json", wrong_url, _line("a")])
    await worker.drain()
    failed = await batches.by_id(batch_id)
    assert failed is not None
    assert failed.status == "failed"
    assert failed.failed_at
    assert [(e["code"], e["line"]) for e in failed.errors or []] == [
        ("invalid_json_line", 2), ("mismatched_endpoint", 3), ("duplicate_custom_id", 4),
    ]  # fmt: skip
    assert gateway.calls == []


async def test_full_limits_retry_later_and_a_broken_call_is_a_server_error(setup: Any) -> None:
    worker, batches, files, gateway, clock = setup
    gateway.answers = {"busy": [429, 200], "boom": [599]}
    batch_id = await _submit(batches, files, [_line("busy"), _line("boom")])
    await worker.drain()
    waiting = await batches.by_id(batch_id)
    assert waiting is not None
    assert waiting.status == "in_progress"
    clock.now += 2
    await worker.drain()
    done = await batches.by_id(batch_id)
    assert done is not None
    assert done.status == "completed"
    assert (done.completed, done.failed) == (1, 1)
    [error] = await _read(files, done.error_file_id)
    assert error["response"]["status_code"] == 500
    assert error["response"]["body"]["error"]["type"] == "server_error"


async def test_a_batch_past_its_window_expires_with_what_ran(setup: Any) -> None:
    worker, batches, files, gateway, clock = setup
    gateway.answers = {"slow": [429]}  # never gets through before the window closes
    batch_id = await _submit(batches, files, [_line("fast"), _line("slow")], expires_at=1500)
    await worker.drain()
    clock.now = 1600
    await worker.drain()
    expired = await batches.by_id(batch_id)
    assert expired is not None
    assert expired.status == "expired"
    assert expired.expired_at
    assert (expired.completed, expired.failed) == (1, 1)
    assert [o["custom_id"] for o in await _read(files, expired.output_file_id)] == ["fast"]
    [late] = await _read(files, expired.error_file_id)
    assert late["error"]["code"] == "batch_expired"
    assert late["response"] is None


async def test_cancel_while_validating_ends_cancelled_with_nothing_run(setup: Any) -> None:
    worker, batches, files, gateway, _ = setup
    batch_id = await _submit(batches, files, [_line("a")])
    await batches.cancel("p1", batch_id, now=1001)
    await worker.drain()
    cancelled = await batches.by_id(batch_id)
    assert cancelled is not None
    assert cancelled.status == "cancelled"
    assert cancelled.cancelled_at
    assert cancelled.output_file_id is None
    assert gateway.calls == []
