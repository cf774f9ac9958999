"""`headrace safety policy show | set | reset`, by project name or id."""

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


def _row(output: str, category: str) -> list[str]:
    line = next(line for line in output.splitlines() if f" {category} " in line)
    return [cell.strip() for cell in line.split("│")[2:5]]


def test_show_set_and_reset_a_policy(data_dir: Path) -> None:
    shown = runner.invoke(app, ["safety", "policy", "show", "shop"])
    assert shown.exit_code == 0, shown.output
    assert "(default)" in shown.stdout
    assert _row(shown.stdout, "sexual/minors") == ["block", "block", "0.9"]
    assert _row(shown.stdout, "hate")[:2] == ["flag", "flag"]
    assert "(model)" in _row(shown.stdout, "hate")[2]
    done = runner.invoke(
        app,
        [
            "safety", "policy", "set", "shop", "--input", "hate=block",
            "--output", "all=off", "--threshold", "hate=0.4",
        ],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "(default)" not in done.stdout  # the project has its own now
    assert _row(done.stdout, "hate") == ["block", "off", "0.4"]
    assert _row(done.stdout, "violence") == ["flag", "off", _row(shown.stdout, "violence")[2]]
    again = runner.invoke(app, ["safety", "policy", "set", "shop", "--threshold", "hate=default"])
    assert _row(again.stdout, "hate")[:2] == ["block", "off"]  # kept: only the threshold changed
    assert "(model)" in _row(again.stdout, "hate")[2]
    reset = runner.invoke(app, ["safety", "policy", "reset", "shop"])
    assert reset.exit_code == 0
    assert "(default)" in reset.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--input", "spam=block"],
        ["--input", "hate=deny"],
        ["--threshold", "hate=lots"],
        ["--threshold", "hate=3"],
        ["--input", "hate"],
    ],
)
def test_bad_changes_are_refused_and_write_nothing(data_dir: Path, args: list[str]) -> None:
    bad = runner.invoke(app, ["safety", "policy", "set", "shop", *args])
    assert bad.exit_code == 2
    assert "Invalid safety policy" in bad.output
    shown = runner.invoke(app, ["safety", "policy", "show", "shop"])
    assert "(default)" in shown.stdout


def test_an_unknown_project_is_an_error(data_dir: Path) -> None:
    missing = runner.invoke(app, ["safety", "policy", "show", "nope"])
    assert missing.exit_code == 1
    assert "No project" in missing.output
