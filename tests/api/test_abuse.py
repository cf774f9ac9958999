"""Abuse protection end to end: a key whose token rate spikes is suspended (403
`key_suspended`) on this replica at once and on the others within the key cache's TTL;
an operator lists, imposes and lifts suspensions, every one audited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from headrace.api.app import create_app
from headrace.config import Settings
from tests.api.test_audit import AdminServer, admin_server
from tests.conftest import serving
from tests.fakes import FakeEngine, fake_registry

MODEL = "headrace-tiny-chat"


def _ask(base_url: str, key: str) -> None:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)
    client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=3
    )


def _ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def spiky(tmp_path: Path) -> Iterator[AdminServer]:
    """Suspension on, and a key's first request already a spike: any tokens at all are
    over twice a baseline of one token a minute."""
    settings = Settings(
        data_dir=tmp_path,
        key_cache_ttl_s=0,
        abuse={"enabled": True, "spike_ratio": 2.0, "min_baseline_tokens_per_minute": 1},
    )
    with admin_server(settings) as server:
        yield server


def test_a_spiking_key_is_suspended_then_lifted(spiky: AdminServer) -> None:
    _ask(spiky.base_url, spiky.api_key)  # served; its tokens fire the signal
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _ask(spiky.base_url, spiky.api_key)
    assert refused.value.status_code == 403
    assert refused.value.code == "key_suspended"
    assert "suspended until" in refused.value.message

    listed = _ok(spiky.http.get("/abuse/suspensions", params={"key_id": spiky.api_key_id}))
    [suspension] = listed["data"]
    assert (suspension["reason"], suspension["created_by"]) == ("token_spike", "system:abuse")
    assert listed["signals"]["spike_ratio"] > 2

    metrics = httpx.get(f"{spiky.base_url}/metrics").text
    assert 'headrace:abuse_signals_total{reason="token_spike"} 1.0' in metrics
    assert 'headrace:key_suspensions_total{reason="token_spike"} 1.0' in metrics
    assert spiky.api_key_id not in metrics  # per-key detail stays in the admin API

    lifted = _ok(spiky.http.delete(f"/abuse/suspensions/{spiky.api_key_id}"))
    assert lifted["deleted"] is True
    _ask(spiky.base_url, spiky.api_key)  # served again: one signal per episode
    assert _ok(spiky.http.delete(f"/abuse/suspensions/{spiky.api_key_id}"))["deleted"] is False

    events = _ok(spiky.http.get("/audit-events", params={"target_id": spiky.api_key_id}))
    actions = [(e["actor"], e["action"]) for e in events["data"]]
    assert ("system:abuse", "key.suspend") in actions
    assert any(a == "key.unsuspend" and str(who).startswith("adm_") for who, a in actions)


def test_a_suspension_bites_on_every_replica(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, key_cache_ttl_s=0)  # automatic suspension off
    with (
        admin_server(settings) as first,
        serving(
            create_app(
                settings.model_copy(update={"replica_id": "second"}), fake_registry(FakeEngine())
            )
        ) as second,
    ):
        _ask(second, first.api_key)
        made = _ok(
            first.http.post(
                "/abuse/suspensions",
                json={"key_id": first.api_key_id, "duration_s": 600, "note": "card fraud"},
            )
        )
        assert (made["reason"], made["detail"]) == ("manual", {"note": "card fraud"})
        for replica in (first.base_url, second):
            with pytest.raises(openai.PermissionDeniedError):
                _ask(replica, first.api_key)
        _ok(first.http.delete(f"/abuse/suspensions/{first.api_key_id}"))
        for replica in (first.base_url, second):
            _ask(replica, first.api_key)


def test_bad_suspension_requests(spiky: AdminServer) -> None:
    unknown = spiky.http.post("/abuse/suspensions", json={"key_id": "key_no", "duration_s": 60})
    assert unknown.status_code == 404
    for duration in (0, -5, 10**9):
        bad = spiky.http.post(
            "/abuse/suspensions", json={"key_id": spiky.api_key_id, "duration_s": duration}
        )
        assert bad.status_code == 400, bad.text
    assert spiky.http.delete("/abuse/suspensions/key_no").status_code == 404
    assert _ok(spiky.http.get("/abuse/suspensions"))["data"] == []
    no_admin = httpx.get(
        f"{spiky.base_url}/admin/v1/abuse/suspensions",
        headers={"Authorization": f"Bearer {spiky.api_key}"},
    )
    assert no_admin.status_code == 401
