"""`Idempotency-Key` through the official SDK and raw HTTP: replays, 409s, streams, twins
that wait, and replays that cost neither rate-limit tokens nor usage events. Runs in
process and, when it is reachable, on Redis."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace

import httpx
import openai
import pytest
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from headrace.admission.idempotency import (
    Claimed,
    IdempotencyKeys,
    IdempotencyStore,
    MemoryStore,
    fingerprint,
    scoped_key,
)
from headrace.admission.idempotency_redis import RedisStore
from headrace.admission.limits import Limits
from headrace.admission.secrets import load_or_create_pepper
from headrace.api.app import create_app
from headrace.api.idempotency import IdempotencyMiddleware
from headrace.config import Settings
from headrace.control.keys import create_key
from headrace.control.limits import set_limits
from headrace.engine.interface import GenerationEvent, GenerationRequest
from headrace.storage.database import Database
from tests.conftest import Server, _reachable, serving
from tests.fakes import FakeEngine, fake_registry

MODEL = "headrace-tiny-chat"
ASK = [{"role": "user", "content": "What is the capital of France?"}]
REDIS_URL = "redis://127.0.0.1:6379/14"


class CountingEngine(FakeEngine):
    """Counts the generations it ran; `hold` (a thread-safe event) keeps them waiting."""

    def __init__(self) -> None:
        super().__init__(reply_tokens=3)
        self.calls = 0
        self.hold = threading.Event()
        self.hold.set()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        self.calls += 1
        # Polled: the tests set this from their own thread, off the server's loop.
        while not self.hold.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        async for ev in super().generate(request):
            yield ev


@dataclass(frozen=True)
class Idem:
    base_url: str
    settings: Settings
    engine: CountingEngine
    app: FastAPI

    def key(self, limits: Limits | None = None) -> str:
        """A fresh API key in a fresh project."""
        return asyncio.run(_new_key(self.settings, limits))

    def client(self, api_key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key=api_key, max_retries=0)


async def _new_key(settings: Settings, limits: Limits | None) -> str:
    db = Database(settings.effective_database_url)
    await db.migrate()
    created = await create_key(
        db, load_or_create_pepper(settings.data_dir), project=secrets.token_hex(4), name="idem"
    )
    if limits is not None:
        await set_limits(db, "key", created.id, limits)
    await db.close()
    return created.secret


@pytest.fixture(scope="module", params=["memory", "redis"])
def idem(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Idem]:
    if request.param == "redis" and not _reachable("127.0.0.1", 6379):
        pytest.skip("Redis is not reachable on 6379")
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("idem"),
        redis_url=REDIS_URL if request.param == "redis" else None,
        idempotency={"wait_s": 5.0},
    )
    engine = CountingEngine()
    now = time.time()  # held still: nothing refills behind the tests' back
    app = create_app(settings, fake_registry(engine), clock=lambda: now)
    with serving(app) as base_url:
        yield Idem(base_url, settings, engine, app)


def _headers(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def test_a_retry_replays_the_first_response(idem: Idem) -> None:
    client = idem.client(idem.key())
    key = secrets.token_hex(8)
    before = idem.engine.calls
    first = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=ASK, extra_headers=_headers(key)
    )
    again = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=ASK, extra_headers=_headers(key)
    )
    assert idem.engine.calls == before + 1
    assert again.parse().id == first.parse().id
    assert again.parse().model_dump() == first.parse().model_dump()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["openai-model"] == MODEL
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    assert int(again.headers["openai-processing-ms"]) >= 0


def test_another_body_with_the_same_key_is_409(idem: Idem) -> None:
    client = idem.client(idem.key())
    key = secrets.token_hex(8)
    client.chat.completions.create(model=MODEL, messages=ASK, extra_headers=_headers(key))
    with pytest.raises(openai.ConflictError) as info:
        client.chat.completions.create(
            model=MODEL, messages=ASK, max_tokens=2, extra_headers=_headers(key)
        )
    assert info.value.code == "idempotency_key_reused"
    assert info.value.body["type"] == "invalid_request_error"  # type: ignore[index]


def test_keys_belong_to_the_callers_project(idem: Idem) -> None:
    key = secrets.token_hex(8)
    one = idem.client(idem.key()).chat.completions.create(
        model=MODEL, messages=ASK, extra_headers=_headers(key)
    )
    other = idem.client(idem.key()).chat.completions.create(
        model=MODEL, messages=ASK, extra_headers=_headers(key)
    )
    assert one.id != other.id


def test_a_failed_request_is_not_stored(idem: Idem) -> None:
    client = idem.client(idem.key())
    key = secrets.token_hex(8)
    idem.engine.fail_after = 1
    try:
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model=MODEL, messages=ASK, extra_headers=_headers(key))
    finally:
        idem.engine.fail_after = None
    # An unhandled error closes the connection (Starlette re-raises it): a new one is needed.
    client = idem.client(client.api_key)
    with pytest.raises(openai.BadRequestError):  # refused: not stored either
        client.chat.completions.create(
            model=MODEL, messages=ASK, temperature=5, extra_headers=_headers(key + "x")
        )
    before = idem.engine.calls
    done = client.chat.completions.create(model=MODEL, messages=ASK, extra_headers=_headers(key))
    assert done.choices[0].message.content == "xxx"
    assert idem.engine.calls == before + 1


def test_a_replay_takes_no_rate_limit_tokens(idem: Idem) -> None:
    client = idem.client(idem.key(Limits(requests_per_minute=2)))
    key = secrets.token_hex(8)
    client.chat.completions.create(model=MODEL, messages=ASK, extra_headers=_headers(key))
    for _ in range(3):
        client.chat.completions.create(model=MODEL, messages=ASK, extra_headers=_headers(key))
    client.chat.completions.create(model=MODEL, messages=ASK)  # the second request
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=MODEL, messages=ASK)


def _stream(idem: Idem, api_key: str, key: str, path: str, body: dict[str, object]) -> bytes:
    headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": key}
    with httpx.stream("POST", f"{idem.base_url}{path}", json=body, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return response.read()


def test_a_completed_stream_replays_the_same_bytes(idem: Idem) -> None:
    api_key = idem.key()
    key = secrets.token_hex(8)
    body = {"model": MODEL, "messages": ASK, "stream": True}
    before = idem.engine.calls
    first = _stream(idem, api_key, key, "/v1/chat/completions", body)
    assert first.endswith(b"data: [DONE]\n\n")
    assert _stream(idem, api_key, key, "/v1/chat/completions", body) == first
    assert idem.engine.calls == before + 1
    completion = {"model": MODEL, "prompt": "Once", "stream": True}
    first = _stream(idem, api_key, key + "c", "/v1/completions", completion)
    assert _stream(idem, api_key, key + "c", "/v1/completions", completion) == first
    assert idem.engine.calls == before + 2


def test_concurrent_duplicates_wait_for_the_first(idem: Idem) -> None:
    api_key = idem.key()
    key = secrets.token_hex(8)
    body = {"model": MODEL, "messages": ASK, "stream": True}
    before = idem.engine.calls
    idem.engine.hold.clear()
    try:
        with ThreadPoolExecutor(3) as pool:
            runs = [
                pool.submit(_stream, idem, api_key, key, "/v1/chat/completions", body)
                for _ in range(3)
            ]
            deadline = time.monotonic() + 5
            while idem.engine.calls == before and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.3)  # the twins have arrived and are waiting
            assert idem.engine.calls == before + 1
            idem.engine.hold.set()
            results = [r.result(timeout=10) for r in runs]
    finally:
        idem.engine.hold.set()
    assert results[0] == results[1] == results[2]
    assert idem.engine.calls == before + 1


def test_replays_record_no_usage(idem: Idem) -> None:
    client = idem.client(idem.key())
    key = secrets.token_hex(8)
    ledger = idem.app.state.headrace.ledger
    recorded: list[object] = []
    original = ledger.record
    ledger.record = recorded.append
    try:
        for _ in range(3):
            client.chat.completions.create(model=MODEL, messages=ASK, extra_headers=_headers(key))
    finally:
        ledger.record = original
    assert len(recorded) == 1


def test_a_bad_key_is_400(idem: Idem) -> None:
    client = idem.client(idem.key())
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=ASK, extra_headers=_headers("k" * 256))
    assert info.value.param == "Idempotency-Key"


def test_embeddings_and_completions_replay(server: Server) -> None:
    """On the real models: each generation route honours the header."""
    client = server.client()
    key = secrets.token_hex(8)
    first = client.embeddings.create(
        model="headrace-embed-minilm", input=["hello"], extra_headers=_headers(key)
    )
    again = client.embeddings.with_raw_response.create(
        model="headrace-embed-minilm", input=["hello"], extra_headers=_headers(key)
    )
    assert again.headers["idempotent-replayed"] == "true"
    assert again.parse().data[0].embedding == first.data[0].embedding
    one, two = (
        client.completions.create(
            model=MODEL, prompt="Once upon a time", max_tokens=4, extra_headers=_headers(key + "c")
        )
        for _ in range(2)
    )
    assert one.id == two.id
    assert one.choices[0].text == two.choices[0].text


@pytest.mark.parametrize("where", ["memory", "redis"])
async def test_a_cancelled_request_frees_its_key(where: str) -> None:
    """The client hangs up while the route runs (its task is cancelled): the key is free
    again for the retry, in place for the in-process store, shielded for Redis."""
    if where == "redis" and not _reachable("127.0.0.1", 6379):
        pytest.skip("Redis is not reachable on 6379")
    store: IdempotencyStore = (
        MemoryStore(ttl_s=60, lock_ttl_s=60)
        if where == "memory"
        else RedisStore.from_url(REDIS_URL, ttl_s=60, lock_ttl_s=60, timeout_s=1.0)
    )
    keys = IdempotencyKeys(store, wait_s=0.0)

    async def authenticate(header: str | None) -> object:
        return SimpleNamespace(project_id="proj_cancel")

    state = SimpleNamespace(
        settings=Settings(), idempotency=keys, auth=SimpleNamespace(authenticate=authenticate)
    )
    running = asyncio.Event()

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        running.set()
        await asyncio.Event().wait()  # the upstream that never answers

    body = b'{"model": "m"}'
    key = secrets.token_hex(8)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [(b"idempotency-key", key.encode()), (b"authorization", b"Bearer k")],
        "app": SimpleNamespace(state=SimpleNamespace(headrace=state)),
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent")

    request = asyncio.create_task(IdempotencyMiddleware(route)(scope, receive, send))
    await running.wait()
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    scoped = scoped_key("proj_cancel", key)
    retry = await keys.begin(scoped, fingerprint("POST", "/v1/chat/completions", body))
    assert isinstance(retry, Claimed)
    await keys.finish(retry, None)
    await keys.close()
