"""`headrace bench serve` against a live server on a fake engine: JSON summary and plot."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from headrace.api.app import create_app
from headrace.cli.main import app as cli
from headrace.config import Settings
from tests.conftest import new_key, serving
from tests.fakes import FakeEngine, fake_registry


def test_bench_serve_reports_latencies(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    key = new_key(settings, name="bench").secret
    app = create_app(settings, fake_registry(FakeEngine(reply_tokens=4)))
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    with serving(app) as base_url:
        result = CliRunner().invoke(
            cli,
            [
                "bench", "serve", "--base-url", f"{base_url}/v1",
                "--model", "headrace-tiny-chat", "--api-key", key,
                "--num-prompts", "6", "--request-rate", "inf,100", "--concurrency", "3",
                "--input-len", "8", "--output-len", "16",
                "--output-json", str(out), "--plot", str(png),
            ],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert [run["load"]["request_rate"] for run in report["runs"]] == ["inf", 100.0]
    for run in report["runs"]:
        assert run["completed"] == 6
        assert run["failed"] == 0
        assert run["output_token_throughput"] > 0
        for key_ in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
            assert run[key_]["p99"] is not None
    assert png.read_bytes().startswith(b"\x89PNG")


def test_bench_serve_counts_refusals(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    app = create_app(settings, fake_registry(FakeEngine()))
    out = tmp_path / "bench.json"
    with serving(app) as base_url:
        result = CliRunner().invoke(
            cli,
            [
                "bench", "serve", "--base-url", f"{base_url}/v1", "--model", "headrace-tiny-chat",
                "--api-key", "sk-wrong", "--num-prompts", "2", "--output-json", str(out),
            ],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    run = json.loads(out.read_text())["runs"][0]
    assert run["failed"] == 2
    assert run["errors"] == ["HTTP 401"]
