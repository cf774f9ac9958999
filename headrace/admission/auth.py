"""Bearer API key to principal, through a short-lived cache.

The data plane never reads the database per request: a key's row (and whether it is
suspended) is cached for `key_cache_ttl_s` (default 1 s), which bounds how late a
revocation or a suspension takes effect on other replicas.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from headrace.admission.secrets import API_KEY_PREFIX, lookup_prefix, verify_key
from headrace.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from headrace.storage import suspensions, tenancy
from headrace.storage.database import Database
from headrace.ttl_cache import TtlCache


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    project_id: str
    org_id: str
    scopes: tuple[str, ...]
    allowed_models: tuple[str, ...] | None = None  # None: every model
    tier: str = "standard"  # the project's service tier

    def check_model(self, model: str) -> None:
        """404 for a model this key may not use, worded as for a model that does not
        exist, as OpenAI does: a key does not learn which models others can use."""
        if self.allowed_models is not None and model not in self.allowed_models:
            raise NotFoundError(
                f"The model `{model}` does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )


@dataclass(frozen=True, slots=True)
class _KeyRecord:
    principal: Principal
    key_hash: str
    expires_at: datetime | None
    revoked: bool
    suspended_until: datetime | None = None


class Authenticator:
    def __init__(
        self,
        db: Database,
        pepper: str,
        ttl_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._pepper = pepper
        # prefix -> the key's record, or None for "no such key"; `clock` (tests drive it)
        # times the entries' age only.
        self._cache: TtlCache[_KeyRecord | None] = TtlCache(ttl_s, clock)
        # key id -> until: suspensions decided here and not yet read back from the database.
        self._held: dict[str, datetime] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        key = bearer_key(authorization)
        prefix = lookup_prefix(key, API_KEY_PREFIX)
        record = await self._record(prefix) if prefix is not None else None
        if record is None or not verify_key(key, record.key_hash, self._pepper):
            raise AuthenticationError(f"Incorrect API key provided: {redact(key)}.")
        if record.revoked:
            raise AuthenticationError("This API key has been revoked.")
        now = datetime.now(UTC)
        if record.expires_at is not None and record.expires_at <= now:
            raise AuthenticationError("This API key has expired.")
        suspended = max(
            (t for t in (record.suspended_until, self._held.get(record.principal.key_id)) if t),
            default=None,
        )
        if suspended is not None and suspended > now:
            raise PermissionDeniedError(
                f"This API key is suspended until {suspended:%Y-%m-%dT%H:%M:%SZ} after unusual "
                "activity. Contact your administrator to lift it.",
                code="key_suspended",
            )
        return record.principal

    def hold(self, key_id: str, until: datetime) -> None:
        """Refuse `key_id` here until `until`, before the suspension is read back."""
        self._held[key_id] = until

    def release(self, key_id: str) -> None:
        """Drop the local hold and the cached row of `key_id`: the next request reads the
        database (a suspension written or lifted is seen at once on this replica)."""
        self._held.pop(key_id, None)
        self._cache.drop_where(lambda r: r is not None and r.principal.key_id == key_id)

    async def _record(self, prefix: str) -> _KeyRecord | None:
        return await self._cache.get(prefix, lambda: self._load(prefix))

    async def _load(self, prefix: str) -> _KeyRecord | None:
        async with self._db.session() as session:
            row = await tenancy.find_api_key(session, prefix)
            suspended = (
                await suspensions.suspended_until(session, row[0].id) if row is not None else None
            )
        record = None
        if row is not None:
            key, project = row
            record = _KeyRecord(
                Principal(
                    key.id,
                    project.id,
                    project.org_id,
                    tuple(key.scopes),
                    None if key.allowed_models is None else tuple(key.allowed_models),
                    project.tier,
                ),
                key.key_hash,
                _aware(key.expires_at),
                key.revoked_at is not None,
                _aware(suspended),
            )
        return record


def bearer_key(authorization: str | None) -> str:
    """The key of an `Authorization: Bearer <key>` header, or a 401."""
    if not authorization:
        raise AuthenticationError(
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            code=None,
        )
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthenticationError("The Authorization header must be 'Bearer <API key>'.")
    return key.strip()


def redact(key: str) -> str:
    return f"{key[:6]}***{key[-4:]}" if len(key) > 12 else "***"


def _aware(value: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes even for timezone-aware columns; they are stored as UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
