"""A gateway with its batch worker in a process of its own, for tests that kill it.

    python -m tests.batch.batch_process DATA_DIR PORT REPLICA_ID

The fake engine paces tokens (20 tokens, 10 ms apart), so a batch of a few dozen lines is
mid-way for seconds; leases are short so that lines of a dead worker lapse quickly.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from headrace.api.app import create_app
from headrace.config import Settings
from tests.fakes import FakeEngine, fake_registry

LEASE_S = 2.0
REPLY_TOKENS = 20


def main(argv: list[str]) -> None:
    data_dir, port, replica = Path(argv[0]), int(argv[1]), argv[2]
    settings = Settings(
        data_dir=data_dir,
        replica_id=replica,
        log_level="warning",
        safety={"enabled": False},  # not what this test is about; its model loads slowly
        batch={"lease_s": LEASE_S, "max_lines_in_flight": 4, "poll_interval_s": 0.2},
    )
    engine = FakeEngine(reply_tokens=REPLY_TOKENS, delay_s=0.01)
    app = create_app(settings, fake_registry(engine, input_price_per_1m=1.0))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
