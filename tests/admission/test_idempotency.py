"""Idempotency keys: the pure decision and recording, and both stores giving the same answers
(Redis skipped when it is not on 127.0.0.1:6379)."""

from __future__ import annotations

import asyncio
import gc
import secrets
from collections.abc import AsyncIterator

import pytest

from headrace.admission.idempotency import (
    Claimed,
    Entry,
    IdempotencyKeys,
    IdempotencyStore,
    InProgress,
    MemoryStore,
    Mismatch,
    Recorder,
    Replay,
    StoredResponse,
    decide,
    fingerprint,
    scoped_key,
)
from headrace.admission.idempotency_redis import RedisStore
from headrace.errors import ConflictError
from tests.conftest import _reachable

REDIS_URL = "redis://127.0.0.1:6379/15"
REDIS_UP = _reachable("127.0.0.1", 6379)
OK = StoredResponse(200, (("content-type", "application/json"),), b'{"id":"x"}')


def test_decide() -> None:
    assert decide(None, "k", "f", "me") == Claimed("k", "me")
    assert decide(Entry("f", "other"), "k", "f", "me") == InProgress()
    assert decide(Entry("f", "other", OK), "k", "f", "me") == Replay(OK)
    assert decide(Entry("g", "other", OK), "k", "f", "me") == Mismatch()
    assert decide(Entry("g", "other"), "k", "f", "me") == Mismatch()


def test_fingerprint_ignores_key_order_not_values_or_route() -> None:
    a = fingerprint("POST", "/v1/completions", b'{"a": 1, "b": [1, 2]}')
    assert a == fingerprint("POST", "/v1/completions", b'{"b":[1,2],"a":1}')
    assert a != fingerprint("POST", "/v1/completions", b'{"a": 2, "b": [1, 2]}')
    assert a != fingerprint("POST", "/v1/embeddings", b'{"a": 1, "b": [1, 2]}')
    assert fingerprint("POST", "/x", b"not json") != fingerprint("POST", "/x", b"not json!")


def test_keys_belong_to_a_project() -> None:
    assert scoped_key("p1", "k") != scoped_key("p2", "k")
    assert scoped_key("p1", "k") == scoped_key("p1", "k")


def test_stored_response_round_trips() -> None:
    raw = StoredResponse(200, (("a", "b"),), bytes(range(256)))
    assert StoredResponse.loads(raw.dumps()) == raw


def _recorded(status: int, content_type: str, *chunks: bytes, done: bool = True) -> Recorder:
    recorder = Recorder(max_bytes=100)
    recorder.start(
        status, [(b"Content-Type", content_type.encode()), (b"x-ratelimit-remaining", b"1")]
    )
    for i, chunk in enumerate(chunks):
        recorder.body(chunk, more=not done or i < len(chunks) - 1)
    return recorder


def test_recorder_keeps_completed_successes_only() -> None:
    stored = _recorded(200, "application/json", b'{"a":', b"1}").stored()
    assert stored == StoredResponse(200, (("content-type", "application/json"),), b'{"a":1}')
    assert _recorded(400, "application/json", b"{}").stored() is None
    assert _recorded(200, "application/json", b"{}", done=False).stored() is None
    assert _recorded(200, "application/json", b"x" * 60, b"x" * 60).stored() is None


def test_recorder_keeps_streams_that_reached_done() -> None:
    sse = "text/event-stream; charset=utf-8"
    assert _recorded(200, sse, b"data: {}\n\n", b"data: [DONE]\n\n").stored() is not None
    assert _recorded(200, sse, b"data: {}\n\n", b'data: {"error":{}}\n\n').stored() is None


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[IdempotencyStore]:
    if request.param == "memory":
        yield MemoryStore(ttl_s=100, lock_ttl_s=10, max_entries=3)
        return
    if not REDIS_UP:
        pytest.skip("Redis is not reachable on 6379")
    redis_store = RedisStore.from_url(REDIS_URL, ttl_s=100, lock_ttl_s=10, timeout_s=1)
    yield redis_store
    await redis_store.close()


def _key() -> str:
    return secrets.token_hex(8)


async def test_claim_then_twin_waits_then_replays(store: IdempotencyStore) -> None:
    key = _key()
    assert await store.claim(key, "f", "a", 0) == Claimed(key, "a")
    assert await store.claim(key, "f", "b", 0) == InProgress()
    assert await store.claim(key, "g", "b", 0) == Mismatch()
    await store.complete(key, "a", OK, 0)
    assert await store.claim(key, "f", "b", 1) == Replay(OK)
    assert await store.claim(key, "g", "b", 1) == Mismatch()


async def test_release_frees_the_key_for_a_retry(store: IdempotencyStore) -> None:
    key = _key()
    await store.claim(key, "f", "a", 0)
    await store.release(key, "b")  # not the owner: nothing happens
    assert await store.claim(key, "f", "b", 0) == InProgress()
    await store.release(key, "a")
    assert await store.claim(key, "f", "b", 0) == Claimed(key, "b")


async def test_only_the_owner_completes(store: IdempotencyStore) -> None:
    key = _key()
    await store.claim(key, "f", "a", 0)
    await store.complete(key, "b", OK, 0)
    assert await store.claim(key, "f", "c", 0) == InProgress()


async def test_memory_entries_and_locks_expire() -> None:
    store = MemoryStore(ttl_s=100, lock_ttl_s=10, max_entries=3)
    await store.claim("lock", "f", "a", 0)
    assert await store.claim("lock", "f", "b", 9) == InProgress()
    assert await store.claim("lock", "f", "b", 10) == Claimed("lock", "b")  # a lapsed lock
    await store.claim("done", "f", "a", 0)
    await store.complete("done", "a", OK, 0)
    assert await store.claim("done", "f", "b", 99) == Replay(OK)
    assert await store.claim("done", "f", "b", 100) == Claimed("done", "b")
    for key in ("x", "y", "z"):  # bounded: the oldest entry goes
        await store.claim(key, "f", "a", 0)
    assert await store.claim("lock", "f", "c", 0) == Claimed("lock", "c")


async def test_memory_entries_leave_the_garbage_collectors_sight() -> None:
    """Thousands of stored responses stay in memory: held as objects, every full collection
    walked them (a quarter of a proxied request's CPU). Held as plain tuples, the
    collector stops tracking them once it has seen them."""
    store = MemoryStore(ttl_s=100, lock_ttl_s=10)
    recorder = Recorder(max_bytes=1000)
    recorder.start(200, [(b"content-type", b"application/json")])
    recorder.body(b'{"ok": true}', more=False)
    response = recorder.stored()
    assert response is not None
    await store.claim("k", "f", "a", 0)
    await store.complete("k", "a", response, 0)
    gc.collect()
    gc.collect()  # a tuple is let go once what it holds has been (one level a collection)
    assert not any(gc.is_tracked(entry) for entry in store._entries.values())
    assert await store.claim("k", "f", "b", 1) == Replay(response)


async def test_redis_locks_expire() -> None:
    if not REDIS_UP:
        pytest.skip("Redis is not reachable on 6379")
    store = RedisStore.from_url(REDIS_URL, ttl_s=100, lock_ttl_s=0.1, timeout_s=1)
    key = _key()
    await store.claim(key, "f", "a", 0)
    await asyncio.sleep(0.2)
    assert await store.claim(key, "f", "b", 0) == Claimed(key, "b")
    await store.close()


async def test_redis_down_runs_the_request_without_the_guarantee() -> None:
    store = RedisStore.from_url("redis://127.0.0.1:1/0", ttl_s=100, lock_ttl_s=1, timeout_s=0.2)
    assert await store.claim("k", "f", "a", 0) == Claimed("k", "a")
    await store.complete("k", "a", OK, 0)
    await store.release("k", "a")
    await store.close()


async def test_a_duplicate_waits_for_its_twin_then_replays(store: IdempotencyStore) -> None:
    keys = IdempotencyKeys(store, wait_s=5)
    key = _key()
    first = await keys.begin(key, "f")
    assert isinstance(first, Claimed)
    twin = asyncio.ensure_future(keys.begin(key, "f"))
    await asyncio.sleep(0.1)
    assert not twin.done()
    await keys.finish(first, OK)
    assert await asyncio.wait_for(twin, 2) == Replay(OK)


async def test_a_duplicate_runs_when_its_twin_failed(store: IdempotencyStore) -> None:
    keys = IdempotencyKeys(store, wait_s=5)
    key = _key()
    first = await keys.begin(key, "f")
    assert isinstance(first, Claimed)
    twin = asyncio.ensure_future(keys.begin(key, "f"))
    await asyncio.sleep(0.1)
    await keys.finish(first, None)
    assert isinstance(await asyncio.wait_for(twin, 2), Claimed)


async def test_conflicts_are_409(store: IdempotencyStore) -> None:
    keys = IdempotencyKeys(store, wait_s=0.2)
    key = _key()
    await keys.begin(key, "f")
    with pytest.raises(ConflictError) as reused:
        await keys.begin(key, "g")
    assert reused.value.code == "idempotency_key_reused"
    with pytest.raises(ConflictError) as busy:  # the twin never finishes
        await keys.begin(key, "f")
    assert busy.value.code == "idempotency_key_in_use"
    assert busy.value.status_code == 409
