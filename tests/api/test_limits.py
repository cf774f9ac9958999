"""Rate limits through the official SDK: 429s, `x-ratelimit-*` headers, refunds, seats.

The server's limiter runs on a clock the tests hold still, so nothing refills behind
their back and every number is exact; a fake engine answers every request with 3 tokens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from headrace.admission.limits import Limits
from headrace.admission.secrets import load_or_create_pepper
from headrace.api.app import create_app
from headrace.config import Settings
from headrace.control.keys import create_key
from headrace.control.limits import set_limits
from headrace.storage.database import Database
from tests.conftest import Server, _reachable, serving
from tests.fakes import FakeEngine, fake_registry

MODEL = "headrace-tiny-chat"
EMBED = "headrace-embed-minilm"
ASK = [{"role": "user", "content": "What is the capital of France?"}]


@dataclass
class FrozenClock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Limited:
    base_url: str
    settings: Settings
    clock: FrozenClock

    def client_with(self, limits: Limits, scope: str = "key") -> openai.OpenAI:
        """A client whose fresh key (in a fresh project) has `limits` at `scope`."""
        secret = asyncio.run(_limited_key(self.settings, limits, scope))
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key=secret, max_retries=0)


async def _limited_key(settings: Settings, limits: Limits, scope: str) -> str:
    db = Database(settings.effective_database_url)
    await db.migrate()
    pepper = load_or_create_pepper(settings.data_dir)
    project = f"p{id(limits)}-{asyncio.get_running_loop().time()}"
    created = await create_key(db, pepper, project=project, name="limited")
    principal_ids = {"key": created.id, "org": created.org_id}
    if scope == "project":
        from sqlalchemy import select

        from headrace.storage.schema import ApiKey

        async with db.session() as session:
            principal_ids["project"] = str(
                await session.scalar(select(ApiKey.project_id).where(ApiKey.id == created.id))
            )
    await set_limits(db, scope, principal_ids[scope], limits)  # type: ignore[arg-type]
    await db.close()
    return created.secret


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limited]:
    data_dir: Path = tmp_path_factory.mktemp("limited")
    settings = Settings(data_dir=data_dir)
    clock = FrozenClock()
    app = create_app(settings, fake_registry(FakeEngine(reply_tokens=3)), clock=clock)
    with serving(app) as base_url:
        yield Limited(base_url, settings, clock)


def _ask(client: openai.OpenAI, max_tokens: int = 2) -> openai.APIResponse[object]:
    return client.chat.completions.with_raw_response.create(  # type: ignore[return-value]
        model=MODEL, messages=ASK, max_tokens=max_tokens, temperature=0
    )


def test_rpm_two_refuses_the_third_request(limited: Limited) -> None:
    client = limited.client_with(Limits(requests_per_minute=2))
    first = _ask(client)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"] == "30s"
    assert _ask(client).headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as info:
        _ask(client)
    err = info.value
    assert err.code == "rate_limit_exceeded"
    assert err.response.headers["retry-after"] == "30"
    assert err.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert "requests per min (RPM): Limit 2" in err.message
    limited.clock.now += 30  # half a minute refills one request
    assert _ask(client).headers["x-ratelimit-remaining-requests"] == "0"


def test_tokens_are_reserved_then_unused_ones_refunded(limited: Limited) -> None:
    client = limited.client_with(Limits(tokens_per_minute=5000))
    first = _ask(client, max_tokens=64)
    usage = first.parse().usage  # type: ignore[attr-defined]
    reserved = usage.prompt_tokens + 64
    assert int(first.headers["x-ratelimit-remaining-tokens"]) == 5000 - reserved
    assert usage.completion_tokens == 3
    # The first request gave back what it did not use: only its real usage still counts.
    second = _ask(client, max_tokens=64)
    assert (
        int(second.headers["x-ratelimit-remaining-tokens"]) == 5000 - usage.total_tokens - reserved
    )
    assert second.headers["x-ratelimit-limit-tokens"] == "5000"


def test_a_request_larger_than_the_token_limit(limited: Limited) -> None:
    client = limited.client_with(Limits(tokens_per_minute=50))
    with pytest.raises(openai.RateLimitError) as info:
        _ask(client, max_tokens=100)
    assert "Request too large" in info.value.message


def test_streams_are_limited_and_carry_the_headers(limited: Limited) -> None:
    client = limited.client_with(Limits(requests_per_minute=1, tokens_per_minute=10_000))
    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=ASK, max_tokens=2, stream=True
    ) as response:
        assert response.headers["x-ratelimit-remaining-requests"] == "0"
        assert "x-ratelimit-remaining-tokens" in response.headers
        list(response.iter_lines())
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=2, stream=True)


def test_concurrency_seats_are_freed_when_requests_end(limited: Limited) -> None:
    client = limited.client_with(Limits(max_concurrent_requests=1), scope="project")
    for _ in range(3):  # one at a time always fits, if each one gives its seat back
        _ask(client)


def test_keys_without_limits_get_no_limit_headers(limited: Limited) -> None:
    client = limited.client_with(Limits())
    assert "x-ratelimit-limit-requests" not in _ask(client).headers


REDIS_UP = _reachable("127.0.0.1", 6379)


@pytest.mark.skipif(not REDIS_UP, reason="Redis is not reachable on 127.0.0.1:6379")
def test_two_gateways_sharing_redis_enforce_one_limit(tmp_path: Path) -> None:
    """200 concurrent requests split across two replicas, 60 RPM: exactly 60 succeed."""
    # A generous Redis timeout: on a loaded machine 200 requests at once can queue past the
    # default 0.5 s, and a timeout fails open (each replica limits alone), as designed.
    settings = Settings(
        data_dir=tmp_path, redis_url="redis://127.0.0.1:6379/15", limits={"redis_timeout_s": 10}
    )
    secret = asyncio.run(_limited_key(settings, Limits(requests_per_minute=60), "key"))
    clock = FrozenClock()
    apps = [
        create_app(_replica(settings, i), fake_registry(FakeEngine()), clock=clock)
        for i in range(2)
    ]
    with serving(apps[0]) as first, serving(apps[1]) as second:
        statuses = asyncio.run(_storm([first, second], secret, 200))
    assert statuses.count(200) == 60
    assert statuses.count(429) == 140


async def _storm(base_urls: list[str], secret: str, n: int) -> list[int]:
    body = {"model": MODEL, "messages": ASK, "max_tokens": 1}
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        responses = await asyncio.gather(
            *(
                http.post(
                    f"{base_urls[i % len(base_urls)]}/v1/chat/completions",
                    json=body,
                    headers={"Authorization": f"Bearer {secret}"},
                )
                for i in range(n)
            )
        )
    return [r.status_code for r in responses]


def test_embeddings_are_limited_too(server: Server) -> None:
    secret = asyncio.run(_limited_key(server.settings, Limits(requests_per_minute=1), "key"))
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=secret, max_retries=0)
    first = client.embeddings.with_raw_response.create(model=EMBED, input="hello")
    assert first.headers["x-ratelimit-limit-requests"] == "1"
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model=EMBED, input="hello")


@pytest.mark.parametrize("policy", ["open", "closed"])
def test_redis_down_fails_open_locally_or_closed(tmp_path: Path, policy: str) -> None:
    settings = Settings(
        data_dir=tmp_path,
        redis_url="redis://127.0.0.1:1/0",  # nothing listens there
        limits={"redis_failure": policy, "redis_timeout_s": 0.2},
    )
    secret = asyncio.run(_limited_key(settings, Limits(requests_per_minute=2), "key"))
    app = create_app(settings, fake_registry(FakeEngine()), clock=FrozenClock())
    with serving(app) as base_url:
        client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=secret, max_retries=0)
        if policy == "closed":
            with pytest.raises(openai.InternalServerError) as info:
                client.chat.completions.create(model=MODEL, messages=ASK)
            assert info.value.status_code == 503
            return
        for _ in range(2):
            client.chat.completions.create(model=MODEL, messages=ASK)
        with pytest.raises(openai.RateLimitError):  # still limited, by this replica alone
            client.chat.completions.create(model=MODEL, messages=ASK)


def test_legacy_completions_are_limited_and_refunded(limited: Limited) -> None:
    client = limited.client_with(Limits(requests_per_minute=1, tokens_per_minute=5000))
    first = client.completions.with_raw_response.create(model=MODEL, prompt="Hi", max_tokens=64)
    usage = first.parse().usage
    assert usage is not None
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    assert int(first.headers["x-ratelimit-remaining-tokens"]) == 5000 - usage.prompt_tokens - 64
    with pytest.raises(openai.RateLimitError):
        client.completions.create(model=MODEL, prompt="Hi", max_tokens=2)


def _replica(settings: Settings, i: int) -> Settings:
    """Replica `i` of a gateway: its own replica id, like each process in production."""
    return settings.model_copy(update={"replica_id": f"gateway-{i}"})
