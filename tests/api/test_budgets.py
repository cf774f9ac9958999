"""Budgets through the official SDK: spend from the usage ledger's costs, 429
`insufficient_quota` once a key's or a project's budget is spent, set by the admin API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import openai
import pytest
from sqlalchemy import func, select

from headrace.admission.secrets import load_or_create_pepper
from headrace.api.app import create_app
from headrace.config import Settings
from headrace.control.keys import bootstrap
from headrace.storage.database import Database
from headrace.storage.schema import UsageEventRow
from tests.conftest import serving
from tests.fakes import FakeEngine, fake_registry

MODEL = "headrace-tiny-chat"
ASK = [{"role": "user", "content": "Hi"}]
# A dollar per thousand tokens: one request costs a few cents.
PRICES = {"input_price_per_1m": 1000.0, "output_price_per_1m": 1000.0}


@dataclass(frozen=True)
class Budgeted:
    base_url: str
    admin: httpx.Client
    settings: Settings

    def sdk(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key=key, max_retries=0)

    def new_key(self, **limits: float) -> tuple[str, str, str]:
        """A key in a fresh project, with `limits`: (secret, key id, project id)."""
        org = self.admin.get("/organizations").json()["data"][0]["id"]
        project = self.admin.post(
            "/projects", json={"org_id": org, "name": f"p{time.monotonic_ns()}"}
        ).json()
        key = self.admin.post(
            "/keys", json={"project_id": project["id"], "name": "k", "limits": limits}
        )
        assert key.status_code == 200, key.text
        return key.json()["value"], key.json()["id"], project["id"]

    def wait_for_events(self, n: int, key_id: str) -> None:
        """Until the ledger has written `n` events of `key_id` (it writes in the background)."""

        async def count() -> int:
            db = Database(self.settings.effective_database_url)
            async with db.session() as session:
                found = await session.scalar(
                    select(func.count()).where(
                        UsageEventRow.api_key_id == key_id, UsageEventRow.status == "ok"
                    )
                )
            await db.close()
            return int(found or 0)

        deadline = time.monotonic() + 10
        while asyncio.run(count()) < n:
            assert time.monotonic() < deadline, "usage events were not written"
            time.sleep(0.02)


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Budgeted]:
    # No limit cache: the spend read by the next request is what the ledger has written.
    settings = Settings(data_dir=tmp_path_factory.mktemp("budgets"), limits={"cache_ttl_s": 0})

    async def first() -> str:
        db = Database(settings.effective_database_url)
        await db.migrate()
        start = await bootstrap(db, load_or_create_pepper(settings.data_dir))
        await db.close()
        assert start is not None
        return start.admin_secret

    admin_key = asyncio.run(first())
    app = create_app(settings, fake_registry(FakeEngine(reply_tokens=3), **PRICES))
    with serving(app) as base_url:
        admin = httpx.Client(
            base_url=f"{base_url}/admin/v1", headers={"Authorization": f"Bearer {admin_key}"}
        )
        yield Budgeted(base_url, admin, settings)


def _spend_until_refused(budgeted: Budgeted, secret: str, key_id: str) -> tuple[float, int]:
    """Ask until refused: (USD the admitted requests cost, how many were admitted)."""
    client = budgeted.sdk(secret)
    spent, admitted = 0.0, 0
    refused: openai.RateLimitError | None = None
    while refused is None and admitted < 50:
        try:
            reply = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=3)
        except openai.RateLimitError as err:
            refused = err
            continue
        assert reply.usage is not None
        spent += reply.usage.total_tokens * 1000 / 1e6
        admitted += 1
        budgeted.wait_for_events(admitted, key_id)
    assert refused is not None, "the budget never refused"
    assert (refused.code, refused.type) == ("insufficient_quota", "insufficient_quota")
    assert refused.response.headers["x-should-retry"] == "false"
    assert "retry-after" not in refused.response.headers
    return spent, admitted


def test_a_key_is_refused_once_its_daily_budget_is_spent(budgeted: Budgeted) -> None:
    secret, key_id, _ = budgeted.new_key(spend_per_day_usd=0.1, requests_per_minute=100)
    spent, admitted = _spend_until_refused(budgeted, secret, key_id)
    assert admitted >= 2
    assert spent >= 0.1  # refused only once spent...
    per_request = spent / admitted
    assert spent - per_request < 0.1  # ...and not a request earlier


def test_a_project_budget_covers_all_its_keys(budgeted: Budgeted) -> None:
    secret, key_id, project_id = budgeted.new_key()
    limits = budgeted.admin.put(f"/limits/project/{project_id}", json={"spend_per_month_usd": 0.05})
    assert limits.json()["spend_per_month_usd"] == 0.05
    _spend_until_refused(budgeted, secret, key_id)
    other = budgeted.admin.post("/keys", json={"project_id": project_id, "name": "other"}).json()
    with pytest.raises(openai.RateLimitError) as info:
        budgeted.sdk(other["value"]).chat.completions.create(model=MODEL, messages=ASK)
    assert info.value.code == "insufficient_quota"
    # Raising the budget lets the project in again at once.
    budgeted.admin.put(f"/limits/project/{project_id}", json={"spend_per_month_usd": 100})
    budgeted.sdk(other["value"]).chat.completions.create(model=MODEL, messages=ASK)


@pytest.mark.parametrize(
    ("body", "model"),
    [
        ({"spend_per_day_usd": -1}, ""),
        ({"spend_per_month_usd": 0}, ""),
        ({"spend_per_month_usd": 1e12}, ""),
        ({"spend_per_day_usd": 5}, MODEL),  # budgets are for all models
    ],
)
def test_bad_budgets_are_400_and_change_nothing(
    budgeted: Budgeted, body: dict[str, float], model: str
) -> None:
    _, key_id, _ = budgeted.new_key(spend_per_day_usd=1)
    path = f"/limits/key/{key_id}"
    refused = budgeted.admin.put(path, params={"model": model} if model else {}, json=body)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == next(iter(body))
    assert budgeted.admin.get(path).json()["spend_per_day_usd"] == 1
