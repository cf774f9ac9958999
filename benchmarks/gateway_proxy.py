"""A gateway proxying an instant OpenAI-compatible upstream, side by side in one run:

    .venv/bin/python -m benchmarks.gateway_proxy --duration 10 --connections 64

- `upstream`: the instant upstream alone (benchmarks/proxy/upstream.py);
- `floor`: a minimal raw-ASGI forwarder with a bearer check and an aiohttp client
  (benchmarks/proxy/floor.py), the fastest a Python gateway can be;
- `litellm`: the LiteLLM proxy, installed from PyPI into `benchmarks/.venv-litellm` on first
  use, no database, one uvicorn worker (its recommendation: "one Uvicorn worker per pod and
  scale horizontally", docs.litellm.ai/docs/proxy/server_tuning; with several it also
  failed to start here), its cost map read locally (no network here);
- `headrace`: `headrace serve` with the upstream as an `openai` deployment and its full
  pipeline on (auth, limits, idempotency, metering, metrics, access log), moderation off;
- `headrace-moderated`: the same with moderation on (the default policy).

Each is loaded by `wrk` (Debian's package) with 64 connections, non-streaming and streaming
chat completions, each request with a fresh `Idempotency-Key`; requests/s and latency
p50/p99 are what wrk reports.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LITELLM_VENV = ROOT / "benchmarks" / ".venv-litellm"
BODY = {"model": "instant", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process on port {port} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout_s} s")


@contextmanager
def running(
    args: list[str], port: int, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[None]:
    """`args` listening on `port` for the block; its stderr (logs) into `log` if given."""
    stderr = log.open("wb") if log is not None else None
    proc = subprocess.Popen(
        args, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
        stderr=stderr,
    )  # fmt: skip
    try:
        wait_listening(port, proc)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if stderr is not None:
            stderr.close()


def litellm_python() -> Path:
    python = LITELLM_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "litellm[proxy]"], check=True)
    return python


def wrk(url: str, key: str, *, stream: bool, duration: int, connections: int) -> dict[str, float]:
    body = json.dumps(BODY | ({"stream": True} if stream else {}))
    script = (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n' + IDEMPOTENCY_KEYS
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", f.name,
         f"{url}/v1/chat/completions"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(f.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": round(rps, 1),
        "p50_ms": _latency(out, "50%"),
        "p99_ms": _latency(out, "99%"),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


# A fresh `Idempotency-Key` on every request (unique per run, wrk thread and request), so a
# gateway that honours them claims and records each one; the others ignore the header.
IDEMPOTENCY_KEYS = """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", tostring(os.time()) .. "-" .. threads)
end
local counter = 0
request = function()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = "bench-" .. tid .. "-" .. counter
  return wrk.format()
end
"""


def _latency(out: str, pct: str) -> float:
    value, unit = re.search(rf"{pct}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return round(float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit], 2)


@contextmanager
def target(name: str, upstream: str, tmp: Path) -> Iterator[tuple[str, str]]:
    """Start `name` in front of `upstream`; yields its URL and bearer key."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if name == "floor":
        with running([sys.executable, "-m", "benchmarks.proxy.floor", str(port), upstream], port):
            yield url, "floor-key"
    elif name == "litellm":
        config = tmp / "litellm.yaml"
        config.write_text(
            "model_list:\n  - model_name: instant\n    litellm_params:\n"
            f"      model: openai/instant\n      api_base: {upstream}/v1\n      api_key: none\n"
            "general_settings:\n  master_key: sk-litellm-bench\n"
        )
        litellm = litellm_python().parent / "litellm"
        args = [str(litellm), "--config", str(config), "--port", str(port), "--num_workers", "1"]
        env = {"LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        with running(args, port, env=env):
            yield url, "sk-litellm-bench"
    elif name in ("headrace", "headrace-moderated"):
        with headrace(port, upstream, tmp / name, moderated=name == "headrace-moderated") as key:
            yield url, key
    else:
        raise ValueError(name)


def headrace_config(
    tmp: Path, upstream: str, *, moderated: bool, port: int | None = None
) -> tuple[dict[str, str], str]:
    """A data directory and config for Headrace with the upstream as an `openai` deployment
    of model `instant`, its access log on; moderation only when `moderated` (the issue's
    pipeline is auth, limits, idempotency, metering, metrics and the access log). The
    environment that selects them, and an API key made there."""
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "headrace.yaml"
    config.write_text(
        "models:\n  - name: instant\n    kind: chat\n    deployments:\n"
        f"      - name: instant-upstream\n        kind: openai\n        url: {upstream}/v1\n"
        "        model: instant\n"
        + (f"server:\n  port: {port}\n" if port is not None else "")
        + "log_level: info\n"
        f"safety:\n  enabled: {'true' if moderated else 'false'}\n"
    )
    env = {"HEADRACE_DATA_DIR": str(tmp / "headrace-data"), "HEADRACE_CONFIG": str(config)}
    key = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "headrace"), "keys", "create", "--name", "bench",
         "--print-key-only"],
        capture_output=True, text=True, check=True, env={**os.environ, **env},
    ).stdout.strip()  # fmt: skip
    return env, key


@contextmanager
def headrace(port: int, upstream: str, tmp: Path, *, moderated: bool) -> Iterator[str]:
    """`headrace serve` on `port` as `headrace_config` sets it up (its access log to
    `tmp`'s headrace.log); yields its API key."""
    env, key = headrace_config(tmp, upstream, moderated=moderated, port=port)
    serve = [str(ROOT / ".venv" / "bin" / "headrace"), "serve"]
    with running(serve, port, env=env, log=tmp / "headrace.log"):  # the access log too
        yield key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--targets", default="upstream,floor,litellm,headrace,headrace-moderated")
    args = parser.parse_args()
    results: dict[str, dict[str, dict[str, float]]] = {}
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    with (
        tempfile.TemporaryDirectory() as tmp,
        running([sys.executable, "-m", "benchmarks.proxy.upstream", str(up_port)], up_port),
    ):
        for name in args.targets.split(","):
            if name == "upstream":
                runs = {
                    mode: wrk(upstream, "none", stream=mode == "stream",
                              duration=args.duration, connections=args.connections)
                    for mode in ("json", "stream")
                }  # fmt: skip
            else:
                with target(name, upstream, Path(tmp)) as (url, key):
                    for _ in range(2):  # warm-up: connection pools, caches, JIT-free paths
                        wrk(url, key, stream=False, duration=1, connections=4)
                    runs = {
                        mode: wrk(url, key, stream=mode == "stream",
                                  duration=args.duration, connections=args.connections)
                        for mode in ("json", "stream")
                    }  # fmt: skip
            results[name] = runs
            print(name, json.dumps(runs), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
