"""Idempotency keys shared by every replica: one Redis string per key.

The value is the `Entry` as JSON. Claiming is `SET NX` with the lock's expiry, in one
script with the read, so two replicas never both run one key; completing and releasing
check the owner first, so a request whose lock lapsed cannot overwrite its successor.
Waiting duplicates poll: a key changes at most twice, and polls are one GET each.

When Redis is unreachable the request runs without the guarantee (logged), as limits do
with `redis_failure: open`: losing idempotency for a while beats refusing all traffic.
"""

from __future__ import annotations

import asyncio

import orjson
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from headrace.admission.idempotency import Claimed, Entry, Outcome, StoredResponse, decide
from headrace.observability.logging import get_logger

KEY_PREFIX = "headrace:idem:"
POLL_S = 0.05
log = get_logger("headrace.idempotency")

# KEYS[1]: the key. ARGV: the claim's JSON, lock expiry in ms. Returns the value found, or
# nothing when the claim was taken.
_CLAIM = """
local found = redis.call('GET', KEYS[1])
if found then return found end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
# ARGV: owner, new value ('' to delete, only while no response is stored), expiry in ms.
_SETTLE = """
local found = redis.call('GET', KEYS[1])
if not found then return 0 end
local entry = cjson.decode(found)
if entry['o'] ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  if entry['r'] ~= cjson.null then return 0 end
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
"""
_ERRORS = (redis_errors.ConnectionError, redis_errors.TimeoutError)


def _dump(entry: Entry) -> bytes:
    response = entry.response.dumps().decode() if entry.response is not None else None
    return orjson.dumps({"f": entry.fingerprint, "o": entry.owner, "r": response})


def _load(raw: bytes | str) -> Entry:
    data = orjson.loads(raw)
    response = StoredResponse.loads(data["r"].encode()) if data["r"] is not None else None
    return Entry(str(data["f"]), str(data["o"]), response)


class RedisStore:
    settles_in_place = False  # every settle is a round trip

    def __init__(self, redis: Redis, *, ttl_s: float, lock_ttl_s: float) -> None:
        self._redis = redis
        self._ttl_ms = int(ttl_s * 1000)
        self._lock_ms = int(lock_ttl_s * 1000)
        self._claim = redis.register_script(_CLAIM)
        self._settle = redis.register_script(_SETTLE)

    @classmethod
    def from_url(cls, url: str, *, ttl_s: float, lock_ttl_s: float, timeout_s: float) -> RedisStore:
        redis = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        return cls(redis, ttl_s=ttl_s, lock_ttl_s=lock_ttl_s)

    async def claim(self, key: str, fingerprint: str, owner: str, now: float) -> Outcome:
        try:
            found = await self._claim(
                keys=[KEY_PREFIX + key], args=[_dump(Entry(fingerprint, owner)), self._lock_ms]
            )
        except _ERRORS:
            log.warning("idempotency_unavailable")
            return Claimed(key, owner)
        return decide(_load(found) if found else None, key, fingerprint, owner)

    async def complete(self, key: str, owner: str, response: StoredResponse, now: float) -> None:
        entry = await self._entry(key)
        if entry is None:
            return
        value = _dump(Entry(entry.fingerprint, owner, response))
        await self._run_settle(key, owner, value, self._ttl_ms)

    async def release(self, key: str, owner: str) -> None:
        await self._run_settle(key, owner, b"", 0)

    async def wait(self, key: str, timeout_s: float) -> None:
        await asyncio.sleep(min(timeout_s, POLL_S))

    async def close(self) -> None:
        await self._redis.aclose()

    async def _entry(self, key: str) -> Entry | None:
        try:
            raw = await self._redis.get(KEY_PREFIX + key)
        except _ERRORS:
            return None
        return _load(raw) if raw else None

    async def _run_settle(self, key: str, owner: str, value: bytes, expiry_ms: int) -> None:
        try:
            await self._settle(keys=[KEY_PREFIX + key], args=[owner, value, expiry_ms])
        except _ERRORS:  # the lock lapses on its own; the retry then runs again
            log.warning("idempotency_settle_failed")
