"""`headrace rollout show | set | clear MODEL`, on the configured database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from headrace.cli.main import app
from headrace.config import load_settings
from headrace.control import audit as audit_service
from headrace.storage.audit import Filter
from headrace.storage.database import Database

runner = CliRunner(env={"COLUMNS": "250"})
CONFIG = """
data_dir: {data_dir}
models:
  - name: big
    deployments:
      - {{name: a, url: "http://127.0.0.1:1/v1", version: v1}}
      - {{name: b, url: "http://127.0.0.1:2/v1", version: v2}}
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("HEADRACE_CONFIG", raising=False)
    monkeypatch.delenv("HEADRACE_DATA_DIR", raising=False)
    path = tmp_path / "headrace.yaml"
    path.write_text(CONFIG.format(data_dir=tmp_path / "data"))
    return path


def _share(output: str, version: str) -> list[str]:
    line = next(line for line in output.splitlines() if f" {version} " in line)
    return [cell.strip() for cell in line.split("│")[2:4]]


def test_set_show_and_clear(config: Path) -> None:
    shown = runner.invoke(app, ["rollout", "show", "big", "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    assert "no rollout" in shown.stdout
    assert "v1, v2" in shown.stdout
    done = runner.invoke(app, ["rollout", "set", "big", "v1=95", "v2=5", "--config", str(config)])
    assert done.exit_code == 0, done.output
    assert _share(done.stdout, "v2") == ["5", "5.0%"]
    again = runner.invoke(app, ["rollout", "show", "big", "-c", str(config)])
    assert _share(again.stdout, "v1") == ["95", "95.0%"]
    cleared = runner.invoke(app, ["rollout", "clear", "big", "-c", str(config)])
    assert cleared.exit_code == 0, cleared.output
    assert "no rollout" in cleared.stdout

    async def audited() -> list[tuple[str, str]]:
        db = Database(load_settings(config).effective_database_url)
        events = (await audit_service.page(db, Filter(target_type="rollout"))).events
        await db.close()
        return [(e.action, e.actor.split(":")[0]) for e in events]

    assert asyncio.run(audited()) == [("rollout.set", "cli"), ("rollout.clear", "cli")]


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["big", "v3=1"], 1, "Unknown version"),
        (["big", "v1=-5"], 1, "at least 0"),
        (["big", "v1=0"], 1, "positive weight"),
        (["big", "v1"], 2, "VERSION=WEIGHT"),
        (["big", "v1=lots"], 2, "VERSION=WEIGHT"),
        (["nope", "v1=1"], 1, "does not exist"),
    ],
)
def test_a_bad_rollout_changes_nothing(config: Path, args: list[str], code: int, says: str) -> None:
    refused = runner.invoke(app, ["rollout", "set", *args, "-c", str(config)])
    assert refused.exit_code == code, refused.output
    assert says in refused.output
    shown = runner.invoke(app, ["rollout", "show", "big", "-c", str(config)])
    assert "no rollout" in shown.stdout
