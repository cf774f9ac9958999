"""`/v1/files` through the official SDK: upload, list, retrieve, content, delete; purposes,
the size limit, sealing at rest and project isolation."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from headrace.storage.encryption import new_key_text
from tests.batch.harness import BatchServer, batch_server

LIMIT = 4096


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BatchServer]:
    data_dir = tmp_path_factory.mktemp("files")
    with batch_server(
        data_dir, files={"max_bytes": LIMIT}, encryption_key=new_key_text(),
        safety={"enabled": False},
    ) as server:  # fmt: skip
        yield server


def _upload(name: str, data: bytes) -> io.BytesIO:
    f = io.BytesIO(data)
    f.name = name
    return f


def test_upload_list_retrieve_content_delete(srv: BatchServer) -> None:
    client = srv.client()
    data = b'{"a": 1}\n{"b": 2}\n'
    created = client.files.create(file=_upload("in.jsonl", data), purpose="batch")
    assert created.id.startswith("file-")
    assert (created.object, created.bytes, created.filename) == ("file", len(data), "in.jsonl")
    assert (created.purpose, created.status) == ("batch", "processed")
    notes = client.files.create(file=_upload("notes.txt", b"hello"), purpose="user_data")

    assert client.files.retrieve(created.id) == created
    assert client.files.content(created.id).read() == data
    newest_first = client.files.list().data
    assert {created.id, notes.id} <= {f.id for f in newest_first}
    stamps = [f.created_at for f in newest_first]
    assert stamps == sorted(stamps, reverse=True)
    oldest_first = client.files.list(order="asc").data
    assert [f.id for f in oldest_first] == [f.id for f in reversed(newest_first)]
    user_data = client.files.list(purpose="user_data").data
    assert notes.id in [f.id for f in user_data]
    assert {f.purpose for f in user_data} == {"user_data"}

    deleted = client.files.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "file", True)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(created.id)


def test_stored_bytes_are_sealed_on_disk(srv: BatchServer) -> None:
    secret = b"the launch code is 0000"
    created = srv.client().files.create(file=_upload("s.txt", secret), purpose="user_data")
    on_disk = (srv.settings.files_dir / created.id).read_bytes()
    assert secret not in on_disk
    assert b"hrenc:v1:" in on_disk
    assert srv.client().files.content(created.id).read() == secret


def test_other_projects_get_404_for_every_file_id(srv: BatchServer) -> None:
    created = srv.client().files.create(file=_upload("a.txt", b"mine"), purpose="user_data")
    other = srv.client("other")
    for call in (other.files.retrieve, other.files.content, other.files.delete):
        with pytest.raises(openai.NotFoundError) as caught:
            call(created.id)
        assert f"No such File object: {created.id}" in caught.value.message
    assert created.id not in [f.id for f in other.files.list().data]
    assert srv.client().files.retrieve(created.id).id == created.id


def test_unsupported_purpose_and_missing_fields_are_400(srv: BatchServer) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        srv.client().files.create(file=_upload("a.txt", b"x"), purpose="fine-tune")
    assert caught.value.body["param"] == "purpose"  # type: ignore[index]
    assert "'batch', 'user_data'" in caught.value.message
    headers = {"Authorization": f"Bearer {srv.keys['default']}"}
    url = f"{srv.base_url}/v1/files"
    missing_file = httpx.post(url, headers=headers, data={"purpose": "batch"})
    assert missing_file.status_code == 400
    assert missing_file.json()["error"]["param"] == "file"
    missing_purpose = httpx.post(url, headers=headers, files={"file": ("a", b"x")})
    assert missing_purpose.json()["error"]["param"] == "purpose"


def test_a_file_over_the_limit_is_413_and_leaves_nothing(srv: BatchServer) -> None:
    client = srv.client()
    before = {f.id for f in client.files.list().data}
    with pytest.raises(openai.APIStatusError) as caught:
        client.files.create(file=_upload("big.bin", b"x" * (LIMIT + 1)), purpose="batch")
    assert caught.value.status_code == 413
    assert f"the limit is {LIMIT} bytes" in caught.value.message
    # Far past the limit, the receive stage refuses it before the route reads it.
    with pytest.raises(openai.APIStatusError) as caught:
        client.files.create(file=_upload("huge.bin", b"x" * (200 * 1024)), purpose="batch")
    assert caught.value.status_code == 413
    assert {f.id for f in client.files.list().data} == before
    leftovers = [p for p in Path(srv.settings.files_dir).iterdir() if p.name.endswith(".part")]
    assert leftovers == []
    exact = client.files.create(file=_upload("ok.bin", b"x" * LIMIT), purpose="batch")
    assert exact.bytes == LIMIT


def test_a_file_expires_after_the_seconds_asked_for(srv: BatchServer) -> None:
    client = srv.client()
    kept = client.files.create(file=_upload("kept.txt", b"k"), purpose="user_data")
    assert kept.expires_at is None
    brief = client.files.create(
        file=_upload("brief.txt", b"b"),
        purpose="user_data",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert brief.expires_at == brief.created_at + 3600
    assert client.files.retrieve(brief.id).expires_at == brief.expires_at

    files = srv.app.state.headrace.files
    worker = srv.worker
    assert worker.loop is not None
    files._clock = lambda: brief.created_at + 3600.0  # an hour on: expired
    try:
        for call in (client.files.retrieve, client.files.content, client.files.delete):
            with pytest.raises(openai.NotFoundError):
                call(brief.id)
        listed = [f.id for f in client.files.list().data]
        assert brief.id not in listed
        assert kept.id in listed
        assert (srv.settings.files_dir / brief.id).exists()  # until the purge runs
        purged = asyncio.run_coroutine_threadsafe(files.purge_expired(), worker.loop).result(30)
        assert purged == 1
        assert not (srv.settings.files_dir / brief.id).exists()
        assert client.files.retrieve(kept.id).id == kept.id
    finally:
        files._clock = time.time


@pytest.mark.parametrize(
    "fields",
    [
        {"expires_after[anchor]": "created_at", "expires_after[seconds]": "59"},
        {"expires_after[anchor]": "created_at", "expires_after[seconds]": "2592001"},
        {"expires_after[anchor]": "created_at", "expires_after[seconds]": "soon"},
        {"expires_after[anchor]": "last_active_at", "expires_after[seconds]": "3600"},
        {"expires_after[seconds]": "3600"},
    ],
)
def test_a_bad_expiry_is_400_and_stores_nothing(srv: BatchServer, fields: dict[str, str]) -> None:
    before = {f.id for f in srv.client().files.list().data}
    response = httpx.post(
        f"{srv.base_url}/v1/files",
        headers={"Authorization": f"Bearer {srv.keys['default']}"},
        data={"purpose": "user_data", **fields},
        files={"file": ("a.txt", b"x")},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "expires_after"
    assert {f.id for f in srv.client().files.list().data} == before
