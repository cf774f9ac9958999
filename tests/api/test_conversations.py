"""`/v1/conversations` through the official SDK: the conversation, its items with paging,
responses that append to it, retention, and refusals. Bodies are checked against the
reference OpenAPI schemas."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from headrace.config import Settings
from headrace.control.retention import purge
from headrace.storage.database import Database
from tests.api import stateful
from tests.api.stateful import MODEL, Gateway
from tests.api.test_contract import REFERENCE, Contract

DAY = 86_400

gateway = stateful.gateway  # the module-scoped fixture of the stateful gateway


@pytest.fixture(scope="module")
def contract() -> Contract:
    if not REFERENCE.exists():
        pytest.skip("no reference OpenAPI file")
    return Contract(REFERENCE)


def _user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": text}


def test_create_retrieve_update_delete(gateway: Gateway, contract: Contract) -> None:
    client = gateway.sdk()
    conv = client.conversations.create(items=[_user("Hi")], metadata={"topic": "demo"})  # type: ignore[list-item]
    assert conv.id.startswith("conv_")
    assert conv.metadata == {"topic": "demo"}
    contract.check(
        gateway.http().get(f"/v1/conversations/{conv.id}").json(), "ConversationResource"
    )
    assert client.conversations.retrieve(conv.id).metadata == {"topic": "demo"}
    updated = client.conversations.update(conv.id, metadata={"topic": "other", "n": "2"})
    assert updated.metadata == {"topic": "other", "n": "2"}
    assert client.conversations.retrieve(conv.id).metadata == {"topic": "other", "n": "2"}
    [item] = client.conversations.items.list(conv.id).data
    deleted = client.conversations.delete(conv.id)
    assert deleted.deleted
    assert deleted.id == conv.id
    raw = gateway.http().delete(f"/v1/conversations/{conv.id}")
    assert raw.status_code == 404
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conv.id)
    with pytest.raises(openai.NotFoundError):  # its items went with it
        client.conversations.items.retrieve(item.id, conversation_id=conv.id)


def test_deleted_conversation_shape(gateway: Gateway, contract: Contract) -> None:
    conv = gateway.sdk().conversations.create()
    body = gateway.http().delete(f"/v1/conversations/{conv.id}").json()
    contract.check(body, "DeletedConversationResource")


def test_items_create_list_page_retrieve_delete(gateway: Gateway, contract: Contract) -> None:
    client = gateway.sdk()
    conv = client.conversations.create()
    added = client.conversations.items.create(
        conv.id,
        items=[_user(f"m{i}") for i in range(7)],  # type: ignore[misc]
    )
    assert len(added.data) == 7
    contract.check(
        gateway.http().get(f"/v1/conversations/{conv.id}/items", params={"limit": 3}).json(),
        "ConversationItemList",
    )
    page = client.conversations.items.list(conv.id, limit=3, order="asc")
    assert page.has_more
    assert [i.content[0].text for i in page.data] == ["m0", "m1", "m2"]  # type: ignore[union-attr]
    everything = list(client.conversations.items.list(conv.id, limit=3, order="asc"))
    assert [i.content[0].text for i in everything] == [f"m{i}" for i in range(7)]  # type: ignore[union-attr]
    newest = client.conversations.items.list(conv.id, limit=2)  # default order: desc
    assert [i.content[0].text for i in newest.data] == ["m6", "m5"]  # type: ignore[union-attr]
    after = client.conversations.items.list(conv.id, after=everything[4].id, order="asc")
    assert [i.id for i in after.data] == [everything[5].id, everything[6].id]
    one = client.conversations.items.retrieve(everything[1].id, conversation_id=conv.id)
    assert one.id == everything[1].id
    back = client.conversations.items.delete(everything[1].id, conversation_id=conv.id)
    assert back.id == conv.id
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(everything[1].id, conversation_id=conv.id)
    assert len(list(client.conversations.items.list(conv.id))) == 6
    with gateway.http() as http:
        assert (
            http.get(f"/v1/conversations/{conv.id}/items", params={"after": "msg_nope"}).status_code
            == 404
        )
        assert (
            http.get(f"/v1/conversations/{conv.id}/items", params={"limit": 101}).status_code == 400
        )
        assert (
            http.get(f"/v1/conversations/{conv.id}/items", params={"order": "up"}).status_code
            == 400
        )


def test_responses_in_a_conversation_append_their_items(gateway: Gateway) -> None:
    client = gateway.sdk()
    conv = client.conversations.create(items=[_user("I am Ada.")])  # type: ignore[list-item]
    gateway.engine.prompts.clear()
    first = client.responses.create(model=MODEL, input="Hello", conversation=conv.id)
    assert first.conversation is not None
    assert first.conversation.id == conv.id
    second = client.responses.create(model=MODEL, input="Again", conversation={"id": conv.id})
    items = list(client.conversations.items.list(conv.id, order="asc"))
    assert [(i.role, i.content[0].text) for i in items] == [  # type: ignore[union-attr]
        ("user", "I am Ada."),
        ("user", "Hello"),
        ("assistant", "xxx"),
        ("user", "Again"),
        ("assistant", "xxx"),
    ]
    assert second.output[0].id == items[-1].id
    # Each turn's prompt extends the previous one: the prefix cache can reuse all of it.
    one, two = gateway.engine.prompts
    assert two[: len(one)] == one


def test_bad_conversation_input_is_a_clear_4xx(gateway: Gateway) -> None:
    cases: list[tuple[str, str, dict[str, Any], int, str | None]] = [
        (
            "post",
            "/v1/conversations",
            {"metadata": {f"k{i}": "v" for i in range(17)}},
            400,
            "metadata",
        ),
        ("post", "/v1/conversations", {"metadata": {"k": "v" * 513}}, 400, "metadata.k"),
        ("post", "/v1/conversations", {"items": [{"type": "reasoning"}]}, 400, "items[0].type"),
        ("post", "/v1/conversations", {"items": [_user("x")] * 21}, 400, "items"),
        ("post", "/v1/conversations", {"items": "hello"}, 400, "items"),
        ("post", "/v1/conversations/conv_nope", {"metadata": {}}, 404, "conversation_id"),
        (
            "post",
            "/v1/conversations/conv_nope/items",
            {"items": [_user("x")]},
            404,
            "conversation_id",
        ),
        ("get", "/v1/conversations/conv_nope/items", {}, 404, "conversation_id"),
    ]
    with gateway.http() as http:
        for method, path, body, status, param in cases:
            response = http.request(method, path, json=body if method == "post" else None)
            assert response.status_code == status, (path, body, response.text)
            assert response.json()["error"]["param"] == param, (path, body)
        conv = http.post("/v1/conversations", json={}).json()
        empty = http.post(f"/v1/conversations/{conv['id']}/items", json={"items": []})
        assert empty.status_code == 400
        missing = http.get(f"/v1/conversations/{conv['id']}/items/msg_nope")
        assert missing.status_code == 404
        assert missing.json()["error"]["param"] == "item_id"


def test_retention_zero_stores_no_content(gateway: Gateway) -> None:
    project, key = gateway.new_project_key()
    set_zero = gateway.admin.put(f"/projects/{project}/retention", json={"days": 0})
    assert set_zero.json() == {"object": "project.retention", "project_id": project, "days": 0}
    client = gateway.sdk(key)
    created = client.responses.create(model=MODEL, input="Hi")
    assert created.output_text == "xxx"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.BadRequestError) as refused:
        client.conversations.create()
    assert refused.value.code == "storage_disabled"


def test_the_purge_removes_content_past_retention(gateway: Gateway) -> None:
    project, key = gateway.new_project_key()
    client = gateway.sdk(key)
    conv = client.conversations.create(items=[_user("old news")])  # type: ignore[list-item]
    created = client.responses.create(model=MODEL, input="Hi")
    assert gateway.admin.put(f"/projects/{project}/retention", json={"days": 1}).status_code == 200
    assert gateway.admin.get(f"/projects/{project}/retention").json()["days"] == 1

    async def purge_in(days: float) -> None:
        db = Database(gateway.database_url)
        try:
            import time

            await purge(db, clock=lambda: time.time() + days * DAY)
        finally:
            await db.close()

    asyncio.run(purge_in(0.5))  # not yet a day old: kept
    assert client.responses.retrieve(created.id).id == created.id
    asyncio.run(purge_in(2))
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conv.id)
    assert gateway.sdk().conversations.create().id  # other projects keep their content


def test_the_real_engine_serves_each_turn_from_its_prefix_cache(client: openai.OpenAI) -> None:
    """On the bundled model: every later turn of a conversation reuses the cached blocks
    of the turn before (`cached_tokens`), because assembly keeps the prompt prefix-stable."""
    conv = client.conversations.create()
    cached = []
    for question in ("What is a river?", "Where do rivers start?", "Why do rivers bend?"):
        response = client.responses.create(
            model=MODEL,
            instructions="Answer in one short sentence.",
            input=question,
            conversation=conv.id,
            max_output_tokens=8,
            temperature=0,
        )
        assert response.usage is not None
        cached.append(
            (response.usage.input_tokens_details.cached_tokens, response.usage.input_tokens)
        )
    assert cached[0][0] == 0
    block = next(m for m in Settings().models if m.name == MODEL).block_size
    for (hit, _), (_, previous_input) in zip(cached[1:], cached[:-1], strict=True):
        assert hit >= previous_input // block * block  # every full block of the last prompt


def test_store_false_cannot_add_to_a_conversation(gateway: Gateway) -> None:
    client = gateway.sdk()
    conversation = client.conversations.create()
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input="Hi", conversation=conversation.id, store=False)
    assert err.value.param == "store"
    assert list(client.conversations.items.list(conversation.id)) == []
