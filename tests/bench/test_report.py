"""Percentiles and summaries."""

from __future__ import annotations

import math

import pytest

from headrace.bench.client import Result
from headrace.bench.report import percentile, summarize


def test_percentile_interpolates_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 90) == pytest.approx(4.6)
    assert percentile(values, 99) == pytest.approx(4.96)
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_summary_of_a_run() -> None:
    ok = Result(sent_at=0.0, ok=True, ttft_s=0.1, chunk_times_s=[0.1, 0.2, 0.4], e2e_s=0.5)
    ok.prompt_tokens, ok.output_tokens = 10, 5
    failed = Result(sent_at=0.1, error="HTTP 429", e2e_s=0.01)
    summary = summarize([ok, failed], 2.0, {"request_rate": 1.0})
    assert summary["completed"] == 1
    assert summary["failed"] == 1
    assert summary["errors"] == ["HTTP 429"]
    assert summary["output_token_throughput"] == 2.5
    assert summary["total_token_throughput"] == 7.5
    assert summary["ttft_ms"]["p50"] == 100.0
    assert summary["tpot_ms"]["mean"] == pytest.approx(100.0)  # (0.5 - 0.1) / 4
    assert summary["itl_ms"]["p50"] == pytest.approx(150.0)  # gaps 100 and 200
    assert summary["e2e_ms"]["p99"] == 500.0
