"""`headrace worker`: a real process serving one engine, reached like any OpenAI server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from headrace.config import BUNDLED_MODELS_DIR


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    data = tmp_path_factory.mktemp("worker")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "headrace.cli.main",
            "worker",
            "--model",
            str(BUNDLED_MODELS_DIR / "headrace-tiny-chat"),
            "--port",
            str(port),
            "--api-key",
            "worker-secret",
            "--data-dir",
            str(data),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ | {"HEADRACE_LOG_LEVEL": "warning"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:  # model loading takes a few seconds; poll its readiness probe
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"worker did not start: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.05)
    yield url
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)


def test_worker_serves_chat_with_its_static_key(worker: str) -> None:
    client = openai.OpenAI(base_url=f"{worker}/v1", api_key="worker-secret", max_retries=0)
    assert [m.id for m in client.models.list()] == ["headrace-tiny-chat"]
    r = client.chat.completions.create(
        model="headrace-tiny-chat",
        messages=[{"role": "user", "content": "What is 2 + 3?"}],
        max_tokens=8,
    )
    assert r.usage is not None
    assert r.usage.completion_tokens > 0
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{worker}/v1", api_key="wrong", max_retries=0).models.list()


def test_worker_reports_engine_stats(worker: str) -> None:
    stats = httpx.get(f"{worker}/stats").json()["models"]["headrace-tiny-chat"]
    assert set(stats) >= {"waiting", "running", "kv_cache_usage", "prefix_cache_hit_rate"}
    assert stats["extra"]["kv_cache_blocks"] > 0


def test_worker_refuses_a_directory_without_a_checkpoint(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "headrace.cli.main", "worker", "--model", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
