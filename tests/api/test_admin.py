"""`/admin/v1/...` with an admin key: tenants, keys with limits, and refusals that leave
nothing behind."""

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
from tests.conftest import serving
from tests.fakes import FakeEngine, fake_registry

MODEL = "headrace-tiny-chat"
ASK = [{"role": "user", "content": "Hi"}]


@dataclass(frozen=True)
class Admin:
    base_url: str
    http: httpx.Client
    api_key: str

    def sdk(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key=key, max_retries=0)


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    # No caches: a revocation or a new limit is visible to the very next request.
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("admin"), key_cache_ttl_s=0, limits={"cache_ttl_s": 0}
    )

    async def first() -> tuple[str, str]:
        db = Database(settings.effective_database_url)
        await db.migrate()
        start = await bootstrap(db, load_or_create_pepper(settings.data_dir))
        await db.close()
        assert start is not None
        return start.admin_secret, start.api_key.secret

    admin_key, api_key = asyncio.run(first())
    with serving(create_app(settings, fake_registry(FakeEngine()))) as base_url:
        http = httpx.Client(
            base_url=f"{base_url}/admin/v1", headers={"Authorization": f"Bearer {admin_key}"}
        )
        yield Admin(base_url, http, api_key)


def _ok(response: httpx.Response) -> dict[str, object]:
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def _project(admin: Admin, org: str = "acme") -> str:
    orgs = _ok(admin.http.get("/organizations"))["data"]
    existing = [o["id"] for o in orgs if o["name"] == org]  # type: ignore[index, union-attr, attr-defined]
    org_id = (
        existing[0]
        if existing
        else _ok(admin.http.post("/organizations", json={"name": org}))["id"]
    )
    project = _ok(
        admin.http.post("/projects", json={"org_id": org_id, "name": f"p{time.monotonic_ns()}"})
    )
    assert project["object"] == "organization.project"
    return str(project["id"])


def test_org_project_key_with_limits_then_revoke(admin: Admin) -> None:
    project_id = _project(admin)
    key = _ok(
        admin.http.post(
            "/keys",
            json={
                "project_id": project_id,
                "name": "web",
                "allowed_models": [MODEL],
                "limits": {"requests_per_minute": 1, "tokens_per_minute": 100_000},
                "expires_at": int(time.time()) + 3600,
            },
        )
    )
    assert key["object"] == "organization.project.api_key"
    secret = str(key["value"])
    assert secret.startswith("sk-hr-")
    limits = _ok(admin.http.get(f"/limits/key/{key['id']}"))
    assert (limits["requests_per_minute"], limits["max_concurrent_requests"]) == (1, None)

    client = admin.sdk(secret)
    client.chat.completions.create(model=MODEL, messages=ASK)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=MODEL, messages=ASK)

    listed = _ok(admin.http.get("/keys", params={"project_id": project_id}))["data"]
    assert [k["id"] for k in listed] == [key["id"]]  # type: ignore[union-attr]
    assert secret not in str(listed)
    revoked = _ok(admin.http.post(f"/keys/{key['id']}/revoke"))
    assert revoked["revoked_at"] is not None
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model=MODEL, messages=ASK)


def test_limits_on_a_project_apply_to_its_keys(admin: Admin) -> None:
    project_id = _project(admin)
    _ok(admin.http.put(f"/limits/project/{project_id}", json={"requests_per_minute": 1}))
    keys = [
        str(_ok(admin.http.post("/keys", json={"project_id": project_id, "name": n}))["value"])
        for n in ("a", "b")
    ]
    admin.sdk(keys[0]).chat.completions.create(model=MODEL, messages=ASK)
    with pytest.raises(openai.RateLimitError):  # the project's one request is spent
        admin.sdk(keys[1]).chat.completions.create(model=MODEL, messages=ASK)
    cleared = _ok(admin.http.put(f"/limits/project/{project_id}", json={}))
    assert cleared["requests_per_minute"] is None


def test_a_key_limited_to_no_models_sees_none(admin: Admin) -> None:
    project_id = _project(admin)
    key = _ok(
        admin.http.post("/keys", json={"project_id": project_id, "name": "x", "allowed_models": []})
    )
    with pytest.raises(openai.NotFoundError) as info:
        admin.sdk(str(key["value"])).chat.completions.create(model=MODEL, messages=ASK)
    assert info.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "param"),
    [
        ("post", "/keys", {"name": "k", "limits": {"requests_per_minute": -1}}, 400,
         "requests_per_minute"),
        ("post", "/keys", {"name": "k", "limits": {"tokens_per_minute": 0}}, 400,
         "tokens_per_minute"),
        ("post", "/keys", {"name": "k", "expires_at": 1}, 400, "expires_at"),
        ("post", "/keys", {"name": "k", "allowed_models": ["gpt-9"]}, 400, "allowed_models"),
        ("post", "/keys", {"name": " "}, 400, "name"),
        ("post", "/keys", {"name": "k", "colour": "red"}, 400, "colour"),
        ("post", "/keys", {"project_id": "proj_nope", "name": "k"}, 404, "project_id"),
        ("post", "/projects", {"org_id": "org_nope", "name": "p"}, 404, "org_id"),
        ("post", "/projects", {"org_id": "org_nope", "name": "p", "tier": "Gold!"}, 400, "tier"),
        ("post", "/projects/proj_nope", {"tier": "gold"}, 404, "project_id"),
        ("post", "/keys/key_nope/revoke", None, 404, "key_id"),
        ("put", "/limits/key/key_nope", {"requests_per_minute": 5}, 404, "key_id"),
        ("put", "/limits/team/x", {"requests_per_minute": 5}, 400, "scope"),
        ("get", "/limits/org/org_nope", None, 404, "org_id"),
    ],
)  # fmt: skip
def test_bad_input_is_a_clear_4xx_and_creates_nothing(
    admin: Admin,
    method: str,
    path: str,
    body: dict[str, object] | None,
    status: int,
    param: str,
) -> None:
    project_id = _project(admin, org="bad-input")
    if body is not None and "project_id" not in body and path == "/keys":
        body = body | {"project_id": project_id}
    before = _ok(admin.http.get("/keys"))["data"]
    response = admin.http.request(method, path, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["message"]
    assert _ok(admin.http.get("/keys"))["data"] == before


def test_duplicate_names_conflict(admin: Admin) -> None:
    _ok(admin.http.post("/organizations", json={"name": "dupe"}))
    response = admin.http.post("/organizations", json={"name": "dupe"})
    assert response.status_code == 409


@pytest.mark.parametrize("header", [None, "Bearer hr-admin-short", "Bearer sk-hr-x", "Basic x"])
def test_admin_endpoints_need_an_admin_key(admin: Admin, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = httpx.get(f"{admin.base_url}/admin/v1/organizations", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_a_project_key_is_not_an_admin_key(admin: Admin) -> None:
    response = httpx.get(
        f"{admin.base_url}/admin/v1/organizations",
        headers={"Authorization": f"Bearer {admin.api_key}"},
    )
    assert response.status_code == 401


def test_limits_for_one_model(admin: Admin) -> None:
    project_id = _project(admin)
    key = _ok(admin.http.post("/keys", json={"project_id": project_id, "name": "m"}))
    path = f"/limits/key/{key['id']}"
    other = _ok(admin.http.put(path, params={"model": "other"}, json={"requests_per_minute": 1}))
    assert other["model"] == "other"
    client = admin.sdk(str(key["value"]))
    for _ in range(2):  # a limit on another model does not touch this one
        client.chat.completions.create(model=MODEL, messages=ASK)
    _ok(admin.http.put(path, params={"model": MODEL}, json={"requests_per_minute": 1}))
    client.chat.completions.create(model=MODEL, messages=ASK)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=MODEL, messages=ASK)
    assert MODEL in info.value.message
    assert _ok(admin.http.get(path))["model"] is None  # the all-models limits: none set
    assert _ok(admin.http.get(path, params={"model": MODEL}))["requests_per_minute"] == 1


def test_a_projects_tier_reaches_its_keys(admin: Admin) -> None:
    project_id = _project(admin)
    assert _ok(admin.http.get("/projects"))["data"][-1]["tier"] == "standard"  # type: ignore[index]
    moved = _ok(admin.http.post(f"/projects/{project_id}", json={"tier": "premium"}))
    assert moved["tier"] == "premium"
    bad = admin.http.post(f"/projects/{project_id}", json={"tier": "x" * 33})
    assert bad.status_code == 400
    listed = _ok(admin.http.get("/projects"))["data"]
    assert {p["id"]: p["tier"] for p in listed}[project_id] == "premium"  # type: ignore[index]
