"""`/admin/v1/audit-events` and `headrace audit`: every admin write leaves one event naming
who, what, before and after, when and from where; never a secret."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from headrace.admission.secrets import load_or_create_pepper
from headrace.api.app import create_app
from headrace.cli.main import app as cli
from headrace.config import Settings
from headrace.control.keys import bootstrap
from headrace.storage.database import Database
from tests.conftest import serving
from tests.fakes import FakeEngine, fake_registry


@dataclass(frozen=True)
class AdminServer:
    base_url: str
    http: httpx.Client
    api_key: str
    api_key_id: str
    settings: Settings


@contextmanager
def admin_server(settings: Settings) -> Iterator[AdminServer]:
    """A gateway on `settings` with a bootstrapped admin key and first API key."""

    async def first() -> tuple[str, str, str]:
        db = Database(settings.effective_database_url)
        await db.migrate()
        start = await bootstrap(db, load_or_create_pepper(settings.data_dir))
        await db.close()
        assert start is not None
        return start.admin_secret, start.api_key.secret, start.api_key.id

    admin_key, api_key, key_id = asyncio.run(first())
    with serving(create_app(settings, fake_registry(FakeEngine()))) as base_url:
        http = httpx.Client(
            base_url=f"{base_url}/admin/v1",
            headers={"Authorization": f"Bearer {admin_key}", "User-Agent": "ops-console/1"},
        )
        yield AdminServer(base_url, http, api_key, key_id, settings)


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminServer]:
    with admin_server(Settings(data_dir=tmp_path_factory.mktemp("audit"))) as server:
        yield server


def _ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def _events(admin: AdminServer, **params: Any) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = _ok(admin.http.get("/audit-events", params=params))["data"]
    return data


def test_admin_writes_are_audited_with_actor_source_and_no_secret(admin: AdminServer) -> None:
    org = _ok(admin.http.post("/organizations", json={"name": "audited"}))
    project = _ok(admin.http.post("/projects", json={"org_id": org["id"], "name": "p"}))
    created = admin.http.post(
        "/keys",
        json={"project_id": project["id"], "name": "k", "limits": {"tokens_per_minute": 500}},
        headers={"x-request-id": "req-audit-1"},
    )
    key = _ok(created)
    _ok(admin.http.put(f"/limits/project/{project['id']}", json={"requests_per_minute": 7}))
    _ok(admin.http.post(f"/keys/{key['id']}/revoke"))

    [create] = _events(admin, action="key.create", target_id=key["id"])
    assert create["actor"].startswith("adm_")
    assert create["source"] == {
        "ip": "127.0.0.1",
        "user_agent": "ops-console/1",
        "request_id": "req-audit-1",
    }
    assert create["after"]["limits"]["tokens_per_minute"] == 500
    [revoke] = _events(admin, action="key.revoke", target_id=key["id"])
    assert revoke["before"] == {"revoked_at": None}
    actions = {e["action"] for e in _events(admin, actor=create["actor"], limit=1000)}
    assert {"organization.create", "project.create", "limits.set"} <= actions
    exported = admin.http.get("/audit-events/export").text
    assert str(key["value"]) not in exported
    assert str(key["value"])[6:18] not in exported  # not even the key's lookup prefix


def test_pages_and_export_agree(admin: AdminServer) -> None:
    for i in range(3):
        _ok(admin.http.post("/organizations", json={"name": f"paged-{i}"}))
    seen: list[int] = []
    after = 0
    while True:
        page = _ok(admin.http.get("/audit-events", params={"limit": 2, "after": after}))
        seen += [int(str(e["id"])) for e in page["data"]]
        if not page["has_more"]:
            break
        after = int(str(page["last_id"]))
    response = admin.http.get("/audit-events/export")
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [e["id"] for e in lines] == seen
    assert seen == sorted(seen)
    since = _events(admin, since=10**10)
    assert since == []


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 5000}, {"since": 10, "until": 5}, {"after": -1}, {"since": 10**14}],
)
def test_bad_queries_are_400(admin: AdminServer, params: dict[str, int]) -> None:
    response = admin.http.get("/audit-events", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_no_route_rewrites_the_log(admin: AdminServer) -> None:
    assert admin.http.delete("/audit-events").status_code == 405
    assert admin.http.patch("/audit-events/1", json={}).status_code in (404, 405)


def test_audit_needs_an_admin_key(admin: AdminServer) -> None:
    response = httpx.get(
        f"{admin.base_url}/admin/v1/audit-events",
        headers={"Authorization": f"Bearer {admin.api_key}"},
    )
    assert response.status_code == 401


def test_cli_writes_are_audited_as_the_os_user_and_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADRACE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HEADRACE_CONFIG", raising=False)
    monkeypatch.setattr("getpass.getuser", lambda: "carol")
    runner = CliRunner(env={"COLUMNS": "250"})
    created = runner.invoke(cli, ["keys", "create", "--name", "ci", "--print-key-only"])
    assert created.exit_code == 0, created.output
    listed = runner.invoke(cli, ["audit", "list", "--actor", "cli:carol"])
    assert listed.exit_code == 0, listed.output
    assert "key.create" in listed.stdout
    out = tmp_path / "audit.jsonl"
    exported = runner.invoke(cli, ["audit", "export", "--output", str(out)])
    assert exported.exit_code == 0, exported.output
    [event] = [json.loads(line) for line in out.read_text().splitlines()]
    assert event["actor"] == "cli:carol"
    assert event["source"]["user_agent"].startswith("headrace-cli/")
    assert created.stdout.strip() not in out.read_text()
    bad = runner.invoke(cli, ["audit", "list", "--since", "10", "--until", "5"])
    assert bad.exit_code == 2
