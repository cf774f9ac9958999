"""Database tables. Changes here need an Alembic migration in `migrations/versions/`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
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
