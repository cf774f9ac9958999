"""Database tables. Changes here need an Alembic migration in `migrations/versions/`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names so migrations behave the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The project's service tier: which deployments its requests may use, a metrics label.
    tier: Mapped[str] = mapped_column(String(32), default="standard")


class ApiKey(Base):
    """A project's API key. Only an HMAC of the secret is stored; `prefix` finds the row."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Public model names this key may use; NULL: every model.
    allowed_models: Mapped[list[str] | None] = mapped_column(JSON)


class AdminCredential(Base):
    """Operator credential for the admin API, separate from project keys."""

    __tablename__ = "admin_credentials"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LimitRow(Base):
    """Rate limits of one org, project or key, for all models (`model` "") or for one;
    a NULL column means no limit of that kind."""

    __tablename__ = "limits"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)  # org | project | key
    scope_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True, default="")
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    tokens_per_minute: Mapped[int | None] = mapped_column(Integer)
    max_concurrent_requests: Mapped[int | None] = mapped_column(Integer)
    tokens_per_day: Mapped[int | None] = mapped_column(Integer)
    # Budgets in USD per UTC day and per calendar month; all-models rows only.
    spend_per_day_usd: Mapped[float | None] = mapped_column(Float)
    spend_per_month_usd: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReplicaRow(Base):
    """The gateway process holding a replica id, kept fresh by its heartbeat."""

    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance: Mapped[str] = mapped_column(String(32))  # random, per process start
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    process_start: Mapped[int] = mapped_column(BigInteger)  # with the pid: which process
    heartbeat_ms: Mapped[int] = mapped_column(BigInteger)  # unix ms


class UsageEventRow(Base):
    """One request's usage, written once: `request_id` is the key, so a retried write
    cannot count a request twice. Ids are copies, not foreign keys: usage outlives keys."""

    __tablename__ = "usage_events"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Unix seconds: buckets are integer arithmetic, the same on SQLite and PostgreSQL.
    created_at: Mapped[int] = mapped_column(BigInteger, index=True)
    org_id: Mapped[str] = mapped_column(String(40))
    project_id: Mapped[str] = mapped_column(String(40), index=True)
    api_key_id: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(200))
    input_tokens: Mapped[int] = mapped_column(Integer)
    cached_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    # Billionths of a dollar: exact sums, and per-token prices are far below a micro-dollar.
    input_cost_nanousd: Mapped[int] = mapped_column(BigInteger)
    output_cost_nanousd: Mapped[int] = mapped_column(BigInteger)
    # started (an outbox row: the request is running) | ok | error | cancelled
    status: Mapped[str] = mapped_column(String(16), index=True)
    # The gateway that wrote the started row: which replica's restart closes it if open.
    replica: Mapped[str | None] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(32), default="chat.completions")
    deployment: Mapped[str] = mapped_column(String(200), default="")
    model_version: Mapped[str] = mapped_column(String(64), default="")
    gateway_ms: Mapped[int | None] = mapped_column(Integer)
    ttft_ms: Mapped[int | None] = mapped_column(Integer)
    # The registry prompt (and its version) the request was built from, if any.
    prompt_id: Mapped[str | None] = mapped_column(String(64))
    prompt_version: Mapped[int | None] = mapped_column(Integer)


class PromptRow(Base):
    """A named prompt of the registry; `current_version` is the one a bare reference uses."""

    __tablename__ = "prompts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    current_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[int] = mapped_column(BigInteger)


class PromptVersionRow(Base):
    """One immutable version of a prompt: rows are inserted, never updated."""

    __tablename__ = "prompt_versions"

    prompt_id: Mapped[str] = mapped_column(
        ForeignKey("prompts.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    instructions: Mapped[str] = mapped_column(Text)
    variables: Mapped[list[str]] = mapped_column(JSON)  # names `{{name}}` in the text
    created_at: Mapped[int] = mapped_column(BigInteger)


class RetentionRow(Base):
    """How long a project's stored content lives; no row: kept until deleted."""

    __tablename__ = "retention"

    project_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    days: Mapped[int] = mapped_column(Integer)  # 0: content is never stored
    updated_at: Mapped[int] = mapped_column(BigInteger)


class ConversationRow(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(40), index=True)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSON)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger, index=True)  # last item added


class ConversationItemRow(Base):
    """One item of a conversation; `seq` orders them and is the listing cursor's key."""

    __tablename__ = "conversation_items"
    __table_args__ = (Index("ix_conversation_items_conversation_seq", "conversation_id", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(32))
    content: Mapped[str] = mapped_column(Text)  # the item's JSON, sealed
    created_at: Mapped[int] = mapped_column(BigInteger, index=True)


class ResponseRow(Base):
    """A stored response: its wire object (sealed) and what chaining needs."""

    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(40), index=True)
    previous_response_id: Mapped[str | None] = mapped_column(String(64))
    conversation_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)  # the Response object's JSON, sealed
    created_at: Mapped[int] = mapped_column(BigInteger, index=True)


class ResponseItemRow(Base):
    """A response's input items (what `input_items` lists) and output items, in order."""

    __tablename__ = "response_items"
    __table_args__ = (Index("ix_response_items_response_seq", "response_id", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64))
    response_id: Mapped[str] = mapped_column(ForeignKey("responses.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(8))  # input | output
    content: Mapped[str] = mapped_column(Text)  # the item's JSON, sealed


class AuditEvent(Base):
    """One admin action, append-only: a trigger refuses UPDATE and DELETE (migration 0009),
    and `storage/audit.py` strips secrets and key hashes before a row is written."""

    __tablename__ = "audit_events"

    # An integer sequence: a stable order and a cursor for paging.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(200), index=True)  # adm_... | cli:<user> | system
    action: Mapped[str] = mapped_column(String(64), index=True)  # e.g. key.create
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(200), index=True)
    before: Mapped[dict[str, object] | None] = mapped_column(JSON)
    after: Mapped[dict[str, object] | None] = mapped_column(JSON)
    source_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    request_id: Mapped[str | None] = mapped_column(String(128))


class ReviewItem(Base):
    """A flagged-but-not-blocked request or response waiting for (or given) a human verdict.
    `content` is sealed with the content cipher when an encryption key is configured."""

    __tablename__ = "review_items"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    request_id: Mapped[str] = mapped_column(String(128))
    org_id: Mapped[str] = mapped_column(String(40))
    project_id: Mapped[str] = mapped_column(String(40), index=True)
    api_key_id: Mapped[str | None] = mapped_column(String(40))
    model: Mapped[str | None] = mapped_column(String(200))
    stage: Mapped[str] = mapped_column(String(16))  # input | output
    categories: Mapped[list[str]] = mapped_column(JSON)
    scores: Mapped[dict[str, float]] = mapped_column(JSON)
    content: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | approved | rejected
    reviewer: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)


class KeySuspension(Base):
    """A key refused until `until` (abuse signals or an operator), unless lifted sooner.
    Read with the key on the authentication path, so every replica refuses it."""

    __tablename__ = "key_suspensions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    api_key_id: Mapped[str] = mapped_column(String(40), index=True)
    reason: Mapped[str] = mapped_column(String(32))  # token_spike | block_rate | manual
    detail: Mapped[dict[str, object]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))
    lifted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lifted_by: Mapped[str | None] = mapped_column(String(200))


class SafetyPolicyRow(Base):
    """A project's moderation policy (`safety/policy.py`); no row: the default policy."""

    __tablename__ = "safety_policies"

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    # {category: {"input": off|flag|block, "output": ..., "threshold": float | null}}
    categories: Mapped[dict[str, dict[str, object]]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PrivacyPolicyRow(Base):
    """A project's privacy policy (`safety/policy` reads it); no row: the settings' defaults."""

    __tablename__ = "privacy_policies"

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    pii_mode: Mapped[str] = mapped_column(String(8))  # log | store | mask
    # PII kinds detected (`safety/pii.py`); NULL: every kind.
    pii_kinds: Mapped[list[str] | None] = mapped_column(JSON)
    injection_threshold: Mapped[float] = mapped_column(Float)
    injection_action: Mapped[str] = mapped_column(String(8))  # flag | block
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FileRow(Base):
    """An uploaded (or batch-written) file; its bytes live on disk under the files dir."""

    __tablename__ = "files"
    __table_args__ = (Index("ix_files_project_created", "project_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(40))
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(BigInteger)
    sealed: Mapped[bool] = mapped_column(Boolean)  # the bytes on disk are sealed chunks
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int | None] = mapped_column(BigInteger)


class BatchRow(Base):
    """A batch job: its lifecycle timestamps, request counts and token totals."""

    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_project_created", "project_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(40))
    org_id: Mapped[str] = mapped_column(String(40))
    api_key_id: Mapped[str] = mapped_column(String(40))  # its lines run as this key
    endpoint: Mapped[str] = mapped_column(String(64))
    input_file_id: Mapped[str] = mapped_column(String(64))
    completion_window: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), index=True)
    metadata_: Mapped[dict[str, str] | None] = mapped_column("metadata", JSON)
    errors: Mapped[list[dict[str, object]] | None] = mapped_column(JSON)
    model: Mapped[str | None] = mapped_column(String(200))
    output_file_id: Mapped[str | None] = mapped_column(String(64))
    error_file_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    # `output_expires_after.seconds`: the output and error files expire this long after
    # they are written (None: kept until deleted).
    output_expires_after_s: Mapped[int | None] = mapped_column(Integer)
    in_progress_at: Mapped[int | None] = mapped_column(BigInteger)
    finalizing_at: Mapped[int | None] = mapped_column(BigInteger)
    completed_at: Mapped[int | None] = mapped_column(BigInteger)
    failed_at: Mapped[int | None] = mapped_column(BigInteger)
    expired_at: Mapped[int | None] = mapped_column(BigInteger)
    cancelling_at: Mapped[int | None] = mapped_column(BigInteger)
    cancelled_at: Mapped[int | None] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(Integer)
    completed: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    cached_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)


class BatchLineRow(Base):
    """One input line of a batch: its request, its claim and, once run, its result line.
    The result is written in the same transaction that marks the line done, so a line
    counts once whatever crashes around it."""

    __tablename__ = "batch_lines"
    __table_args__ = (Index("ix_batch_lines_status_lease", "status", "lease_until_ms"),)

    batch_id: Mapped[str] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    line: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0-based
    custom_id: Mapped[str] = mapped_column(String(512))
    body: Mapped[str] = mapped_column(Text)  # the request body's JSON, sealed
    # pending | running | ok | failed | skipped (cancelled before it ran)
    status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    lease_until_ms: Mapped[int | None] = mapped_column(BigInteger)
    result: Mapped[str | None] = mapped_column(Text)  # the output or error line, sealed


class RolloutRow(Base):
    """A model's rollout: traffic split between the versions of its deployments; no row:
    every deployment serves (`routing/policy.py`, `choose_version`)."""

    __tablename__ = "rollouts"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)  # the public name
    weights: Mapped[dict[str, float]] = mapped_column(JSON)  # {version: weight >= 0}
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
