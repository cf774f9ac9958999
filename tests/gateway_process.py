"""A gateway in a process of its own, in front of a slow fake engine, for tests that kill it.

    python -m tests.gateway_process DATA_DIR PORT [REDIS_URL]

Each request streams up to 100,000 tokens, one every 10 ms: long enough to be in flight
whenever the test pulls the plug. Concurrency leases last `LEASE_TTL_S`; on SIGTERM,
streams get `DRAIN_S` to finish.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from headrace.cli.serve import serve_app
from headrace.config import Settings
from tests.fakes import FakeEngine, fake_registry

ROOT = Path(__file__).resolve().parent.parent
LEASE_TTL_S = 3.0
DRAIN_S = 3.0  # after SIGTERM, streams get this long before they are ended
PRICES = {"input_price_per_1m": 1.0, "output_price_per_1m": 2.0}


@contextmanager
def running(args: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A gateway process started with `args`, once it answers `/healthz` on `port`;
    terminated (if still alive) afterwards."""
    proc = subprocess.Popen(args, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "the gateway exited"
            assert time.monotonic() < deadline, "the gateway did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)


def main(argv: list[str]) -> None:
    data_dir, port = Path(argv[0]), int(argv[1])
    settings = Settings(
        data_dir=data_dir,
        redis_url=argv[2] if len(argv) > 2 else None,
        replica_id="gateway-under-test",
        limits={"lease_ttl_s": LEASE_TTL_S},
        log_level="warning",
        server={"host": "127.0.0.1", "port": port, "drain_timeout_s": DRAIN_S},
    )
    engine = FakeEngine(reply_tokens=100_000, delay_s=0.01)
    serve_app(settings, fake_registry(engine, **PRICES))  # as `headrace serve` runs it


if __name__ == "__main__":
    main(sys.argv[1:])
