"""Graceful shutdown through a real process: on SIGTERM the gateway stops listening, lets a
short stream finish, ends a long one with an error event at the deadline, and exits."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import httpx

from headrace.config import Settings
from tests.api.test_crash import ASK, MODEL, gateway
from tests.conftest import _free_port, new_key
from tests.gateway_process import DRAIN_S


async def _stream(client: httpx.AsyncClient, max_tokens: int, started: asyncio.Event) -> list[str]:
    """The stream's data lines, once it has ended."""
    body = {"model": MODEL, "messages": ASK, "stream": True, "max_tokens": max_tokens}
    lines = []
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                lines.append(line[6:])
                started.set()
    return lines


async def _both(a: asyncio.Event, b: asyncio.Event) -> None:
    await a.wait()
    await b.wait()


def test_sigterm_drains_then_ends_streams_with_an_error_event(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    secret = new_key(settings).secret
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    with gateway(tmp_path, port, None) as proc:

        async def run() -> tuple[list[str], list[str], float]:
            headers = {"Authorization": f"Bearer {secret}"}
            async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as c:
                short_started, long_started = asyncio.Event(), asyncio.Event()
                # 50 tokens at 10 ms: done well inside the drain; 1,500 are not.
                short = asyncio.create_task(_stream(c, 50, short_started))
                long = asyncio.create_task(_stream(c, 1500, long_started))
                async with asyncio.timeout(60):  # a stream that fails never starts
                    await asyncio.wait(
                        [short, long, asyncio.create_task(_both(short_started, long_started))],
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                assert short_started.is_set()
                assert long_started.is_set()
                proc.send_signal(signal.SIGTERM)
                t0 = time.monotonic()
                short_lines = await short
                long_lines = await long
                return short_lines, long_lines, time.monotonic() - t0

        short_lines, long_lines, took = asyncio.run(run())
        # uvicorn re-raises the signal once it has shut down cleanly.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    assert short_lines[-1] == "[DONE]"
    assert json.loads(long_lines[-1])["error"]["code"] == "server_shutting_down"
    assert DRAIN_S - 0.5 < took < DRAIN_S + 5
    try:
        httpx.get(f"{base_url}/healthz", timeout=2)
        raise AssertionError("the gateway still listens")
    except httpx.TransportError:
        pass
