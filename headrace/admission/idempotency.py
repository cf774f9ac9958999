"""The admit stage's idempotency keys: a retried POST replays the first one's response.

    outcome = await keys.begin(scope, key, fingerprint)    # waits while a twin runs; 409s
    if isinstance(outcome, Replay): send outcome.response  # no work, no usage, no limits
    ...                                                    # run the request, record it
    await keys.finish(outcome, recorder.stored())          # store it, or free the key

The decision (`decide`) and the recording (`Recorder`) are pure; where the entries live is
an `IdempotencyStore`: in process (`MemoryStore`) or in Redis, shared by every replica
(`idempotency_redis.RedisStore`). A claim is a lock with an expiry, so a replica that dies
mid-request frees its key after `lock_ttl_s`. Only a response that completed with a 2xx
status (a stream: one that reached `data: [DONE]`) is stored: a failure, a refusal or a
dropped client frees the key, and the retry runs again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from headrace.config import Settings
from headrace.errors import ConflictError
from headrace.ids import random_hex

Clock = Callable[[], float]
# What a replay carries over from the first response; the request id and timing headers
# are the replay's own, and rate-limit readings would be stale.
REPLAYED_HEADERS = frozenset({"content-type", "openai-model", "cache-control", "x-accel-buffering"})
STREAM_END = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def dumps(self) -> bytes:
        return orjson.dumps(
            {"s": self.status, "h": self.headers, "b": base64.b64encode(self.body).decode()}
        )

    @classmethod
    def loads(cls, raw: bytes) -> StoredResponse:
        data = orjson.loads(raw)
        return cls(
            int(data["s"]),
            tuple((str(k), str(v)) for k, v in data["h"]),
            base64.b64decode(data["b"]),
        )


@dataclass(frozen=True, slots=True)
class Entry:
    """A key's state: claimed by `owner` while its request runs, then its response."""

    fingerprint: str
    owner: str
    response: StoredResponse | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """This request holds the key: run it, then `finish`."""

    key: str
    owner: str


@dataclass(frozen=True, slots=True)
class Replay:
    response: StoredResponse


@dataclass(frozen=True, slots=True)
class InProgress:
    """A twin with the same body holds the key: wait for it."""


@dataclass(frozen=True, slots=True)
class Mismatch:
    """The key was used with another body."""


Outcome = Claimed | Replay | InProgress | Mismatch


def decide(entry: Entry | None, key: str, fingerprint: str, owner: str) -> Outcome:
    """What a request with `fingerprint` does given the key's current `entry`."""
    if entry is None:
        return Claimed(key, owner)
    if entry.fingerprint != fingerprint:
        return Mismatch()
    if entry.response is not None:
        return Replay(entry.response)
    return InProgress()


def fingerprint(method: str, path: str, body: bytes, parsed: Any = None) -> str:
    """The request's identity: the same JSON with keys in another order is the same body.
    `parsed` is `body` already parsed (a value that is not JSON: it is not)."""
    if parsed is None:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = body
    try:
        canonical = orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # not JSON
        canonical = body
    digest = hashlib.sha256(f"{method} {path}\n".encode() + canonical)
    return digest.hexdigest()


def scoped_key(project_id: str, key: str) -> str:
    """Keys are the caller's project's own: two projects may use the same key."""
    return hashlib.sha256(f"{project_id}\0{key}".encode()).hexdigest()


@dataclass(slots=True)
class Recorder:
    """Collects a response as it is sent; `stored()` is it, when it is worth replaying."""

    max_bytes: int
    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    complete: bool = False
    overflow: bool = False

    def start(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """The response's status and raw headers, as the ASGI start message has them."""
        self.status = status
        self.headers = [
            (name, v.decode("latin-1"))
            for k, v in headers
            if (name := k.decode("latin-1").lower()) in REPLAYED_HEADERS
        ]

    def body(self, chunk: bytes, *, more: bool) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            self.overflow = True
            self.chunks.clear()
        elif not self.overflow:
            self.chunks.append(chunk)
        self.complete = not more

    def stored(self) -> StoredResponse | None:
        if not self.complete or self.overflow or not 200 <= self.status < 300:
            return None
        body = b"".join(self.chunks)
        streamed = any(k == "content-type" and "event-stream" in v for k, v in self.headers)
        if streamed and not body.endswith(STREAM_END):
            return None  # ended by an error event: the retry should run again
        return StoredResponse(self.status, tuple(self.headers), body)


class IdempotencyStore(Protocol):
    #: True when `complete` and `release` never suspend (the store is in this process):
    #: `IdempotencyKeys.finish` then settles a cancelled request's key without a task.
    settles_in_place: bool

    async def claim(self, key: str, fingerprint: str, owner: str, now: float) -> Outcome:
        """Atomically: claim the key for `owner` (lock until `now + lock_ttl_s`) when it
        is free, else say what holds it."""
        ...

    async def complete(self, key: str, owner: str, response: StoredResponse, now: float) -> None:
        """Store `owner`'s response until `now + ttl_s` (nothing if it no longer owns it)."""
        ...

    async def release(self, key: str, owner: str) -> None:
        """Free the key `owner` holds, so a retry runs again."""
        ...

    async def wait(self, key: str, timeout_s: float) -> None:
        """Return when the key may have changed, or after `timeout_s`."""
        ...

    async def close(self) -> None: ...


class IdempotencyKeys:
    """The store, and the waiting: a duplicate waits for its twin, then replays it."""

    def __init__(self, store: IdempotencyStore, *, wait_s: float, clock: Clock = time.time) -> None:
        self.store = store
        self._wait_s = wait_s
        self._clock = clock

    async def begin(self, key: str, fingerprint: str) -> Claimed | Replay:
        owner = random_hex(8)
        deadline = time.monotonic() + self._wait_s
        while True:
            outcome = await self.store.claim(key, fingerprint, owner, self._clock())
            if isinstance(outcome, Mismatch):
                raise ConflictError(
                    "This Idempotency-Key was already used with a different request body.",
                    code="idempotency_key_reused",
                )
            if not isinstance(outcome, InProgress):
                return outcome
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConflictError(
                    "A request with this Idempotency-Key is still in progress; retry later.",
                    code="idempotency_key_in_use",
                )
            await self.store.wait(key, min(left, 1.0))

    async def finish(self, claim: Claimed, response: StoredResponse | None) -> None:
        """Store `response` (None: free the key), even for a request being cancelled: in
        place where the store never suspends (nothing can cut it short), else shielded."""
        settle = (
            self.store.release(claim.key, claim.owner)
            if response is None
            else self.store.complete(claim.key, claim.owner, response, self._clock())
        )
        if self.store.settles_in_place:
            await settle
        else:
            await asyncio.shield(settle)

    async def close(self) -> None:
        await self.store.close()


# A MemoryStore entry: (expiry, fingerprint, owner, response as (status, headers, body) or
# None). Plain tuples of strings, numbers and bytes, which the garbage collector stops
# tracking once it has seen them: ten thousand stored responses as objects were walked by
# every full collection, a quarter of a proxied request's CPU (docs/benchmarks.md).
_Flat = tuple[float, str, str, tuple[int, tuple[tuple[str, str], ...], bytes] | None]


def _entry(flat: _Flat) -> Entry:
    _, fingerprint, owner, response = flat
    return Entry(fingerprint, owner, StoredResponse(*response) if response else None)


class MemoryStore:
    """Entries in this process: one replica, or tests. Bounded: the oldest go first."""

    settles_in_place = True

    def __init__(self, *, ttl_s: float, lock_ttl_s: float, max_entries: int = 10_000) -> None:
        self._ttl = ttl_s
        self._lock_ttl = lock_ttl_s
        self._max = max_entries
        self._entries: OrderedDict[str, _Flat] = OrderedDict()
        self._changed: dict[str, asyncio.Event] = {}

    async def claim(self, key: str, fingerprint: str, owner: str, now: float) -> Outcome:
        held = self._entries.get(key)
        if held is not None and held[0] <= now:
            del self._entries[key]
            held = None
        outcome = decide(_entry(held) if held else None, key, fingerprint, owner)
        if isinstance(outcome, Claimed):
            self._put(key, (now + self._lock_ttl, fingerprint, owner, None))
        return outcome

    async def complete(self, key: str, owner: str, response: StoredResponse, now: float) -> None:
        held = self._entries.get(key)
        if held is not None and held[2] == owner:
            stored = (response.status, response.headers, response.body)
            self._put(key, (now + self._ttl, held[1], owner, stored))
        self._notify(key)

    async def release(self, key: str, owner: str) -> None:
        held = self._entries.get(key)
        if held is not None and held[2] == owner and held[3] is None:
            del self._entries[key]
        self._notify(key)

    async def wait(self, key: str, timeout_s: float) -> None:
        event = self._changed.setdefault(key, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)

    async def close(self) -> None:
        return None

    def _put(self, key: str, entry: _Flat) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def _notify(self, key: str) -> None:
        event = self._changed.pop(key, None)
        if event is not None:
            event.set()


def build_idempotency(settings: Settings) -> IdempotencyKeys:
    """Redis when `redis_url` is set (every replica sees every key), else in process."""
    idem = settings.idempotency
    store: IdempotencyStore = MemoryStore(
        ttl_s=idem.ttl_s, lock_ttl_s=idem.lock_ttl_s, max_entries=idem.max_entries
    )
    if settings.redis_url:
        from headrace.admission.idempotency_redis import RedisStore

        store = RedisStore.from_url(
            settings.redis_url,
            ttl_s=idem.ttl_s,
            lock_ttl_s=idem.lock_ttl_s,
            timeout_s=settings.limits.redis_timeout_s,
        )
    return IdempotencyKeys(store, wait_s=idem.wait_s)
