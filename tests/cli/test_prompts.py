"""`headrace prompts create | list | show | promote`, `retention` and `purge`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from headrace.cli.main import app

runner = CliRunner(env={"COLUMNS": "250"})


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HEADRACE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HEADRACE_CONFIG", raising=False)
    return tmp_path


def test_create_version_promote_show_list(data_dir: Path) -> None:
    first = runner.invoke(app, ["prompts", "create", "support", "--text", "Help {{who}}."])
    assert first.exit_code == 0, first.output
    assert "version 1: current" in first.stdout
    text_file = data_dir / "v2.txt"
    text_file.write_text("Assist {{who}} kindly.")
    second = runner.invoke(app, ["prompts", "create", "support", "--file", str(text_file)])
    assert second.exit_code == 0, second.output
    assert "version 2" in second.stdout
    assert "promote" in second.stdout  # a new version is not current until promoted
    listed = runner.invoke(app, ["prompts", "list"])
    assert "support" in listed.stdout
    promoted = runner.invoke(app, ["prompts", "promote", "support", "2"])
    assert promoted.exit_code == 0, promoted.output
    shown = runner.invoke(app, ["prompts", "show", "support"])
    assert "Help {{who}}." in shown.stdout
    assert "Assist {{who}} kindly." in shown.stdout
    rows = [line for line in shown.stdout.splitlines() if "Assist" in line]
    assert "*" in rows[0]  # the current version is marked


def test_refusals_exit_with_status_2(data_dir: Path) -> None:
    assert runner.invoke(app, ["prompts", "show", "nope"]).exit_code == 2
    assert runner.invoke(app, ["prompts", "promote", "nope", "1"]).exit_code == 2
    assert runner.invoke(app, ["prompts", "create", "bad name!", "--text", "x"]).exit_code == 2
    assert runner.invoke(app, ["prompts", "create", "x"]).exit_code == 2  # no text


def test_retention_and_purge(data_dir: Path) -> None:
    set_days = runner.invoke(app, ["retention", "proj_1", "30"])
    assert set_days.exit_code == 0, set_days.output
    assert "30 day(s)" in set_days.stdout
    purged = runner.invoke(app, ["purge"])
    assert purged.exit_code == 0, purged.output
    assert "purged 0 conversation(s)" in purged.stdout
    refused = runner.invoke(app, ["retention", "proj_1", "100000"])
    assert refused.exit_code == 2
    assert "days must be 0 to" in refused.output
