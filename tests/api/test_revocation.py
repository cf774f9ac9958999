"""Two gateways on one database: a key revoked through one is refused by the other within
`key_cache_ttl_s` (1 s), the age of its cached copy of the key."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import openai
import pytest

from headrace.admission.secrets import load_or_create_pepper
from headrace.api.app import create_app
from headrace.config import Settings
from headrace.control.keys import bootstrap, revoke_key
from headrace.storage.database import Database
from tests.api.test_limits import FrozenClock
from tests.conftest import serving
from tests.fakes import FakeEngine, fake_registry

MODEL = "headrace-tiny-chat"
ASK = [{"role": "user", "content": "Hi"}]


def _keys(settings: Settings) -> tuple[str, str, str]:
    async def first() -> tuple[str, str, str]:
        db = Database(settings.effective_database_url)
        await db.migrate()
        start = await bootstrap(db, load_or_create_pepper(settings.data_dir))
        await db.close()
        assert start is not None
        return start.admin_secret, start.api_key.secret, start.api_key.id

    return asyncio.run(first())


def _ask(base_url: str, key: str) -> None:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)
    client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=1)


def test_revoked_through_one_replica_refused_by_the_other_within_a_second(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path)  # key_cache_ttl_s: 1 s, the default
    admin_key, api_key, key_id = _keys(settings)
    clock = FrozenClock()
    apps = [
        create_app(_replica(settings, i), fake_registry(FakeEngine()), clock=clock)
        for i in range(2)
    ]
    with serving(apps[0]) as first, serving(apps[1]) as second:
        _ask(second, api_key)  # the second replica now holds the key in its cache
        revoked = httpx.post(
            f"{first}/admin/v1/keys/{key_id}/revoke",
            headers={"Authorization": f"Bearer {admin_key}"},
        )
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"] is not None
        with pytest.raises(openai.AuthenticationError):
            _ask(first, api_key)  # the replica that revoked it: at once
        clock.now += 0.999
        _ask(second, api_key)  # its cached copy is not yet a second old
        clock.now += 0.001
        with pytest.raises(openai.AuthenticationError) as info:
            _ask(second, api_key)  # a second after its lookup: read again, refused
        assert "revoked" in info.value.message


def test_revocation_in_real_time_from_the_control_layer(tmp_path: Path) -> None:
    """The same with the real clock, the key revoked by the CLI's code path."""
    settings = Settings(data_dir=tmp_path)
    _, api_key, key_id = _keys(settings)
    apps = [create_app(_replica(settings, i), fake_registry(FakeEngine())) for i in range(2)]
    with serving(apps[0]) as first, serving(apps[1]) as second:
        _ask(first, api_key)
        _ask(second, api_key)

        async def revoke() -> None:
            db = Database(settings.effective_database_url)
            await revoke_key(db, key_id)
            await db.close()

        asyncio.run(revoke())
        revoked_at = time.monotonic()
        refused: set[str] = set()
        while len(refused) < 2:
            assert time.monotonic() - revoked_at < 1.0 + 1.0  # the TTL, plus slack for a busy CI
            for base_url in (first, second):
                try:
                    _ask(base_url, api_key)
                except openai.AuthenticationError:
                    refused.add(base_url)
            time.sleep(0.05)


def _replica(settings: Settings, i: int) -> Settings:
    """Replica `i` of a gateway: its own replica id, like each process in production."""
    return settings.model_copy(update={"replica_id": f"gateway-{i}"})
