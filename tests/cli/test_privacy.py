"""`headrace privacy policy show | set | reset`, by project name or id."""

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
    made = runner.invoke(app, ["keys", "create", "--project", "shop", "--print-key-only"])
    assert made.exit_code == 0, made.output
    return tmp_path


def _row(output: str, setting: str) -> str:
    line = next(line for line in output.splitlines() if f" {setting} " in line)
    return line.split("│")[2].strip()


def test_show_set_and_reset_a_policy(data_dir: Path) -> None:
    shown = runner.invoke(app, ["privacy", "policy", "show", "shop"])
    assert shown.exit_code == 0, shown.output
    assert "server defaults" in shown.stdout
    assert _row(shown.stdout, "pii_mode") == "log"
    done = runner.invoke(
        app,
        [
            "privacy", "policy", "set", "shop", "--pii-mode", "mask",
            "--pii-kind", "email", "--pii-kind", "iban", "--injection-action", "block",
        ],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    shown = runner.invoke(app, ["privacy", "policy", "show", "shop"])
    assert "project policy" in shown.stdout
    assert _row(shown.stdout, "pii_mode") == "mask"
    assert _row(shown.stdout, "pii_kinds") == "email, iban"
    assert _row(shown.stdout, "injection_action") == "block"
    assert _row(shown.stdout, "injection_threshold") == "0.5"
    reset = runner.invoke(app, ["privacy", "policy", "reset", "shop"])
    assert reset.exit_code == 0, reset.output
    assert "server defaults" in reset.stdout
    audit = runner.invoke(app, ["audit", "list", "--action", "privacy_policy.set"])
    assert audit.exit_code == 0, audit.output
    assert "privacy_policy.set" in audit.stdout


def test_bad_values_and_unknown_projects_are_refused(data_dir: Path) -> None:
    bad = runner.invoke(app, ["privacy", "policy", "set", "shop", "--pii-mode", "shred"])
    assert bad.exit_code == 2
    assert "pii_mode" in bad.output
    bad = runner.invoke(app, ["privacy", "policy", "set", "shop", "--injection-threshold", "2"])
    assert bad.exit_code == 2
    missing = runner.invoke(app, ["privacy", "policy", "show", "no-such-project"])
    assert missing.exit_code == 1
    assert "No project" in missing.output
