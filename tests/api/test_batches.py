"""`/v1/batches` through the official SDK, end to end: the worker runs each line through the
gateway's own pipeline (validation, limits, metering, engine) at batch priority."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from sqlalchemy import select

from headrace.config import Settings
from headrace.engine.interface import GenerationEvent, GenerationRequest
from headrace.storage.database import Database
from headrace.storage.schema import UsageEventRow
from tests.batch.harness import BatchServer, batch_server, chat_line, jsonl
from tests.fakes import FAKE_MODEL, FakeEngine

CHAT = "/v1/chat/completions"


class RecordingEngine(FakeEngine):
    """Remembers each request's priority; `gate` holds requests after their first token."""

    def __init__(self) -> None:
        super().__init__(reply_tokens=3)
        self.priorities: list[int] = []

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        self.priorities.append(request.priority)
        async for event in super().generate(request):
            yield event


@pytest.fixture(scope="module")
def engine() -> RecordingEngine:
    return RecordingEngine()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, engine: RecordingEngine) -> Iterator[BatchServer]:
    with batch_server(tmp_path_factory.mktemp("batches"), engine, safety={"enabled": False}) as s:
        yield s


def _submit(srv: BatchServer, lines: list[dict[str, Any]], endpoint: str = CHAT) -> str:
    client = srv.client()
    source = client.files.create(file=jsonl(lines), purpose="batch")
    batch = client.batches.create(
        input_file_id=source.id, endpoint=endpoint, completion_window="24h",  # type: ignore[arg-type]
        metadata={"job": "nightly"},
    )  # fmt: skip
    assert (batch.status, batch.object, batch.metadata) == (
        "validating",
        "batch",
        {"job": "nightly"},
    )
    return batch.id


def _lines(srv: BatchServer, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [json.loads(x) for x in srv.client().files.content(file_id).text.splitlines()]


def _usage_ids(settings: Settings, batch_id: str) -> list[str]:
    async def read() -> list[str]:
        db = Database(settings.effective_database_url)
        async with db.session() as session:
            ids = list(await session.scalars(select(UsageEventRow.request_id)))
        await db.close()
        return [i for i in ids if batch_id in i]

    return asyncio.run(read())


def test_a_chat_batch_completes_through_the_pipeline(
    srv: BatchServer, engine: RecordingEngine
) -> None:
    engine.priorities.clear()
    bad = chat_line("bad", max_tokens=-1)  # the route's own validation refuses it
    batch_id = _submit(srv, [chat_line("a"), bad, chat_line("c", "Bye")])
    srv.settle()
    batch = srv.client().batches.retrieve(batch_id)
    assert batch.status == "completed"
    assert batch.model == FAKE_MODEL
    assert batch.request_counts is not None
    assert batch.request_counts.model_dump() == {"total": 3, "completed": 2, "failed": 1}
    assert batch.in_progress_at
    assert batch.finalizing_at
    assert batch.completed_at
    assert batch.usage is not None
    assert batch.usage.output_tokens == 6
    assert engine.priorities == [1, 1]  # batch priority, behind interactive requests

    output = _lines(srv, batch.output_file_id)
    assert [o["custom_id"] for o in output] == ["a", "c"]
    first = output[0]
    assert first["error"] is None
    assert first["response"]["status_code"] == 200
    assert first["response"]["body"]["object"] == "chat.completion"
    assert first["response"]["body"]["choices"][0]["message"]["content"] == "xxx"
    [error] = _lines(srv, batch.error_file_id)
    assert error["custom_id"] == "bad"
    assert error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"]["param"] == "max_tokens"
    output_file = srv.client().files.retrieve(batch.output_file_id or "")
    assert output_file.purpose == "batch_output"
    # One usage event per line that did work, keyed by the line: never counted twice.
    assert sorted(_usage_ids(srv.settings, batch_id)) == [
        f"chatcmpl-{batch_id}-0", f"chatcmpl-{batch_id}-2",
    ]  # fmt: skip


def test_completions_batches_run_too(srv: BatchServer) -> None:
    line = {"custom_id": "p", "method": "POST", "url": "/v1/completions",
            "body": {"model": FAKE_MODEL, "prompt": "Once", "max_tokens": 2}}  # fmt: skip
    batch_id = _submit(srv, [line], endpoint="/v1/completions")
    srv.settle()
    batch = srv.client().batches.retrieve(batch_id)
    assert batch.status == "completed"
    [out] = _lines(srv, batch.output_file_id)
    assert out["response"]["body"]["object"] == "text_completion"
    assert out["response"]["body"]["id"] == f"cmpl-{batch_id}-0"


def test_output_files_expire_as_the_batch_asked(srv: BatchServer) -> None:
    client = srv.client()
    source = client.files.create(file=jsonl([chat_line("a")]), purpose="batch")
    policy = {"anchor": "created_at", "seconds": 7200}
    batch = client.batches.create(
        input_file_id=source.id, endpoint=CHAT, completion_window="24h",
        output_expires_after=policy,  # type: ignore[arg-type]
    )  # fmt: skip
    srv.settle()
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed"
    assert done.output_file_id is not None
    output = client.files.retrieve(done.output_file_id)
    assert output.expires_at == output.created_at + 7200
    assert source.expires_at is None  # the input keeps its own policy
    for bad in ({"anchor": "created_at", "seconds": 60}, {"anchor": "x", "seconds": 7200}, {}):
        with pytest.raises(openai.BadRequestError) as caught:
            client.batches.create(
                input_file_id=source.id, endpoint=CHAT, completion_window="24h",
                output_expires_after=bad,  # type: ignore[arg-type]
            )  # fmt: skip
        assert caught.value.body["param"] == "output_expires_after"  # type: ignore[index]


def test_a_bad_file_fails_the_batch_with_its_errors(srv: BatchServer) -> None:
    lines = [chat_line("a"), chat_line("a"), chat_line("b") | {"method": "GET"}]
    batch_id = _submit(srv, lines)
    srv.settle()
    batch = srv.client().batches.retrieve(batch_id)
    assert batch.status == "failed"
    assert batch.failed_at
    assert batch.errors is not None
    assert batch.errors.data is not None
    assert [(e.code, e.line, e.param) for e in batch.errors.data] == [
        ("duplicate_custom_id", 2, "custom_id"), ("invalid_method", 3, "method"),
    ]  # fmt: skip


def test_what_is_checkable_up_front_is_a_400(srv: BatchServer) -> None:
    client = srv.client()
    source = client.files.create(file=jsonl([chat_line("a")]), purpose="batch")
    notes = client.files.create(file=jsonl([chat_line("a")]), purpose="user_data")
    create = client.batches.create
    with pytest.raises(openai.BadRequestError) as caught:
        create(input_file_id=source.id, endpoint="/v1/moderations", completion_window="24h")
    assert caught.value.body["param"] == "endpoint"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as caught:
        create(input_file_id=source.id, endpoint=CHAT, completion_window="1h")  # type: ignore[arg-type]
    assert caught.value.body["param"] == "completion_window"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as caught:
        create(input_file_id=notes.id, endpoint=CHAT, completion_window="24h")
    assert "purpose 'batch'" in caught.value.message
    with pytest.raises(openai.NotFoundError):
        create(input_file_id="file-nope", endpoint=CHAT, completion_window="24h")
    with pytest.raises(openai.BadRequestError):
        create(input_file_id=source.id, endpoint=CHAT, completion_window="24h",
               metadata={"k" * 65: "v"})  # fmt: skip


def test_cancel_skips_what_has_not_started(srv: BatchServer, engine: RecordingEngine) -> None:
    gate = asyncio.Event()
    worker = srv.worker
    assert worker.loop is not None
    engine.gate = gate  # every line holds after its first token
    try:
        batch_id = _submit(srv, [chat_line(f"l{i}") for i in range(12)])
        cancelling = srv.client().batches.cancel(batch_id)
        assert cancelling.status == "cancelling"
        assert cancelling.cancelling_at
    finally:
        engine.gate = None
        worker.loop.call_soon_threadsafe(gate.set)
    srv.settle()
    batch = srv.client().batches.retrieve(batch_id)
    assert batch.status == "cancelled"
    assert batch.cancelled_at
    assert batch.request_counts is not None
    finished = batch.request_counts.completed
    assert finished < 12  # cancelled while validating or with lines in flight
    done = _lines(srv, batch.output_file_id) if finished else []
    assert len(done) == finished
    completed = _submit(srv, [chat_line("x")])
    srv.settle()
    with pytest.raises(openai.ConflictError):
        srv.client().batches.cancel(completed)


def test_list_pages_newest_first(srv: BatchServer) -> None:
    ids = {_submit(srv, [chat_line("a")]) for _ in range(3)}
    srv.settle()
    client = srv.client()
    seen = []
    page = client.batches.list(limit=2)
    while True:
        assert page.object == "list"
        assert len(page.data) <= 2
        seen.extend(page.data)
        if not page.has_more:
            break
        page = client.batches.list(limit=2, after=page.data[-1].id)
    assert ids <= {b.id for b in seen}
    assert len(seen) == len({b.id for b in seen})
    created = [b.created_at for b in seen]
    assert created == sorted(created, reverse=True)


def test_other_projects_get_404_for_every_batch_id(srv: BatchServer) -> None:
    batch_id = _submit(srv, [chat_line("a")])
    srv.settle()
    other = srv.client("other")
    with pytest.raises(openai.NotFoundError):
        other.batches.retrieve(batch_id)
    with pytest.raises(openai.NotFoundError):
        other.batches.cancel(batch_id)
    assert batch_id not in [b.id for b in other.batches.list().data]
    mine = srv.client().batches.retrieve(batch_id)
    with pytest.raises(openai.NotFoundError):
        other.files.content(mine.output_file_id or "")
    source = srv.client().files.create(file=jsonl([chat_line("a")]), purpose="batch")
    with pytest.raises(openai.NotFoundError):  # another project's file cannot feed a batch
        other.batches.create(input_file_id=source.id, endpoint=CHAT, completion_window="24h")


def test_embeddings_batches_on_the_bundled_models(tmp_path: Path, registry: Any) -> None:
    from headrace.api.app import create_app
    from tests.batch.harness import make_keys
    from tests.conftest import serving

    settings = Settings(data_dir=tmp_path, log_level="warning", safety={"enabled": False})
    key = make_keys(settings, ("default",))["default"]
    app = create_app(settings, registry)
    with serving(app) as base_url:
        srv = BatchServer(app, base_url, {"default": key}, settings)
        line = {"custom_id": "e", "method": "POST", "url": "/v1/embeddings",
                "body": {"model": "headrace-embed-minilm", "input": ["a", "b"]}}  # fmt: skip
        batch_id = _submit(srv, [line], endpoint="/v1/embeddings")
        srv.settle()
        batch = srv.client().batches.retrieve(batch_id)
        assert batch.status == "completed"
        [out] = _lines(srv, batch.output_file_id)
        body = out["response"]["body"]
        assert len(body["data"]) == 2
        assert len(body["data"][0]["embedding"]) == 384
        assert body["usage"]["prompt_tokens"] > 0


def test_every_shape_matches_the_openapi_reference(srv: BatchServer) -> None:
    from tests.api.test_contract import REFERENCE, Contract

    if not REFERENCE.exists():
        pytest.skip("no reference OpenAPI file")
    contract = Contract(REFERENCE)
    http = srv.client()._client  # the SDK's own httpx client: raw JSON, as served
    headers = {"Authorization": f"Bearer {srv.keys['default']}"}
    base = f"{srv.base_url}/v1"
    upload = http.post(
        f"{base}/files",
        headers=headers,
        files={"file": ("in.jsonl", jsonl([chat_line("a")]).getvalue())},
        data={"purpose": "batch"},
    ).json()
    contract.check(upload, "OpenAIFile")
    contract.check(http.get(f"{base}/files", headers=headers).json(), "ListFilesResponse")
    body = {"input_file_id": upload["id"], "endpoint": CHAT, "completion_window": "24h"}
    created = http.post(f"{base}/batches", headers=headers, json=body).json()
    contract.check(created, "Batch")
    srv.settle()
    done = http.get(f"{base}/batches/{created['id']}", headers=headers).json()
    assert done["status"] == "completed"
    contract.check(done, "Batch")
    bad = srv.client().files.create(file=jsonl([{"custom_id": "x"}]), purpose="batch")
    failed = http.post(
        f"{base}/batches", headers=headers, json=body | {"input_file_id": bad.id}
    ).json()
    srv.settle()
    failed = http.get(f"{base}/batches/{failed['id']}", headers=headers).json()
    assert failed["status"] == "failed"
    contract.check(failed, "Batch")
    contract.check(http.get(f"{base}/batches", headers=headers).json(), "ListBatchesResponse")
    deleted = http.delete(f"{base}/files/{upload['id']}", headers=headers).json()
    contract.check(deleted, "DeleteFileResponse")
