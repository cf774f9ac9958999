"""The CLI, driven in process against a temp data dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from headrace import __version__
from headrace.cli.main import app

runner = CliRunner(env={"COLUMNS": "250"})


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HEADRACE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HEADRACE_CONFIG", raising=False)
    return tmp_path


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert __version__ in result.stdout


def test_keys_create_list_revoke(data_dir: Path) -> None:
    created = runner.invoke(app, ["keys", "create", "--name", "ci", "--print-key-only"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("sk-hr-")
    assert "\n" not in key

    listed = runner.invoke(app, ["keys", "list"])
    assert listed.exit_code == 0
    assert "ci" in listed.stdout
    assert key not in listed.stdout  # the secret is never shown again
    assert key[:12] in listed.stdout  # but its lookup prefix is, to tell keys apart

    key_id = next(w for w in listed.stdout.split() if w.startswith("key_"))
    revoked = runner.invoke(app, ["keys", "revoke", key_id])
    assert revoked.exit_code == 0
    assert "revoked" in runner.invoke(app, ["keys", "list"]).stdout

    missing = runner.invoke(app, ["keys", "revoke", "key_nope"])
    assert missing.exit_code == 1


def test_keys_create_table_output(data_dir: Path) -> None:
    result = runner.invoke(app, ["keys", "create", "--project", "web"])
    assert result.exit_code == 0
    assert "shown once" in result.stdout
    assert "web" in result.stdout


def test_models_list(data_dir: Path) -> None:
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0
    assert "headrace-tiny-chat" in result.stdout
    assert "2048" in result.stdout


def test_missing_config_file(data_dir: Path) -> None:
    result = runner.invoke(app, ["models", "list", "--config", str(data_dir / "x.yaml")])
    assert result.exit_code == 2


def test_usage_table(data_dir: Path) -> None:
    import asyncio
    import time

    from headrace.config import Settings
    from headrace.metering.ledger import UsageLedger
    from headrace.metering.usage import UsageEvent
    from headrace.storage.database import Database

    async def seed() -> None:
        db = Database(Settings(data_dir=data_dir).effective_database_url)
        await db.migrate()
        ledger = UsageLedger(db)
        now = int(time.time())
        for i, model in enumerate(["alpha", "beta", "beta"]):
            event = (f"chatcmpl-{i}", now, "org", "proj", "key", model, 1000, 0, 500, 10)
            ledger.record(UsageEvent(*event, 2_000_000, 4_000_000, "ok"))
        await ledger.flush()
        await db.close()

    asyncio.run(seed())
    result = runner.invoke(app, ["usage", "--group-by", "model"])
    assert result.exit_code == 0, result.output
    assert "alpha" in result.stdout
    assert "beta" in result.stdout
    assert "3,000" in result.stdout  # total input tokens
    assert "0.018000" in result.stdout  # total cost in USD
    hourly = runner.invoke(app, ["usage", "--bucket", "1h", "--days", "1"])
    assert hourly.exit_code == 0, hourly.output
    assert runner.invoke(app, ["usage", "--group-by", "colour"]).exit_code == 2


def test_keys_create_with_limits(data_dir: Path) -> None:
    import asyncio

    from headrace.config import Settings
    from headrace.control.limits import get_limits
    from headrace.storage.database import Database

    created = runner.invoke(
        app, ["keys", "create", "--name", "limited", "--rpm", "60", "--tpm", "40000"]
    )
    assert created.exit_code == 0, created.output
    key_id = next(w for w in created.stdout.split() if w.startswith("key_"))

    async def limits_of(key: str) -> tuple[int | None, int | None, int | None]:
        db = Database(Settings(data_dir=data_dir).effective_database_url)
        [found_for_all_models] = await get_limits(db, "key", key)
        found = found_for_all_models.limits
        await db.close()
        return found.requests_per_minute, found.tokens_per_minute, found.tokens_per_day

    assert asyncio.run(limits_of(key_id)) == (60, 40000, None)

    refused = runner.invoke(app, ["keys", "create", "--name", "refused-key", "--rpm", "-1"])
    assert refused.exit_code == 2
    assert "requests_per_minute" in refused.output
    assert "refused-key" not in runner.invoke(app, ["keys", "list"]).stdout  # none created


def test_keys_create_with_budgets(data_dir: Path) -> None:
    import asyncio

    from headrace.config import Settings
    from headrace.control.limits import get_limits
    from headrace.storage.database import Database

    args = ["keys", "create", "--name", "budget", "--spend-day", "2.5", "--spend-month", "40"]
    created = runner.invoke(app, args)
    assert created.exit_code == 0, created.output
    key_id = next(w for w in created.stdout.split() if w.startswith("key_"))

    async def budgets_of(key: str) -> tuple[float | None, float | None]:
        db = Database(Settings(data_dir=data_dir).effective_database_url)
        [found] = await get_limits(db, "key", key)
        await db.close()
        return found.limits.spend_per_day_usd, found.limits.spend_per_month_usd

    assert asyncio.run(budgets_of(key_id)) == (2.5, 40.0)
    refused = runner.invoke(app, ["keys", "create", "--name", "broke", "--spend-day", "-1"])
    assert refused.exit_code == 2
    assert "spend_per_day_usd" in refused.output
