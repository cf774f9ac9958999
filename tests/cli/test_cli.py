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
