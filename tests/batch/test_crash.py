"""A gateway running a batch is killed with SIGKILL mid-way; after a restart the batch
completes, every line's output appears exactly once and each line has exactly one usage
event, whether the restarted worker is the same one (it takes its lines back at once) or
another (it claims them once their leases lapse)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path

import openai
import pytest
from sqlalchemy import func, select

from headrace.config import Settings
from headrace.storage.database import Database
from headrace.storage.schema import BatchLineRow, UsageEventRow
from tests.batch.harness import chat_line, jsonl, make_keys
from tests.conftest import _free_port
from tests.gateway_process import running

LINES = 40


def gateway(data_dir: Path, port: int, replica: str) -> ContextManager[subprocess.Popen[bytes]]:
    args = [sys.executable, "-m", "tests.batch.batch_process", str(data_dir), str(port), replica]
    return running(args, port)


def _query(settings: Settings, stmt: object) -> list[tuple[object, ...]]:
    async def run() -> list[tuple[object, ...]]:
        db = Database(settings.effective_database_url)
        async with db.session() as session:
            rows = [tuple(r) for r in await session.execute(stmt)]  # type: ignore[call-overload]
        await db.close()
        return rows

    return asyncio.run(run())


def _line_statuses(settings: Settings) -> dict[str, int]:
    stmt = select(BatchLineRow.status, func.count()).group_by(BatchLineRow.status)
    return {str(s): int(str(n)) for s, n in _query(settings, stmt)}


@pytest.mark.parametrize("restart_as", ["same-worker", "other-worker"])
def test_batch_survives_sigkill(tmp_path: Path, restart_as: str) -> None:
    settings = Settings(data_dir=tmp_path)
    key = make_keys(settings, ("default",))["default"]
    port = _free_port()
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)

    with gateway(tmp_path, port, "batch-under-test") as proc:
        upload = jsonl([chat_line(f"line-{i}", max_tokens=20) for i in range(LINES)])
        source = client.files.create(file=upload, purpose="batch")
        batch = client.batches.create(
            input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        deadline = time.monotonic() + 60
        while True:  # another process: poll its database until some lines are done
            statuses = _line_statuses(settings)
            if statuses.get("ok", 0) >= 4 and statuses.get("running", 0) > 0:
                break
            assert time.monotonic() < deadline, f"the batch did not get going: {statuses}"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    statuses = _line_statuses(settings)
    assert statuses.get("running", 0) > 0  # killed with lines in flight
    assert statuses.get("ok", 0) < LINES

    replica = "batch-under-test" if restart_as == "same-worker" else "another-worker"
    with gateway(tmp_path, port, replica):
        deadline = time.monotonic() + 60
        while (found := client.batches.retrieve(batch.id)).status != "completed":
            assert time.monotonic() < deadline, f"the batch did not finish: {found.status}"
            time.sleep(0.05)
        assert found.request_counts is not None
        counts = found.request_counts
        assert (counts.total, counts.completed, counts.failed) == (LINES, LINES, 0)
        assert found.output_file_id is not None
        assert found.error_file_id is None
        output = client.files.content(found.output_file_id).text

    results = [json.loads(line) for line in output.splitlines()]
    assert sorted(r["custom_id"] for r in results) == sorted(f"line-{i}" for i in range(LINES))
    assert all(r["response"]["status_code"] == 200 for r in results)
    assert [r["custom_id"] for r in results] == [f"line-{i}" for i in range(LINES)]  # in order
    ids = [str(r[0]) for r in _query(settings, select(UsageEventRow.request_id))]
    batch_ids = [i for i in ids if i.startswith(f"chatcmpl-{batch.id}-")]
    assert sorted(batch_ids) == sorted(f"chatcmpl-{batch.id}-{i}" for i in range(LINES))
    attempts = _query(settings, select(func.max(BatchLineRow.attempt)))
    assert int(str(attempts[0][0])) >= 2  # some line really ran twice, yet counts once
