"""A gateway in a process of its own, in front of a slow fake engine, for tests that kill it.

    python -m tests.gateway_process DATA_DIR PORT [REDIS_URL]

Each request streams up to 100,000 tokens, one every 10 ms: long enough to be in flight
whenever the test pulls the plug. Concurrency leases last `LEASE_TTL_S`; on SIGTERM,
streams get `DRAIN_S` to finish.
"""

from __future__ import annotations

import sys
from pathlib import Path

from headrace.cli.serve import serve_app
from headrace.config import Settings
from tests.fakes import FakeEngine, fake_registry

LEASE_TTL_S = 3.0
DRAIN_S = 3.0  # after SIGTERM, streams get this long before they are ended
PRICES = {"input_price_per_1m": 1.0, "output_price_per_1m": 2.0}


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
