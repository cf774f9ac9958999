"""Rate limits shared by every replica: the token buckets and seat leases in Redis.

One Lua script per admission checks and takes every bucket and seat of every scope
atomically, so N replicas enforce one limit exactly. The script transcribes `bucket.py`
(same sums, same order), and the tests check that both stores give the same answers.

- A bucket is a hash `{l: level, t: updated}` that expires once it would be full again.
- Concurrency is a sorted set of leases scored by their expiry: a replica that dies
  holding seats cannot leak them; they lapse after `lease_ttl_s`.
- Time comes from the caller (`now`), like everywhere else in the limiter, so tests drive
  it; replicas' clocks need to agree to well under a second (NTP does that).

When Redis is unreachable, `failure="open"` (the default) admits through an in-process
fallback, so each replica still enforces the limits on its own traffic; `"closed"`
refuses with 503. Either way Redis is not asked again for `retry_s`, so an outage does not
add a connect timeout to every request.
"""

from __future__ import annotations

import math
import time
from typing import Literal

from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis

from headrace.admission.limits import Decision, Plan, Reading, refunds
from headrace.admission.memory import MemoryBuckets
from headrace.errors import ServiceUnavailableError
from headrace.observability.logging import get_logger

KEY_PREFIX = "headrace:limits:"
_POOL_WAIT_FACTOR = 20
_POOL_WAIT_MIN_S = 5.0
log = get_logger("headrace.limits")

# KEYS: the plan's bucket keys, then its seat keys.
# ARGV: now, lease id, lease expiry, number of buckets, then (capacity, per_s, cost) per
# bucket, then the limit per seat. Returns {admitted, retry, refused kind, refused index,
# then (level, until full) per bucket}; numbers as full-precision strings (Redis would
# truncate a Lua number to an integer; `tostring` keeps only 14 digits).
_ACQUIRE = """
local function num(x) return string.format('%.17g', x) end
local now = tonumber(ARGV[1])
local lease, expiry, nb = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local cap, rate, cost, level, updated = {}, {}, {}, {}, {}
local retry, kind, index = 0, '', 0
for i = 1, nb do
  local a = 4 + (i - 1) * 3
  cap[i], rate[i], cost[i] = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local st = redis.call('HMGET', KEYS[i], 'l', 't')
  if st[1] then
    level[i], updated[i] = tonumber(st[1]), tonumber(st[2])
  else
    level[i], updated[i] = cap[i], now
  end
  level[i] = math.min(cap[i], level[i] + math.max(0, now - updated[i]) * rate[i])
  local w = 0
  if cost[i] > cap[i] then
    w = math.huge
  elseif cost[i] > level[i] then
    w = (cost[i] - level[i]) / rate[i]
  end
  if w > 0 and w >= retry then
    retry, kind, index = w, 'c', i - 1
  end
end
if kind == '' then
  for j = nb + 1, #KEYS do
    redis.call('ZREMRANGEBYSCORE', KEYS[j], '-inf', now)
    if redis.call('ZCARD', KEYS[j]) >= tonumber(ARGV[4 + nb * 3 + j - nb]) then
      retry, kind, index = 1, 's', j - nb - 1
      break
    end
  end
end
local admitted = 0
if kind == '' then
  admitted = 1
  for i = 1, nb do
    level[i] = level[i] - cost[i]
    local t = math.max(now, updated[i])
    redis.call('HSET', KEYS[i], 'l', num(level[i]), 't', num(t))
    redis.call('PEXPIRE', KEYS[i], math.ceil((cap[i] - level[i]) / rate[i] * 1000) + 1000)
  end
  for j = nb + 1, #KEYS do
    redis.call('ZADD', KEYS[j], expiry, lease)
    redis.call('PEXPIRE', KEYS[j], math.ceil((expiry - now) * 1000) + 1000)
  end
end
local out = {admitted, num(retry), kind, index}
for i = 1, nb do
  local missing = cap[i] - level[i]
  local reset = 0
  if missing > 0 then reset = missing / rate[i] end
  out[#out + 1] = num(level[i])
  out[#out + 1] = num(reset)
end
return out
"""

# KEYS: buckets to refund, then seat keys. ARGV: now, lease id, number of buckets, then
# (capacity, per_s, amount) per bucket.
_RELEASE = """
local function num(x) return string.format('%.17g', x) end
local now, lease, nb = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
for i = 1, nb do
  local a = 3 + (i - 1) * 3
  local cap, rate, amount = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local st = redis.call('HMGET', KEYS[i], 'l', 't')
  if st[1] then
    local level = tonumber(st[1]) + math.max(0, now - tonumber(st[2])) * rate
    level = math.min(cap, math.min(cap, level) + amount)
    redis.call('HSET', KEYS[i], 'l', num(level), 't', num(math.max(now, tonumber(st[2]))))
    redis.call('PEXPIRE', KEYS[i], math.ceil((cap - level) / rate * 1000) + 1000)
  end
end
for j = nb + 1, #KEYS do
  redis.call('ZREM', KEYS[j], lease)
end
return 1
"""

_UNREACHABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)


class RedisBackend:
    def __init__(
        self,
        client: Redis,
        *,
        lease_ttl_s: float = 900.0,
        failure: Literal["open", "closed"] = "open",
        retry_s: float = 1.0,
    ) -> None:
        self._redis = client
        self._lease_ttl = lease_ttl_s
        self._failure = failure
        self._retry_s = retry_s
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self.fallback = MemoryBuckets(lease_ttl_s)
        self._local: set[str] = set()  # leases admitted by the fallback, released there
        self._down_until = 0.0

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        timeout_s: float = 0.5,
        lease_ttl_s: float = 900.0,
        failure: Literal["open", "closed"] = "open",
        max_connections: int = 64,
    ) -> RedisBackend:
        # A blocking pool: a burst waits for one of `max_connections` instead of failing
        # over to the fallback the moment the pool is busy. Waiting for a free connection
        # means this gateway is busy, not that Redis is down, so it gets a longer budget
        # than a command: a saturated CPU must not turn a shared limit into per-replica
        # ones (seen in CI: 72 of 200 admitted on a 60 RPM key). No retries inside
        # redis-py: an outage is handled here, once, by the policy.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=max(timeout_s * _POOL_WAIT_FACTOR, _POOL_WAIT_MIN_S),
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=None,
        )
        return cls(Redis(connection_pool=pool), lease_ttl_s=lease_ttl_s, failure=failure)

    @property
    def degraded(self) -> bool:
        """True while Redis is considered unreachable and the policy is in force."""
        return self._down_until > 0

    async def acquire(self, p: Plan, now: float) -> Decision:
        if time.monotonic() >= self._down_until:
            try:
                return await self._acquire_shared(p, now)
            except _UNREACHABLE as exc:
                self._went_down(exc)
        if self._failure == "closed":
            raise ServiceUnavailableError(
                "Rate limits cannot be checked right now; please retry shortly.",
                headers={"retry-after": str(math.ceil(self._retry_s))},
            )
        decision = self.fallback.acquire(p, now)
        if decision.admitted:
            self._local.add(p.lease_id)
        return decision

    async def release(self, p: Plan, used_tokens: int, now: float) -> None:
        if p.lease_id in self._local:
            self._local.discard(p.lease_id)
            self.fallback.release(p, used_tokens, now)
            return
        back = refunds(p, used_tokens)
        keys = [KEY_PREFIX + c.key for c, _ in back] + [KEY_PREFIX + s.key for s in p.seats]
        if not keys:
            return
        args: list[str | float] = [now, p.lease_id, len(back)]
        for c, amount in back:
            args += [c.rate.capacity, c.rate.per_s, amount]
        try:
            await self._release(keys=keys, args=args)
        except _UNREACHABLE as exc:  # the seat's lease lapses on its own; the refund is lost
            self._went_down(exc)

    async def close(self) -> None:
        await self._redis.aclose(close_connection_pool=True)

    async def _acquire_shared(self, p: Plan, now: float) -> Decision:
        keys = [KEY_PREFIX + c.key for c in p.charges] + [KEY_PREFIX + s.key for s in p.seats]
        args: list[str | float] = [now, p.lease_id, now + self._lease_ttl, len(p.charges)]
        for c in p.charges:
            args += [c.rate.capacity, c.rate.per_s, c.cost]
        args += [s.limit for s in p.seats]
        raw = await self._acquire(keys=keys, args=args)
        if self._down_until:
            log.warning("limits_redis_recovered")
            self._down_until = 0.0
        admitted, retry, kind, index = int(raw[0]), float(raw[1]), _text(raw[2]), int(raw[3])
        readings = tuple(
            Reading(c, float(raw[4 + 2 * i]), float(raw[5 + 2 * i]))
            for i, c in enumerate(p.charges)
        )
        return Decision(
            bool(admitted),
            readings,
            retry,
            refused_charge=index if kind == "c" else None,
            refused_seat=index if kind == "s" else None,
        )

    def _went_down(self, exc: Exception) -> None:
        if not self._down_until:
            log.warning("limits_redis_unreachable", error=str(exc), policy=self._failure)
        self._down_until = time.monotonic() + self._retry_s


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
