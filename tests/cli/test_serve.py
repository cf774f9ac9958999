"""`headrace serve` as a user runs it: first start prints the secrets and a working snippet."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(data_dir: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "headrace.cli.main", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ | {"HEADRACE_DATA_DIR": str(data_dir), "COLUMNS": "200"},
    )


def _read_banner(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "print(r.choices[0].message.content)" in line:
            return "".join(lines)
    proc.kill()
    raise AssertionError("no banner:\n" + "".join(lines))


def test_first_start_prints_secrets_once_and_the_snippet_works(tmp_path: Path) -> None:
    port = _free_port()
    proc = _serve(tmp_path, port)
    try:
        banner = _read_banner(proc)
        assert f"http://127.0.0.1:{port}/v1" in banner
        assert "headrace-tiny-chat" in banner
        assert "headrace-embed-minilm" in banner
        key = re.search(r"API key:\s+(sk-hr-\w+)", banner)
        admin = re.search(r"admin credential:\s+(hr-admin-\w+)", banner)
        assert key is not None
        assert admin is not None
        assert "curl " in banner
        # The README's snippet, with the printed key.
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=key.group(1), max_retries=2
        )
        r = client.chat.completions.create(
            model="headrace-tiny-chat",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
        )
        assert r.choices[0].message.content
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    # Secrets are stored hashed: the database never holds them in clear.
    db = (tmp_path / "headrace.db").read_bytes()
    assert key.group(1).encode() not in db
    assert admin.group(1).encode() not in db
    # A second start prints no secrets.
    proc = _serve(tmp_path, port)
    try:
        banner = _read_banner(proc)
        assert "sk-hr-" not in banner.replace("$HEADRACE_API_KEY", "")
        assert "hr-admin-" not in banner
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


async def test_the_server_freezes_start_up_objects_and_collects_the_young_less_often() -> None:
    """After start-up: what exists is frozen out of the collector's walks, and a young
    collection waits for 20,000 allocations instead of CPython's 700."""
    import gc

    import uvicorn

    from headrace.api.drain import Drain
    from headrace.cli.serve import YOUNG_COLLECTION_EVERY, _DrainingServer

    async def app(scope: object, receive: object, send: object) -> None:
        return None

    thresholds = gc.get_threshold()
    server = _DrainingServer(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning"),
        Drain(1.0),
    )
    server.config.load()  # as uvicorn's `serve` does before `startup`
    server.lifespan = server.config.lifespan_class(server.config)
    try:
        await server.startup()
        assert gc.get_threshold()[0] == YOUNG_COLLECTION_EVERY
        assert gc.get_freeze_count() > 0
    finally:
        await server.shutdown()
        gc.unfreeze()
        gc.set_threshold(*thresholds)
