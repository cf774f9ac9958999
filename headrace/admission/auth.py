"""Bearer API key to principal, through a short-lived cache.

The data plane never reads the database per request: a key's row is cached for
`key_cache_ttl_s` (default 1 s), which bounds how late a revocation takes effect.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from headrace.admission.secrets import API_KEY_PREFIX, lookup_prefix, verify_key
from headrace.errors import AuthenticationError, NotFoundError
from headrace.storage import tenancy
from headrace.storage.database import Database

_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    project_id: str
    org_id: str
    scopes: tuple[str, ...]
    allowed_models: tuple[str, ...] | None = None  # None: every model

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
        self._ttl = ttl_s
        self._clock = clock  # for the cache's age only; tests drive it
        # prefix -> (fetched at, record or None for "no such key")
        self._cache: OrderedDict[str, tuple[float, _KeyRecord | None]] = OrderedDict()

    async def authenticate(self, authorization: str | None) -> Principal:
        key = bearer_key(authorization)
        prefix = lookup_prefix(key, API_KEY_PREFIX)
        record = await self._record(prefix) if prefix is not None else None
        if record is None or not verify_key(key, record.key_hash, self._pepper):
            raise AuthenticationError(f"Incorrect API key provided: {redact(key)}.")
        if record.revoked:
            raise AuthenticationError("This API key has been revoked.")
        if record.expires_at is not None and record.expires_at <= datetime.now(UTC):
            raise AuthenticationError("This API key has expired.")
        return record.principal

    async def _record(self, prefix: str) -> _KeyRecord | None:
        hit = self._cache.get(prefix)
        now = self._clock()
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        async with self._db.session() as session:
            row = await tenancy.find_api_key(session, prefix)
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
                ),
                key.key_hash,
                _aware(key.expires_at),
                key.revoked_at is not None,
            )
        self._cache[prefix] = (now, record)
        self._cache.move_to_end(prefix)
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
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
