"""Usage through the API: one durable event per request however it ends, read back from
`/v1/organization/usage/completions` and `/v1/organization/costs` with an admin key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import openai
import pytest

from headrace.admission.secrets import load_or_create_pepper
from headrace.api.app import create_app
from headrace.config import Settings
from headrace.control.keys import bootstrap
from headrace.storage.database import Database
from headrace.storage.schema import UsageEventRow
from tests.conftest import serving, usage_rows
from tests.fakes import FakeEngine, fake_registry

MODEL = "headrace-tiny-chat"
ASK = [{"role": "user", "content": "What is the capital of France?"}]
PRICES = {"input_price_per_1m": 2.0, "output_price_per_1m": 8.0}


@dataclass(frozen=True)
class Ledgered:
    settings: Settings
    api_key: str
    admin_key: str
    key_id: str
    events: list[UsageEventRow]
    started: int


@pytest.fixture(scope="module")
def ledgered(tmp_path_factory: pytest.TempPathFactory) -> Ledgered:
    """A server that served four requests (ok, ok streamed, failed, dropped), then stopped:
    stopping writes whatever the ledger still had queued."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("usage"))

    async def keys() -> tuple[str, str, str]:
        db = Database(settings.effective_database_url)
        await db.migrate()
        first = await bootstrap(db, load_or_create_pepper(settings.data_dir))
        await db.close()
        assert first is not None
        return first.api_key.secret, first.admin_secret, first.api_key.id

    api_key, admin_key, key_id = asyncio.run(keys())
    engine = FakeEngine(reply_tokens=3)
    started = int(time.time())
    with serving(create_app(settings, fake_registry(engine, **PRICES))) as base_url:
        client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=api_key, max_retries=0)
        client.chat.completions.create(model=MODEL, messages=ASK)
        list(client.chat.completions.create(model=MODEL, messages=ASK, stream=True))
        engine.fail_after = 1
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model=MODEL, messages=ASK)
        engine.fail_after = None
        _drop_a_stream(base_url, api_key, engine)
        with pytest.raises(openai.BadRequestError):  # refused before any work: no event
            client.chat.completions.create(model=MODEL, messages=ASK, temperature=5)
    return Ledgered(settings, api_key, admin_key, key_id, usage_rows(settings), started)


def _drop_a_stream(base_url: str, api_key: str, engine: FakeEngine) -> None:
    """Read the first token of a stream, then hang up while the engine is still going."""
    engine.gate = asyncio.Event()  # never opened: the request is mid-generation for good
    body = {"model": MODEL, "messages": ASK, "stream": True}
    with httpx.stream(
        "POST",
        f"{base_url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {api_key}"},
    ) as response:
        for line in response.iter_lines():
            if '"content":"x"' in line:
                break
    # The gate stays shut: reopening it here would race the server noticing the hang-up.


def test_one_event_per_request_however_it_ended(ledgered: Ledgered) -> None:
    statuses = sorted(e.status for e in ledgered.events)
    assert statuses == ["cancelled", "error", "ok", "ok"]
    assert len({e.request_id for e in ledgered.events}) == 4
    assert all(e.request_id.startswith("chatcmpl-") for e in ledgered.events)
    assert all(e.api_key_id == ledgered.key_id for e in ledgered.events)


def test_events_carry_tokens_latency_and_cost(ledgered: Ledgered) -> None:
    by_status = {e.status: e for e in ledgered.events}
    ok = by_status["ok"]
    assert ok.input_tokens > 5
    assert ok.output_tokens == 3
    assert ok.input_cost_nanousd == ok.input_tokens * 2000
    assert ok.output_cost_nanousd == 3 * 8000
    assert ok.latency_ms >= 0
    assert by_status["error"].output_tokens == 1
    assert by_status["cancelled"].output_tokens == 1


@pytest.fixture(scope="module")
def admin(ledgered: Ledgered) -> Iterator[httpx.Client]:
    app = create_app(ledgered.settings, fake_registry(FakeEngine()))
    with serving(app) as base_url:
        yield httpx.Client(
            base_url=f"{base_url}/v1/organization",
            headers={"Authorization": f"Bearer {ledgered.admin_key}"},
        )


def test_usage_completions_page(ledgered: Ledgered, admin: httpx.Client) -> None:
    start = ledgered.started - ledgered.started % 86_400
    page = admin.get("/usage/completions", params={"start_time": start}).json()
    assert page["object"] == "page"
    assert page["has_more"] is False
    [bucket] = page["data"]
    assert (bucket["object"], bucket["start_time"]) == ("bucket", start)
    [result] = bucket["results"]
    assert result["object"] == "organization.usage.completions.result"
    assert result["num_model_requests"] == 4
    assert result["output_tokens"] == sum(e.output_tokens for e in ledgered.events)
    assert result["model"] is None


def test_usage_grouped_by_model_and_key_in_minute_buckets(
    ledgered: Ledgered, admin: httpx.Client
) -> None:
    params = {
        "start_time": ledgered.started - 120,
        "bucket_width": "1m",
        "group_by": ["model", "api_key_id"],
        "limit": 2,
    }
    page = admin.get("/usage/completions", params=params).json()
    assert len(page["data"]) == 2
    assert page["has_more"] is True
    assert page["next_page"]
    rest = admin.get("/usage/completions", params=params | {"page": page["next_page"]}).json()
    results = [r for b in page["data"] + rest["data"] for r in b["results"]]
    assert {(r["model"], r["api_key_id"]) for r in results} == {(MODEL, ledgered.key_id)}
    assert sum(r["num_model_requests"] for r in results) == 4


def test_costs_by_line_item(ledgered: Ledgered, admin: httpx.Client) -> None:
    start = ledgered.started - ledgered.started % 86_400
    page = admin.get("/costs", params={"start_time": start, "group_by": "line_item"}).json()
    results = page["data"][0]["results"]
    items = {r["line_item"]: r for r in results}
    assert set(items) == {f"{MODEL}, input", f"{MODEL}, output"}
    inputs = sum(e.input_tokens for e in ledgered.events)
    assert items[f"{MODEL}, input"]["amount"] == {"value": inputs * 2000 / 1e9, "currency": "usd"}
    assert items[f"{MODEL}, input"]["quantity"] == inputs
    total = admin.get("/costs", params={"start_time": start}).json()["data"][0]["results"]
    expected = sum(e.input_cost_nanousd + e.output_cost_nanousd for e in ledgered.events) / 1e9
    assert total[0]["amount"]["value"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/usage/completions", {"start_time": 0, "bucket_width": "2d"}, "bucket_width"),
        ("/usage/completions", {"start_time": 0, "limit": 32}, "limit"),
        ("/usage/completions", {"start_time": 0, "group_by": "user"}, "group_by"),
        ("/usage/completions", {"start_time": 10, "end_time": 5}, "end_time"),
        ("/usage/completions", {"start_time": 0, "page": "page_x"}, "page"),
        ("/costs", {"start_time": 0, "bucket_width": "1h"}, "bucket_width"),
        ("/usage/completions", {}, "start_time"),
    ],
)
def test_bad_queries_are_400_naming_the_param(
    admin: httpx.Client, path: str, params: dict[str, object], param: str
) -> None:
    response = admin.get(path, params=params)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_project_keys_cannot_read_usage(ledgered: Ledgered, admin: httpx.Client) -> None:
    response = admin.get(
        "/usage/completions",
        params={"start_time": 0},
        headers={"Authorization": f"Bearer {ledgered.api_key}"},
    )
    assert response.status_code == 401
    assert "admin key" in response.json()["error"]["message"]
