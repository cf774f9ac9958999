"""Encryption at rest, end to end: with `HEADRACE_ENCRYPTION_KEY` set, content created
through the API (conversations, stored responses, review items) is nowhere in the database
file as plaintext, reads back intact, and survives a key rotation."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import openai
import pytest
from typer.testing import CliRunner

from headrace.api.app import create_app
from headrace.cli.main import app as cli
from headrace.config import Settings
from headrace.storage.encryption import key_id, new_key_text, parse_key
from tests.api.test_audit import admin_server
from tests.api.test_review import flag
from tests.conftest import serving
from tests.fakes import FakeEngine, fake_registry

MODEL = "headrace-tiny-chat"
SECRET = "the launch code is ZEBRA-7741"


def _database_text(data_dir: Path) -> str:
    """Every row of every table, read from the file directly, as one string."""
    conn = sqlite3.connect(data_dir / "headrace.db")
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def _create_content(settings: Settings, client: openai.OpenAI) -> tuple[str, str]:
    conversation = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": SECRET}]
    )
    response = client.responses.create(model=MODEL, input=f"Remember: {SECRET}")
    flag(settings, SECRET)
    return conversation.id, response.id


def _read_back(client: openai.OpenAI, conversation_id: str, response_id: str) -> str:
    items = list(client.conversations.items.list(conversation_id))
    inputs = list(client.responses.input_items.list(response_id))
    return str([i.model_dump() for i in items + inputs])


def test_no_plaintext_in_the_database_and_rotation_keeps_it_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = new_key_text()
    monkeypatch.setenv("HEADRACE_ENCRYPTION_KEY", old)
    monkeypatch.setenv("HEADRACE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HEADRACE_CONFIG", raising=False)
    settings = Settings()
    with admin_server(settings) as server:
        client = openai.OpenAI(
            base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0
        )
        admin_headers, api_key = dict(server.http.headers), server.api_key
        conversation_id, response_id = _create_content(settings, client)
        assert SECRET in _read_back(client, conversation_id, response_id)
        [item] = server.http.get("/review-items").json()["data"]
        assert item["content"] == SECRET
    stored = _database_text(tmp_path)
    assert "ZEBRA-7741" not in stored
    assert f"enc:v1:{key_id(parse_key(old))}:" in stored

    # Rotate: the new key seals, the old one still opens; re-seal; then drop the old key.
    new = new_key_text()
    monkeypatch.setenv("HEADRACE_ENCRYPTION_KEY", new)
    monkeypatch.setenv("HEADRACE_ENCRYPTION_OLD_KEYS", f'["{old}"]')
    rotated = CliRunner().invoke(cli, ["encryption", "rotate", "--batch", "2"])
    assert rotated.exit_code == 0, rotated.output
    assert "review_items.content: 1 re-sealed" in rotated.stdout
    stored = _database_text(tmp_path)
    assert f"enc:v1:{key_id(parse_key(old))}:" not in stored
    assert "ZEBRA-7741" not in stored

    monkeypatch.delenv("HEADRACE_ENCRYPTION_OLD_KEYS")
    settings = Settings()
    with serving(create_app(settings, fake_registry(FakeEngine()))) as base_url:
        client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=api_key, max_retries=0)
        assert SECRET in _read_back(client, conversation_id, response_id)
        review = httpx.get(f"{base_url}/admin/v1/review-items", headers=admin_headers)
        assert review.json()["data"][0]["content"] == SECRET
    again = CliRunner().invoke(cli, ["encryption", "rotate"])
    assert "done: 0 value(s)" in again.stdout  # nothing left to re-seal


def test_new_key_prints_a_usable_key() -> None:
    result = CliRunner().invoke(cli, ["encryption", "new-key"])
    assert result.exit_code == 0
    key = result.stdout.strip().splitlines()[0]
    assert len(parse_key(key)) == 32


def test_rotate_without_a_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HEADRACE_ENCRYPTION_KEY", raising=False)
    monkeypatch.delenv("HEADRACE_CONFIG", raising=False)
    result = CliRunner().invoke(cli, ["encryption", "rotate"])
    assert result.exit_code == 2


def test_a_malformed_key_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_ENCRYPTION_KEY", "too-short")
    with pytest.raises(ValueError, match="URL-safe base64") as refused:
        Settings()
    assert "too-short" not in str(refused.value)  # a secret is never echoed
