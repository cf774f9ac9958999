"""Metrics after scripted requests: counts, tokens, cost, latencies, refusals, disconnects."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest
import torch

from headrace.admission.limits import Limits
from headrace.engine.interface import EngineStats
from headrace.errors import (
    AuthenticationError,
    HeadraceError,
    InvalidRequestError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
)
from headrace.observability import metrics as m
from headrace.observability.gpu import GpuStats, read_gpus
from headrace.observability.metrics import Metrics, ProjectLabels, rejection_reason
from tests.observability.conftest import ASK, MODEL, Observed

CHAT = "/v1/chat/completions"


def test_a_completion_counts_tokens_cost_and_latencies(observed: Observed) -> None:
    before = observed.sample(
        f"{m.REQUESTS}", route=CHAT, model=MODEL, status="200", tier="standard"
    )
    before_ttft = observed.sample(f"{m.TIME_TO_FIRST_TOKEN}_count", model=MODEL)
    before_out = observed.sample(m.GENERATION_TOKENS, model=MODEL)
    before_cost = observed.total(m.COST, model=MODEL)
    reply = observed.client(project="metrics-cost").chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=5
    )
    assert reply.usage is not None
    observed.wait_for(
        lambda: (
            observed.sample(m.REQUESTS, route=CHAT, model=MODEL, status="200", tier="standard")
            == before + 1
        )
    )
    assert observed.sample(m.GENERATION_TOKENS, model=MODEL) == before_out + 3
    assert observed.sample(m.PROMPT_TOKENS, model=MODEL) >= reply.usage.prompt_tokens
    assert observed.sample(f"{m.TIME_TO_FIRST_TOKEN}_count", model=MODEL) == before_ttft + 1
    assert observed.sample(f"{m.E2E_LATENCY}_count", model=MODEL) >= 1
    assert observed.sample(f"{m.QUEUE_TIME}_count", model=MODEL) >= 1
    # 3 tokens: 2 gaps between them, and a time per output token.
    assert observed.sample(f"{m.INTER_TOKEN_LATENCY}_count", model=MODEL) >= 2
    assert observed.sample(f"{m.TIME_PER_OUTPUT_TOKEN}_count", model=MODEL) >= 1
    cost = observed.total(m.COST, model=MODEL) - before_cost
    assert cost == pytest.approx(3 * 2.0 / 1e6)  # 3 output tokens at $2 per million


def test_a_429_counts_a_rate_limit_rejection(observed: Observed) -> None:
    before = observed.sample(m.REJECTIONS, reason="rate_limit", model=MODEL)
    client = observed.client(Limits(requests_per_minute=1))
    client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=1)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=1)
    observed.wait_for(
        lambda: observed.sample(m.REJECTIONS, reason="rate_limit", model=MODEL) == before + 1
    )
    assert observed.total(m.REQUESTS, route=CHAT, model=MODEL, status="429") >= 1


def test_a_400_counts_a_validation_rejection(observed: Observed) -> None:
    before = observed.sample(m.REJECTIONS, reason="validation", model="")
    with pytest.raises(openai.BadRequestError):
        observed.client().chat.completions.create(
            model=MODEL, messages=ASK, extra_body={"not_a_parameter": 1}
        )
    observed.wait_for(
        lambda: observed.sample(m.REJECTIONS, reason="validation", model="") == before + 1
    )


def test_a_bad_key_counts_an_auth_rejection(observed: Observed) -> None:
    before = observed.sample(m.REJECTIONS, reason="auth", model="")
    client = openai.OpenAI(base_url=f"{observed.base_url}/v1", api_key="sk-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model=MODEL, messages=ASK)
    observed.wait_for(lambda: observed.sample(m.REJECTIONS, reason="auth", model="") == before + 1)


def test_a_dropped_stream_counts_a_disconnect(observed: Observed) -> None:
    before = observed.sample(m.DISCONNECTS, model=MODEL)
    observed.engine.gate = asyncio.Event()  # never opened: the stream hangs after a token
    try:
        with httpx.stream(
            "POST",
            f"{observed.base_url}{CHAT}",
            json={"model": MODEL, "messages": ASK, "stream": True},
            headers={"Authorization": f"Bearer {observed.key()}"},
        ) as response:
            lines = response.iter_lines()
            while not next(lines).startswith("data:"):
                pass
        observed.wait_for(lambda: observed.sample(m.DISCONNECTS, model=MODEL) == before + 1)
    finally:
        observed.engine.gate = None


def test_scrape_has_request_metrics_and_engine_gauges(observed: Observed) -> None:
    text = httpx.get(f"{observed.base_url}/metrics").text
    for name in (m.REQUESTS, m.REJECTIONS, m.NUM_RUNNING, m.KV_CACHE_USAGE, m.PREEMPTIONS):
        assert f"\n{name}" in text
    assert f'{m.NUM_WAITING}{{model="{MODEL}"}} 0.0' in text


def test_engine_gauges_read_the_stats() -> None:
    stats = EngineStats(
        waiting=2, running=3, kv_cache_usage=0.5, prefix_cache_hit_rate=0.25,
        extra={"preemptions": 7.0},
    )  # fmt: skip
    text = Metrics().exposition([("m", stats)]).decode()
    assert f'{m.NUM_WAITING}{{model="m"}} 2.0' in text
    assert f'{m.NUM_RUNNING}{{model="m"}} 3.0' in text
    assert f'{m.KV_CACHE_USAGE}{{model="m"}} 0.5' in text
    assert f'{m.PREFIX_CACHE_HIT_RATE}{{model="m"}} 0.25' in text
    assert f'{m.PREEMPTIONS}{{model="m"}} 7.0' in text


def test_projects_beyond_the_bound_share_a_label() -> None:
    labels = ProjectLabels(limit=2)
    assert [labels.label(p) for p in ("a", "b", "c", "a", "d")] == ["a", "b", "other", "a", "other"]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (RateLimitError("x"), "rate_limit"),
        (QuotaExceededError("x"), "budget"),
        (ServiceUnavailableError("x"), "overload"),
        (InvalidRequestError("x"), "validation"),
        (AuthenticationError("x"), "auth"),
        (HeadraceError("x"), ""),
    ],
)
def test_rejection_reasons(error: HeadraceError, reason: str) -> None:
    assert rejection_reason(error) == reason
    assert not reason or reason in m.REJECTION_REASONS


def test_multiprocess_mode_sums_the_workers(tmp_path: Path) -> None:
    """Two worker processes write into `PROMETHEUS_MULTIPROC_DIR`; a scrape sees both."""
    script = (
        "from headrace.observability.metrics import Metrics\n"
        "from headrace.observability.request import RequestRecord\n"
        "metrics = Metrics()\n"
        "record = RequestRecord('r', route='/v1/models', model='m')\n"
        "record.end(200)\n"
        "metrics.observe(record)\n"
        "import sys; sys.stdout.write(metrics.exposition([]).decode())\n"
    )
    env = os.environ | {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        ).stdout
    assert f'{m.REQUESTS}{{model="m",route="/v1/models",status="200",tier="none"}} 2.0' in out


def test_gpu_gauges_when_there_are_gpus() -> None:
    gpus = [GpuStats("cuda:0", 3e9, 80e9, 0.75), GpuStats("cuda:1", 1e9, 80e9, None)]
    text = Metrics().exposition([], gpus).decode()
    assert f'{m.GPU_MEMORY_USED}{{device="cuda:0"}} 3e+09' in text
    assert f'{m.GPU_MEMORY_TOTAL}{{device="cuda:1"}} 8e+10' in text
    assert f'{m.GPU_UTILIZATION}{{device="cuda:0"}} 0.75' in text
    assert f'{m.GPU_UTILIZATION}{{device="cuda:1"}}' not in text  # no NVML: no guess
    assert m.GPU_MEMORY_USED not in Metrics().exposition([], []).decode()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_read_gpus_on_cuda() -> None:
    (first, *_) = read_gpus()
    assert first.device == "cuda:0"
    assert 0 < first.memory_used_bytes <= first.memory_total_bytes


def test_read_gpus_without_cuda_is_empty() -> None:
    if not torch.cuda.is_available():
        assert read_gpus() == []
