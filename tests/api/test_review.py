"""`/admin/v1/review-items` and `headrace review`: flagged content waits for a verdict,
given once, stored with the item and audited."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from headrace.cli.main import app as cli
from headrace.config import Settings
from headrace.control import review as review_service
from headrace.storage.database import Database
from headrace.storage.review import Flagged, Stage
from headrace.storage.schema import RetentionRow
from tests.api.test_audit import AdminServer, admin_server


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminServer]:
    with admin_server(Settings(data_dir=tmp_path_factory.mktemp("review"))) as server:
        yield server


def flag(
    settings: Settings, content: str, *, project_id: str = "proj_r", stage: Stage = "input"
) -> str:
    """What moderation does when it flags without blocking."""

    async def enqueue() -> str:
        db = Database(settings.effective_database_url)
        try:
            return await review_service.enqueue(
                db,
                settings.content_cipher(),
                Flagged(
                    request_id="chatcmpl-1",
                    org_id="org_r",
                    project_id=project_id,
                    stage=stage,
                    categories=["harassment"],
                    scores={"harassment": 0.61, "violence": 0.1},
                    content=content,
                    api_key_id="key_r",
                    model="headrace-tiny-chat",
                ),
            )
        finally:
            await db.close()

    return asyncio.run(enqueue())


def _ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def test_pending_items_are_listed_and_a_verdict_is_given_once(admin: AdminServer) -> None:
    first = flag(admin.settings, "you are all idiots")
    second = flag(admin.settings, "borderline joke", stage="output")
    pending = _ok(admin.http.get("/review-items", params={"status": "pending"}))
    ids = [i["id"] for i in pending["data"]]
    assert ids[-2:] == [first, second]
    item = pending["data"][-2]
    assert item["content"] == "you are all idiots"
    assert item["categories"] == ["harassment"]
    assert item["scores"]["harassment"] == 0.61

    approved = _ok(admin.http.post(f"/review-items/{first}/approve", json={"note": "banter"}))
    assert approved["status"] == "approved"
    assert approved["note"] == "banter"
    assert str(approved["reviewer"]).startswith("adm_")
    assert approved["decided_at"] is not None
    again = admin.http.post(f"/review-items/{first}/reject")
    assert again.status_code == 409
    rejected = _ok(admin.http.post(f"/review-items/{second}/reject"))  # no body: no note
    assert (rejected["status"], rejected["note"]) == ("rejected", None)

    assert _ok(admin.http.get(f"/review-items/{first}"))["status"] == "approved"
    still = _ok(admin.http.get("/review-items"))["data"]
    assert first not in [i["id"] for i in still]
    done = _ok(admin.http.get("/review-items", params={"status": "approved"}))["data"]
    assert first in [i["id"] for i in done]
    events = _ok(admin.http.get("/audit-events", params={"target_id": first}))["data"]
    [event] = events
    assert event["action"] == "review_item.approve"
    assert event["after"]["note"] == "banter"


def test_paging_and_bad_input(admin: AdminServer) -> None:
    ids = [flag(admin.settings, f"page {i}", project_id="proj_page") for i in range(3)]
    page = _ok(admin.http.get("/review-items", params={"project_id": "proj_page", "limit": 2}))
    assert page["has_more"] is True
    rest = _ok(
        admin.http.get(
            "/review-items", params={"project_id": "proj_page", "after": page["last_id"]}
        )
    )
    assert [i["id"] for i in page["data"] + rest["data"]] == ids
    assert admin.http.get("/review-items", params={"status": "maybe"}).status_code == 400
    assert admin.http.get("/review-items", params={"limit": 0}).status_code == 400
    assert admin.http.post("/review-items/rev_nope/approve").status_code == 404
    long_note = admin.http.post(f"/review-items/{ids[0]}/reject", json={"note": "x" * 3000})
    assert long_note.status_code == 400
    extra = admin.http.post(f"/review-items/{ids[0]}/reject", json={"verdict": "no"})
    assert extra.status_code == 400


def test_no_content_is_kept_for_a_project_with_zero_retention(admin: AdminServer) -> None:
    async def retain_nothing() -> None:
        db = Database(admin.settings.effective_database_url)
        async with db.session.begin() as session:
            session.add(RetentionRow(project_id="proj_zero", days=0, updated_at=0))
        await db.close()

    asyncio.run(retain_nothing())
    item_id = flag(admin.settings, "private words", project_id="proj_zero")
    item = _ok(admin.http.get(f"/review-items/{item_id}"))
    assert item["content"] is None
    assert item["categories"] == ["harassment"]


def test_cli_lists_approves_and_rejects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HEADRACE_CONFIG", raising=False)
    monkeypatch.setattr("getpass.getuser", lambda: "dana")
    settings = Settings(data_dir=tmp_path)
    runner = CliRunner(env={"COLUMNS": "250"})
    assert runner.invoke(cli, ["review", "list"]).exit_code == 0  # migrates an empty store
    a, b = flag(settings, "first flagged"), flag(settings, "second flagged")
    listed = runner.invoke(cli, ["review", "list", "--show-content"])
    assert listed.exit_code == 0, listed.output
    assert a in listed.stdout
    assert "second flagged" in listed.stdout
    assert runner.invoke(cli, ["review", "approve", a, "--note", "ok"]).exit_code == 0
    assert runner.invoke(cli, ["review", "reject", b]).exit_code == 0
    assert runner.invoke(cli, ["review", "reject", b]).exit_code == 2  # already decided
    assert runner.invoke(cli, ["review", "approve", "rev_nope"]).exit_code == 1
    decided = runner.invoke(cli, ["review", "list", "--status", "all"])
    assert "approved" in decided.stdout
    assert "cli:dana" in decided.stdout
    audit = runner.invoke(cli, ["audit", "list", "--action", "review_item.reject"])
    assert b in audit.stdout
