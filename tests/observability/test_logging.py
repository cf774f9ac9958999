"""One JSON access line per request: ids, tenant, model, tokens, latencies, cost; no content."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.observability.conftest import MODEL, Observed

SECRET = "zebra-quartz 078-05-1120 alice@example.com"


def _line(observed: Observed, request_id: str) -> dict[str, Any]:
    observed.wait_for(
        lambda: any(line.get("request_id") == request_id for line in observed.access_lines())
    )
    return next(line for line in observed.access_lines() if line.get("request_id") == request_id)


def test_an_access_line_has_the_breakdown_and_no_content(observed: Observed) -> None:
    client = observed.client(project="logged")
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": SECRET}],
        max_tokens=5,
        extra_headers={"x-request-id": "req-logged-1"},
    )
    usage = raw.parse().usage
    assert usage is not None
    line = _line(observed, "req-logged-1")
    assert line["event"] == "request"
    assert line["level"] == "info"
    assert line["status"] == 200
    assert line["route"] == "/v1/chat/completions"
    assert line["model"] == MODEL
    assert line["project_id"]  # the tenant, by id
    assert line["outcome"] == "ok"
    assert line["input_tokens"] == usage.prompt_tokens
    assert line["output_tokens"] == usage.completion_tokens == 3
    assert line["cost_usd"] == pytest.approx(3 * 2.0 / 1e6)
    assert (line["endpoint"], line["deployment"]) == ("chat.completions", "local")
    assert line["model_version"] == ""  # the fake registry's model has none
    assert line["duration_ms"] > 0
    assert line["ttft_ms"] is not None
    assert line["tpot_ms"] is not None
    stages = line["stages_ms"]
    for stage in ("receive", "auth", "validate", "route", "build_context", "admission"):
        assert stage in stages
    for stage in ("queue", "decode", "account", "respond"):
        assert stage in stages
    text = observed.log.getvalue()
    for fragment in ("zebra", "078-05-1120", "alice@example.com", "Bearer", "sk-"):
        assert fragment not in text


def test_a_refused_request_logs_its_reason(observed: Observed) -> None:
    with pytest.raises(openai.BadRequestError):
        observed.client().chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": SECRET}],
            extra_body={"not_a_parameter": 1},
            extra_headers={"x-request-id": "req-logged-2"},
        )
    line = _line(observed, "req-logged-2")
    assert line["status"] == 400
    assert line["rejection"] == "validation"
    assert line["output_tokens"] is None
    assert "zebra" not in observed.log.getvalue()
