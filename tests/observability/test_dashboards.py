"""The Grafana dashboard and the alert rules load, and name only series we export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from headrace.engine.interface import EngineStats
from headrace.metering.usage import Prices, usage_event
from headrace.observability.gpu import GpuStats
from headrace.observability.metrics import DeploymentStats, Metrics
from headrace.observability.request import RequestRecord

DEPLOY = Path(__file__).parent.parent.parent / "deploy"
DASHBOARD = DEPLOY / "grafana" / "headrace.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
NAME = re.compile(r"headrace:[A-Za-z0-9_:]+")


def _exported_series() -> set[str]:
    """Every series name a scrape can return, read from a real exposition."""
    metrics = Metrics()
    record = RequestRecord("r", route="/v1/chat/completions", model="m", stream=True)
    record.engine_submitted_s = 0.0
    record.token_times_s = [0.1, 0.2]
    record.output_tokens_timed = 2
    usage = usage_event(
        request_id="r", created_at=0, org_id="o", project_id="p", api_key_id="k", model="m",
        input_tokens=5, cached_tokens=1, output_tokens=2, latency_s=0.3,
        prices=Prices(1.0, 2.0), status="ok",
    )  # fmt: skip
    record.rejection = "rate_limit"
    record.fallback_model = "small"
    record.account(usage, "cancelled")
    record.end(200)
    metrics.observe(record)
    gpus = [GpuStats("cuda:0", 1.0, 2.0, 0.5)]
    deployments = [DeploymentStats("d", "m", "open", 1, 2)]
    text = metrics.exposition([("m", EngineStats())], gpus, deployments).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def _dashboard_exprs() -> list[str]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_the_dashboard_loads_and_names_exported_series() -> None:
    exported = _exported_series()
    exprs = _dashboard_exprs()
    assert len(exprs) >= 10
    for expr in exprs:
        names = set(NAME.findall(expr))
        assert names, expr
        assert names <= exported, (expr, names - exported)


def test_the_dashboard_covers_what_operators_asked_for() -> None:
    titles = " | ".join(p["title"] for p in json.loads(DASHBOARD.read_text())["panels"])
    for wanted in ("first token", "Tokens per second", "Queue time", "Rejection rate",
                   "Disconnect rate", "Safety block rate", "Cost per 1K tokens", "fallbacks",
                   "open circuits", "tenant tier"):  # fmt: skip
        assert wanted in titles


def test_every_alert_names_exported_series_or_recorded_ones() -> None:
    rules = _rules()
    recorded = {r["record"] for r in rules if "record" in r}
    exported = _exported_series()
    alerts = [r for r in rules if "alert" in r]
    assert {
        "HeadraceHighErrorRate", "HeadraceKVCacheSaturated", "HeadraceDeploymentCircuitOpen"
    } <= {a["alert"] for a in alerts}  # fmt: skip
    assert any("BudgetBurn" in a["alert"] for a in alerts)
    for rule in rules:
        names = set(NAME.findall(rule["expr"]))
        assert names, rule
        assert names <= exported | recorded, (rule["expr"], names - exported - recorded)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
