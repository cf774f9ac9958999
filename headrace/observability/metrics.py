"""Every Prometheus metric Headrace exports, named in this one module.

Names mirror vLLM's (`vllm:time_to_first_token_seconds` here is
`headrace:time_to_first_token_seconds`) wherever the meaning is the same, so dashboards
built for vLLM carry over by changing the prefix. Labels are bounded: model names come from
the registry (never the request's raw string), projects beyond `max_projects` fold into
`other`, and no key id or request id is ever a label.

With several uvicorn workers, set `PROMETHEUS_MULTIPROC_DIR` to an empty directory shared by
them (prometheus-client reads it itself, at import): every worker writes its samples there
and a scrape of any worker sums them all. Engine gauges are read from `engine.stats()` at
scrape time, so they describe the engines of the worker that answered.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from headrace.engine.interface import EngineStats
from headrace.errors import (
    AuthenticationError,
    ConflictError,
    ContentPolicyError,
    HeadraceError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
)
from headrace.observability.gpu import GpuStats
from headrace.observability.request import RequestRecord

PREFIX = "headrace:"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REQUESTS = f"{PREFIX}requests_total"
TIME_TO_FIRST_TOKEN = f"{PREFIX}time_to_first_token_seconds"
TIME_PER_OUTPUT_TOKEN = f"{PREFIX}request_time_per_output_token_seconds"
INTER_TOKEN_LATENCY = f"{PREFIX}inter_token_latency_seconds"
E2E_LATENCY = f"{PREFIX}e2e_request_latency_seconds"
QUEUE_TIME = f"{PREFIX}request_queue_time_seconds"
PROMPT_TOKENS = f"{PREFIX}prompt_tokens_total"
GENERATION_TOKENS = f"{PREFIX}generation_tokens_total"
CACHED_PROMPT_TOKENS = f"{PREFIX}prompt_tokens_cached_total"
REJECTIONS = f"{PREFIX}request_rejections_total"
DISCONNECTS = f"{PREFIX}request_disconnects_total"
COST = f"{PREFIX}request_cost_usd_total"
NUM_RUNNING = f"{PREFIX}num_requests_running"
NUM_WAITING = f"{PREFIX}num_requests_waiting"
KV_CACHE_USAGE = f"{PREFIX}kv_cache_usage_perc"
PREFIX_CACHE_HIT_RATE = f"{PREFIX}prefix_cache_hit_rate"
PREEMPTIONS = f"{PREFIX}num_preemptions"
GPU_MEMORY_USED = f"{PREFIX}gpu_memory_used_bytes"
GPU_MEMORY_TOTAL = f"{PREFIX}gpu_memory_total_bytes"
GPU_UTILIZATION = f"{PREFIX}gpu_utilization_perc"
# Per-key detail stays out of labels: it is at GET /admin/v1/abuse/suspensions.
ABUSE_SIGNALS = f"{PREFIX}abuse_signals_total"
KEY_SUSPENSIONS = f"{PREFIX}key_suspensions_total"
ABUSE_REASONS = ("token_spike", "block_rate")
# Requests whose tool results scored at or over their project's injection threshold.
INJECTION_FLAGS = f"{PREFIX}prompt_injection_flags_total"
INJECTION_ACTIONS = ("flagged", "blocked")
# Moderation decisions by stage (input, output), category ("none" when nothing was over
# its threshold) and action (allow, flag, block): bounded by the category list.
SAFETY_DECISIONS = f"{PREFIX}safety_decisions_total"
# Routing: requests a fallback model served, and each deployment's circuit and load.
FALLBACKS = f"{PREFIX}fallbacks_total"
CIRCUIT_STATE = f"{PREFIX}deployment_circuit_state"
CIRCUIT_STATES = ("closed", "half_open", "open")
DEPLOYMENT_OUTSTANDING = f"{PREFIX}deployment_requests_outstanding"
DEPLOYMENT_FAILURES = f"{PREFIX}deployment_failures_total"
DEPLOYMENT_QUEUE = f"{PREFIX}deployment_queue_depth"


@dataclass(frozen=True, slots=True)
class DeploymentStats:
    """One deployment as the router sees it, for the scrape."""

    name: str
    model: str
    circuit: str  # one of CIRCUIT_STATES
    outstanding: int
    failures: int
    queue_depth: int = 0  # waiting in a worker's own queue, as its `/stats` last said


REJECTION_REASONS = (
    "rate_limit",
    "budget",
    "overload",
    "validation",
    "safety",
    "auth",
    "conflict",
)

# vLLM's buckets: first tokens from milliseconds (a cached prefix) to minutes (a long queue).
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
TOKEN_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
REQUEST_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
    60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, *REQUEST_BUCKETS)


def rejection_reason(exc: HeadraceError) -> str:
    """The bounded reason a request was refused, or "" when the error is not a refusal."""
    if isinstance(exc, QuotaExceededError):
        return "budget"
    if isinstance(exc, RateLimitError):
        return "rate_limit"
    if isinstance(exc, ServiceUnavailableError):
        return "overload"
    if isinstance(exc, AuthenticationError | PermissionDeniedError):
        return "auth"
    if isinstance(exc, ConflictError):
        return "conflict"
    if isinstance(exc, ContentPolicyError):
        return "safety"
    if isinstance(exc, InvalidRequestError | NotFoundError | PayloadTooLargeError):
        return "validation"
    return ""


def multiprocess() -> bool:
    """prometheus-client's own switch; read here only to pick how a scrape collects."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class ProjectLabels:
    """Project ids as a label, bounded: the first `limit` seen keep their id, later ones
    share `other`, so a tenant explosion cannot explode the series count."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def label(self, project_id: str) -> str:
        if project_id in self._seen:
            return project_id
        if len(self._seen) < self.limit:
            self._seen.add(project_id)
            return project_id
        return "other"


class Metrics:
    """The gateway's metrics on a registry of its own (one per app: no global state)."""

    def __init__(self, max_projects: int = 100) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.projects = ProjectLabels(max_projects)
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        r = self.registry
        self.requests = Counter(
            REQUESTS,
            "HTTP requests by route, model, status and the caller's tier.",
            ["route", "model", "status", "tier"],
            registry=r,
        )
        self.ttft = _histogram(TIME_TO_FIRST_TOKEN, "Received to first token.", TTFT_BUCKETS, r)
        self.tpot = _histogram(
            TIME_PER_OUTPUT_TOKEN,
            "Decode time per output token after the first.",
            TOKEN_BUCKETS,
            r,
        )
        self.itl = _histogram(
            INTER_TOKEN_LATENCY, "Time between consecutive tokens.", TOKEN_BUCKETS, r
        )
        self.e2e = _histogram(E2E_LATENCY, "Received to last byte sent.", REQUEST_BUCKETS, r)
        self.queue = _histogram(
            QUEUE_TIME,
            "Handed to the engine to first token (waiting plus prefill).",
            QUEUE_BUCKETS,
            r,
        )
        self.prompt_tokens = _counter(PROMPT_TOKENS, "Prompt tokens processed.", r)
        self.generation_tokens = _counter(GENERATION_TOKENS, "Tokens generated.", r)
        self.cached_tokens = _counter(
            CACHED_PROMPT_TOKENS, "Prompt tokens served from the prefix cache.", r
        )
        self.rejections = Counter(
            REJECTIONS, "Requests refused, by reason.", ["reason", "model"], registry=r
        )
        self.disconnects = _counter(DISCONNECTS, "Clients gone before their response ended.", r)
        self.cost = Counter(
            COST,
            "Cost of requests in USD, by model and project.",
            ["model", "project"],
            registry=r,
        )
        for reason in REJECTION_REASONS:  # present at zero, so rate() works from the start
            self.rejections.labels(reason=reason, model="")
        self.abuse_signals = Counter(
            ABUSE_SIGNALS, "Per-key abuse signals fired, by reason.", ["reason"], registry=r
        )
        self.key_suspensions = Counter(
            KEY_SUSPENSIONS, "Keys suspended automatically, by reason.", ["reason"], registry=r
        )
        for reason in ABUSE_REASONS:
            self.abuse_signals.labels(reason=reason)
            self.key_suspensions.labels(reason=reason)
        self.injection_flags = Counter(
            INJECTION_FLAGS,
            "Requests whose tool results looked like a prompt injection, by what was done.",
            ["action"],
            registry=r,
        )
        for action in INJECTION_ACTIONS:
            self.injection_flags.labels(action=action)
        self.fallbacks = Counter(
            FALLBACKS,
            "Requests a fallback model served because the requested one could not.",
            ["model", "fallback_model"],
            registry=r,
        )
        self.safety_decisions = Counter(
            SAFETY_DECISIONS,
            "Moderation decisions, by stage, category and action.",
            ["stage", "category", "action"],
            registry=r,
        )

    def signal(self, reason: str, suspended: bool) -> None:
        """One abuse signal (`admission/abuse.py`), and whether it suspended its key."""
        self.abuse_signals.labels(reason=reason).inc()
        if suspended:
            self.key_suspensions.labels(reason=reason).inc()

    def _child(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)`, remembered: prometheus_client takes a lock and checks
        the values on every `labels` call, and a request makes ten of them."""
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def observe(self, record: RequestRecord) -> None:
        """One finished request into every metric it touches."""
        model = record.model
        child = self._child
        child(self.requests, record.route, model, str(record.status), record.tier or "none").inc()
        if record.rejection:
            child(self.rejections, record.rejection, model).inc()
        if record.disconnected:
            child(self.disconnects, model).inc()
        if record.injection:
            child(self.injection_flags, record.injection).inc()
        if record.fallback_model:
            child(self.fallbacks, model, record.fallback_model).inc()
        for verdict in record.safety:
            for category in verdict.categories or ("none",):
                blocked = category in verdict.blocked
                action = "block" if blocked else "flag" if verdict.categories else "allow"
                child(self.safety_decisions, verdict.stage, category, action).inc()
        if record.ttft_s is not None:
            child(self.ttft, model).observe(record.ttft_s)
        if record.queue_s is not None:
            child(self.queue, model).observe(record.queue_s)
        if (tpot := record.time_per_output_token_s) is not None:
            child(self.tpot, model).observe(tpot)
        if record.inter_token_s:
            itl = child(self.itl, model)
            for gap in record.inter_token_s:
                itl.observe(gap)
        if record.e2e_s is not None and record.outcome is not None:
            child(self.e2e, model).observe(record.e2e_s)
        if (usage := record.usage) is not None:
            child(self.prompt_tokens, model).inc(usage.input_tokens)
            child(self.generation_tokens, model).inc(usage.output_tokens)
            child(self.cached_tokens, model).inc(usage.cached_tokens)
            project = self.projects.label(usage.project_id)
            child(self.cost, model, project).inc(usage.cost_usd)

    def exposition(
        self,
        engines: Iterable[tuple[str, EngineStats]],
        gpus: Iterable[GpuStats] = (),
        deployments: Iterable[DeploymentStats] = (),
    ) -> bytes:
        """The text a scrape returns: the request metrics (all workers' when multiprocess),
        then each engine's and GPU's gauges as they are right now."""
        if multiprocess():
            collected = CollectorRegistry()
            MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
        else:
            collected = self.registry
        gauges = CollectorRegistry()
        gauges.register(EngineCollector(list(engines)))
        gauges.register(GpuCollector(list(gpus)))
        gauges.register(DeploymentCollector(list(deployments)))
        return generate_latest(collected) + generate_latest(gauges)


class EngineCollector(Collector):
    """Engine gauges from `engine.stats()`, read when scraped rather than pushed."""

    def __init__(self, engines: list[tuple[str, EngineStats]]) -> None:
        self.engines = engines

    def collect(self) -> Iterable[GaugeMetricFamily]:
        families = {
            NUM_RUNNING: GaugeMetricFamily(NUM_RUNNING, "Sequences running.", labels=["model"]),
            NUM_WAITING: GaugeMetricFamily(NUM_WAITING, "Sequences waiting.", labels=["model"]),
            KV_CACHE_USAGE: GaugeMetricFamily(
                KV_CACHE_USAGE, "KV cache in use, 0 to 1.", labels=["model"]
            ),
            PREFIX_CACHE_HIT_RATE: GaugeMetricFamily(
                PREFIX_CACHE_HIT_RATE,
                "Prompt tokens found in the prefix cache, 0 to 1.",
                labels=["model"],
            ),
            # A gauge, not a counter: it is the engine's running total, read as it is.
            PREEMPTIONS: GaugeMetricFamily(
                PREEMPTIONS, "Preemptions since the engine started.", labels=["model"]
            ),
        }
        for model, stats in self.engines:
            families[NUM_RUNNING].add_metric([model], stats.running)
            families[NUM_WAITING].add_metric([model], stats.waiting)
            families[KV_CACHE_USAGE].add_metric([model], stats.kv_cache_usage)
            families[PREFIX_CACHE_HIT_RATE].add_metric([model], stats.prefix_cache_hit_rate)
            families[PREEMPTIONS].add_metric([model], stats.extra.get("preemptions", 0.0))
        yield from families.values()


class DeploymentCollector(Collector):
    """Each deployment's circuit state (1 on the state it is in), requests in flight, the
    queue a worker reports and failures, read from the router when scraped."""

    def __init__(self, deployments: list[DeploymentStats]) -> None:
        self.deployments = deployments

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        if not self.deployments:
            return
        labels = ["deployment", "model"]
        state = GaugeMetricFamily(
            CIRCUIT_STATE, "Circuit breaker state, 1 on the current one.", labels=[*labels, "state"]
        )
        outstanding = GaugeMetricFamily(
            DEPLOYMENT_OUTSTANDING, "Requests this gateway has in flight there.", labels=labels
        )
        queue = GaugeMetricFamily(
            DEPLOYMENT_QUEUE,
            "Requests waiting in the deployment's own queue, as a worker last reported.",
            labels=labels,
        )
        failures = CounterMetricFamily(
            DEPLOYMENT_FAILURES.removesuffix("_total"),
            "Requests that failed there (each try).",
            labels=labels,
        )
        for d in self.deployments:
            for name in CIRCUIT_STATES:
                state.add_metric([d.name, d.model, name], float(d.circuit == name))
            outstanding.add_metric([d.name, d.model], d.outstanding)
            queue.add_metric([d.name, d.model], d.queue_depth)
            failures.add_metric([d.name, d.model], d.failures)
        yield from (state, outstanding, queue, failures)


class GpuCollector(Collector):
    """GPU memory and utilisation per device; no series at all on a CPU-only process."""

    def __init__(self, gpus: list[GpuStats]) -> None:
        self.gpus = gpus

    def collect(self) -> Iterable[GaugeMetricFamily]:
        if not self.gpus:
            return
        used = GaugeMetricFamily(GPU_MEMORY_USED, "GPU memory in use.", labels=["device"])
        total = GaugeMetricFamily(GPU_MEMORY_TOTAL, "GPU memory in all.", labels=["device"])
        busy = GaugeMetricFamily(
            GPU_UTILIZATION, "Time the GPU was busy, 0 to 1 (NVML).", labels=["device"]
        )
        for gpu in self.gpus:
            used.add_metric([gpu.device], gpu.memory_used_bytes)
            total.add_metric([gpu.device], gpu.memory_total_bytes)
            if gpu.utilization is not None:
                busy.add_metric([gpu.device], gpu.utilization)
        yield from (used, total, busy)


def _histogram(
    name: str, doc: str, buckets: tuple[float, ...], registry: CollectorRegistry
) -> Histogram:
    return Histogram(name, doc, ["model"], buckets=buckets, registry=registry)


def _counter(name: str, doc: str, registry: CollectorRegistry) -> Counter:
    return Counter(name, doc, ["model"], registry=registry)
