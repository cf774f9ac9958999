"""`/v1/responses` through the official SDK: create, retrieve, delete, input items, chains,
streaming with its exact event sequence, tools, structured output, prompts, and refusals.
Every body served is checked against the reference OpenAPI schemas."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from sqlalchemy import text

from headrace.storage.database import Database
from tests.api import stateful
from tests.api.stateful import MODEL, Gateway
from tests.api.test_contract import REFERENCE, Contract

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}

gateway = stateful.gateway  # the module-scoped fixture of the stateful gateway


@pytest.fixture(scope="module")
def contract() -> Contract:
    if not REFERENCE.exists():
        pytest.skip("no reference OpenAPI file")
    return Contract(REFERENCE)


@pytest.fixture
def engine(gateway: Gateway) -> Iterator[Any]:
    gateway.engine.reply = None
    gateway.engine.prompts.clear()
    yield gateway.engine
    gateway.engine.reply = None


def _sse(body: str) -> list[dict[str, Any]]:
    """The events of an SSE body, each with its `event:` name checked against its type."""
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        data = json.loads(lines["data"])
        assert lines["event"] == data["type"]
        events.append(data)
    return events


def test_create_retrieve_and_delete(gateway: Gateway, contract: Contract, engine: Any) -> None:
    client = gateway.sdk()
    created = client.responses.create(
        model=MODEL, input="Hello", instructions="Be brief.", metadata={"run": "1"}
    )
    assert created.status == "completed"
    assert created.output_text == "xxx"
    assert created.instructions == "Be brief."
    assert created.metadata == {"run": "1"}
    assert created.usage is not None
    assert created.usage.output_tokens == 3
    assert created.usage.total_tokens == created.usage.input_tokens + 3
    assert client.responses.retrieve(created.id).output_text == "xxx"
    raw = gateway.http().get(f"/v1/responses/{created.id}").json()
    contract.check(raw, "Response")
    items = client.responses.input_items.list(created.id)
    assert [i.type for i in items.data] == ["message"]
    contract.check(
        gateway.http().get(f"/v1/responses/{created.id}/input_items").json(), "ResponseItemList"
    )
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)


def test_item_list_input_and_input_items_paging(gateway: Gateway, engine: Any) -> None:
    client = gateway.sdk()
    created = client.responses.create(
        model=MODEL,
        input=[
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {"type": "message", "role": "assistant", "content": "Bonjour"},
            {"role": "user", "content": "Again"},
        ],
    )
    listed = client.responses.input_items.list(created.id, order="asc", limit=2)
    assert listed.has_more
    everything = list(client.responses.input_items.list(created.id, order="asc", limit=2))
    assert [i.role for i in everything] == ["developer", "user", "assistant", "user"]  # type: ignore[union-attr]
    newest_first = client.responses.input_items.list(created.id)
    assert [i.id for i in newest_first.data] == [i.id for i in reversed(everything)]


def test_previous_response_id_carries_the_history(gateway: Gateway, engine: Any) -> None:
    client = gateway.sdk()
    first = client.responses.create(model=MODEL, input="My name is Ada.", instructions="Hi.")
    second = client.responses.create(
        model=MODEL, input="What is my name?", previous_response_id=first.id
    )
    first_prompt, second_prompt = engine.prompts
    # The follow-up's prompt starts with the first turn (instructions are not carried over).
    alone = client.responses.create(model=MODEL, input="What is my name?")
    assert len(second_prompt) > len(engine.prompts[2])
    assert second.previous_response_id == first.id
    assert second.usage is not None
    assert second.usage.input_tokens == len(second_prompt)
    assert alone.usage is not None
    assert first_prompt != second_prompt


def test_max_output_tokens_makes_an_incomplete_response(gateway: Gateway, engine: Any) -> None:
    engine.reply = "a long answer that goes on"
    cut = gateway.sdk().responses.create(model=MODEL, input="Go on", max_output_tokens=2)
    assert cut.status == "incomplete"
    assert cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens"
    assert cut.output_text == "a long a"[:8]
    assert gateway.sdk().responses.retrieve(cut.id).status == "incomplete"


def test_store_false_keeps_nothing(gateway: Gateway, engine: Any) -> None:
    client = gateway.sdk()
    created = client.responses.create(model=MODEL, input="Forget me", store=False)
    assert created.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, input="and?", previous_response_id=created.id)
    count = asyncio.run(
        _count(gateway, "SELECT count(*) FROM responses WHERE id = :id", created.id)
    )
    assert count == 0
    usage = asyncio.run(
        _count(gateway, "SELECT count(*) FROM usage_events WHERE request_id = :id", created.id)
    )
    assert usage == 1  # usage is kept


def test_stream_sends_the_exact_event_sequence(
    gateway: Gateway, contract: Contract, engine: Any
) -> None:
    engine.reply = "Hello there"
    with gateway.http() as http:
        body = http.post("/v1/responses", json={"model": MODEL, "input": "Hi", "stream": True}).text
    events = _sse(body)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    for event in events:
        contract.check(event, "ResponseStreamEvent")
    assert "".join(e["delta"] for e in events if e["type"].endswith("text.delta")) == "Hello there"
    done = events[-1]["response"]
    assert done["status"] == "completed"
    assert done["output"][0]["content"][0]["text"] == "Hello there"
    assert done["usage"]["output_tokens"] == 3
    assert events[0]["response"]["status"] == "in_progress"
    item_id = events[2]["item"]["id"]
    assert all(e.get("item_id", item_id) == item_id for e in events)
    stored = gateway.sdk().responses.retrieve(done["id"])
    assert stored.output_text == "Hello there"


def test_stream_through_the_sdk(gateway: Gateway, engine: Any) -> None:
    with gateway.sdk().responses.stream(model=MODEL, input="Hi") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert final.output_text == "xxx"


def test_a_failed_generation_streams_response_failed(gateway: Gateway, engine: Any) -> None:
    engine.fail_after = 1
    try:
        with gateway.http() as http:
            body = http.post(
                "/v1/responses", json={"model": MODEL, "input": "Hi", "stream": True}
            ).text
    finally:
        engine.fail_after = None
    events = _sse(body)
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["error"]["code"] == "server_error"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_a_failed_generation_is_a_500_and_stored_as_failed(gateway: Gateway, engine: Any) -> None:
    failed_rows = "SELECT count(*) FROM responses WHERE status = :id"
    before = asyncio.run(_count(gateway, failed_rows, "failed"))
    engine.fail_after = 1
    try:
        with gateway.http() as http:
            failed = http.post(
                "/v1/responses", json={"model": MODEL, "input": "Hi", "metadata": {"t": "fail"}}
            )
    finally:
        engine.fail_after = None
    assert failed.status_code == 500
    assert failed.json()["error"]["message"]
    stored = asyncio.run(_count(gateway, failed_rows, "failed"))
    assert stored == before + 1  # kept, retrievable, as `failed`


def test_tool_calls_become_function_call_items(
    gateway: Gateway, contract: Contract, engine: Any
) -> None:
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    engine.reply = call
    client = gateway.sdk()
    created = client.responses.create(model=MODEL, input="Weather in Paris?", tools=[WEATHER])  # type: ignore[list-item]
    [item] = created.output
    assert item.type == "function_call"
    assert item.name == "get_weather"
    assert json.loads(item.arguments) == {"city": "Paris"}
    # The tool's result goes back as the next input; the call and result are in the history.
    engine.reply = None
    follow = client.responses.create(
        model=MODEL,
        previous_response_id=created.id,
        input=[{"type": "function_call_output", "call_id": item.call_id, "output": "sunny"}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert follow.output_text == "xxx"
    engine.reply = call
    with gateway.http() as http:
        body = http.post(
            "/v1/responses",
            json={"model": MODEL, "input": "Weather?", "tools": [WEATHER], "stream": True},
        ).text
    events = _sse(body)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    for event in events:
        contract.check(event, "ResponseStreamEvent")


def test_text_format_json_schema(gateway: Gateway, engine: Any) -> None:
    engine.reply = '{"ok": true}'
    fmt = {
        "type": "json_schema",
        "name": "answer",
        "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
    }
    created = gateway.sdk().responses.create(model=MODEL, input="ok?", text={"format": fmt})  # type: ignore[typeddict-item]
    assert json.loads(created.output_text) == {"ok": True}
    assert created.text is not None
    assert created.text.format is not None
    assert created.text.format.type == "json_schema"
    with pytest.raises(openai.BadRequestError):
        gateway.sdk().responses.create(model=MODEL, input="ok?", text={"format": {"type": "yaml"}})  # type: ignore[typeddict-item]


def test_a_registry_prompt_is_used_and_recorded(gateway: Gateway, engine: Any) -> None:
    made = gateway.admin.post(
        "/prompts", json={"name": "greeter", "instructions": "Greet {{who}}."}
    )
    assert made.status_code == 200, made.text
    prompt_id = made.json()["id"]
    v2 = gateway.admin.post(
        f"/prompts/{prompt_id}/versions", json={"instructions": "Wave at {{who}}."}
    )
    assert v2.json()["version"] == 2
    client = gateway.sdk()
    created = client.responses.create(
        model=MODEL, input="Hi", prompt={"id": prompt_id, "variables": {"who": "Ada"}}
    )
    assert created.instructions == "Greet Ada."  # version 1 is current until promoted
    assert created.prompt is not None
    assert (created.prompt.id, created.prompt.version) == (prompt_id, "1")
    gateway.admin.post(f"/prompts/{prompt_id}/promote", json={"version": 2})
    pinned = client.responses.create(
        model=MODEL,
        input="Hi",
        prompt={"id": prompt_id, "version": "2", "variables": {"who": "Bo"}},
    )
    assert pinned.instructions == "Wave at Bo."
    row = asyncio.run(_usage_prompt(gateway, pinned.id))
    assert row == (prompt_id, 2)
    for bad, status in (
        ({"id": prompt_id, "variables": {}}, 400),  # a placeholder without a value
        ({"id": prompt_id, "variables": {"who": "x", "extra": "y"}}, 400),
        ({"id": prompt_id, "version": "9", "variables": {"who": "x"}}, 404),
        ({"id": "pmpt_nope"}, 404),
    ):
        with pytest.raises(openai.APIStatusError) as refused:
            client.responses.create(model=MODEL, input="Hi", prompt=bad)  # type: ignore[arg-type]
        assert refused.value.status_code == status


def test_prompt_versions_cannot_be_changed(gateway: Gateway) -> None:
    made = gateway.admin.post("/prompts", json={"name": "fixed", "instructions": "One."}).json()
    listed = gateway.admin.get(f"/prompts/{made['id']}").json()["data"]
    assert [(v["version"], v["instructions"], v["current"]) for v in listed] == [(1, "One.", True)]
    assert (
        gateway.admin.put(f"/prompts/{made['id']}", json={"instructions": "Two."}).status_code
        == 405
    )
    again = gateway.admin.post("/prompts", json={"name": "fixed", "instructions": "Two."})
    assert again.status_code == 400
    assert (
        gateway.admin.post(f"/prompts/{made['id']}/promote", json={"version": 5}).status_code == 404
    )
    names = [p["name"] for p in gateway.admin.get("/prompts").json()["data"]]
    assert "fixed" in names
    assert gateway.http().get("/admin/v1/prompts").status_code == 401  # a project key


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"previous_response_id": "resp_nope"}, 404, "previous_response_id"),
        ({"conversation": "conv_nope"}, 404, "conversation"),
        ({"previous_response_id": "resp_x", "conversation": "conv_x"}, 400, "conversation"),
        ({"input": [{"type": "image_generation_call"}]}, 400, "input[0].type"),
        ({"input": [{"role": "robot", "content": "hi"}]}, 400, "input[0].role"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            400,
            "input[0].content[0]",
        ),
        ({"input": [{"type": "function_call", "name": "f"}]}, 400, "input[0].call_id"),
        ({"input": ["text"]}, 400, "input[0]"),
        ({"input": []}, 400, "input"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, 400, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, 400, None),
        ({"metadata": {"k": "v" * 513}}, 400, "metadata.k"),
        ({"reasoning": {"effort": "high"}}, 400, "reasoning"),
        ({"truncation": "sometimes"}, 400, "truncation"),
        ({"tools": [{"type": "web_search"}]}, 400, "tools[0].type"),
        ({"stream_options": {"include_obfuscation": False}}, 400, "stream_options"),
        ({"colour": "red"}, 400, "colour"),
    ],
)
def test_bad_input_is_a_clear_4xx(
    gateway: Gateway, body: dict[str, Any], status: int, param: str | None
) -> None:
    with gateway.http() as http:
        response = http.post("/v1/responses", json={"model": MODEL, "input": "Hi"} | body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    if param is not None:
        assert error["param"] == param


def test_truncation_auto_drops_old_turns_and_disabled_refuses(
    gateway: Gateway, engine: Any
) -> None:
    client = gateway.sdk()
    long = "word " * 250  # 500 tokens
    conversation = client.conversations.create(
        items=[
            {"type": "message", "role": role, "content": long}
            for _ in range(2)
            for role in ("user", "assistant")
        ]
    )
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=MODEL, input=long, conversation=conversation.id)
    assert refused.value.code == "context_length_exceeded"
    with gateway.http() as http:
        fitted = http.post(
            "/v1/responses",
            json={
                "model": MODEL,
                "input": long,
                "conversation": conversation.id,
                "truncation": "auto",
            },
        )
    assert fitted.status_code == 200, fitted.text
    assert fitted.headers["headrace-truncated-items"] == "2"  # the oldest turn: two items
    assert fitted.json()["truncation"] == "auto"
    assert fitted.json()["usage"]["input_tokens"] < 2048


def test_idempotency_key_replays_a_response(gateway: Gateway, engine: Any) -> None:
    with gateway.http() as http:
        headers = {"Idempotency-Key": "resp-once"}
        first = http.post("/v1/responses", json={"model": MODEL, "input": "Hi"}, headers=headers)
        again = http.post("/v1/responses", json={"model": MODEL, "input": "Hi"}, headers=headers)
    assert first.json()["id"] == again.json()["id"]


async def _count(gateway: Gateway, sql: str, value: str) -> int:
    await asyncio.sleep(0)
    db = Database(gateway.database_url)
    try:
        for _ in range(200):  # the usage ledger writes in the background: poll, no sleep
            async with db.engine.connect() as conn:
                n = int(await conn.scalar(text(sql), {"id": value}) or 0)
            if n or "usage" not in sql:
                return n
            await asyncio.sleep(0.01)
        return 0
    finally:
        await db.close()


async def _usage_prompt(gateway: Gateway, request_id: str) -> tuple[str, int] | None:
    db = Database(gateway.database_url)
    try:
        for _ in range(200):
            async with db.engine.connect() as conn:
                row = (
                    await conn.execute(
                        text(
                            "SELECT prompt_id, prompt_version FROM usage_events "
                            "WHERE request_id = :id AND status = 'ok'"
                        ),
                        {"id": request_id},
                    )
                ).first()
            if row is not None:
                return str(row[0]), int(row[1])
            await asyncio.sleep(0.01)
        return None
    finally:
        await db.close()
