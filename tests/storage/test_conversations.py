"""Conversation, response, prompt and retention repositories, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from headrace.storage import prompts, retention
from headrace.storage.conversations import Conversations
from headrace.storage.database import Database
from headrace.storage.encryption import ContentCipher, new_key_text, parse_key
from headrace.storage.responses import Responses, StoredResponse

DAY = 86_400


def item(n: int, role: str = "user") -> dict[str, Any]:
    return {"type": "message", "id": f"msg_{n}", "role": role, "status": "completed",
            "content": [{"type": "input_text", "text": f"secret {n}"}]}  # fmt: skip


async def _db(url: str) -> Database:
    db = Database(url)
    await db.migrate()
    return db


async def test_items_page_after_a_cursor_in_either_order(database_url: str) -> None:
    db = await _db(database_url)
    convs = Conversations(db, ContentCipher([]))
    await convs.create("p1", "conv_1", {"k": "v"}, [item(i) for i in range(5)], 100)
    await convs.add_items("p1", "conv_1", [item(i) for i in range(5, 8)], 101)
    page = await convs.list_items("p1", "conv_1", limit=3, order="asc")
    assert page is not None
    assert page.has_more
    assert [i["id"] for i in page.items] == ["msg_0", "msg_1", "msg_2"]
    page = await convs.list_items("p1", "conv_1", after="msg_2", limit=10, order="asc")
    assert page is not None
    assert not page.has_more
    assert [i["id"] for i in page.items] == [f"msg_{i}" for i in range(3, 8)]
    page = await convs.list_items("p1", "conv_1", after="msg_5", limit=2, order="desc")
    assert page is not None
    assert [i["id"] for i in page.items] == ["msg_4", "msg_3"]
    assert await convs.list_items("p1", "conv_1", after="msg_nope") is None
    history = await convs.history("p1", "conv_1")
    assert history is not None
    assert [i["id"] for i in history] == [f"msg_{i}" for i in range(8)]
    await db.close()


async def test_every_query_is_scoped_to_the_project(database_url: str) -> None:
    db = await _db(database_url)
    convs = Conversations(db, ContentCipher([]))
    await convs.create("p1", "conv_1", {}, [item(1)], 100)
    assert await convs.get("p2", "conv_1") is None
    assert await convs.history("p2", "conv_1") is None
    assert await convs.list_items("p2", "conv_1") is None
    assert await convs.get_item("p2", "conv_1", "msg_1") is None
    assert not await convs.add_items("p2", "conv_1", [item(2)], 101)
    assert not await convs.delete_item("p2", "conv_1", "msg_1")
    assert await convs.update_metadata("p2", "conv_1", {"x": "y"}) is None
    assert not await convs.delete("p2", "conv_1")
    assert await convs.get_item("p1", "conv_1", "msg_1") == item(1)  # all still there
    responses = Responses(db, ContentCipher([]))
    await responses.save("p1", StoredResponse("resp_1", None, None, "completed", {}, 100), [], [])
    assert await responses.get("p2", "resp_1") is None
    assert await responses.chain("p2", "resp_1") is None
    assert await responses.input_items("p2", "resp_1") is None
    assert not await responses.delete("p2", "resp_1")
    await db.close()


async def test_deleting_a_conversation_deletes_its_items(database_url: str) -> None:
    db = await _db(database_url)
    convs = Conversations(db, ContentCipher([]))
    await convs.create("p1", "conv_1", {}, [item(1), item(2)], 100)
    assert await convs.delete("p1", "conv_1")
    async with db.engine.connect() as conn:
        left = await conn.scalar(text("SELECT count(*) FROM conversation_items"))
    assert left == 0
    await db.close()


async def test_content_is_sealed_at_rest(database_url: str) -> None:
    db = await _db(database_url)
    cipher = ContentCipher([parse_key(new_key_text())])
    convs, responses = Conversations(db, cipher), Responses(db, cipher)
    await convs.create("p1", "conv_1", {}, [item(1)], 100)
    body = {"instructions": "secret instructions", "output": [item(2, "assistant")]}
    stored = StoredResponse("resp_1", None, None, "completed", body, 100)
    await responses.save("p1", stored, [item(3)], [item(2, "assistant")])
    async with db.engine.connect() as conn:
        raw = [
            *(await conn.scalars(text("SELECT content FROM conversation_items"))),
            *(await conn.scalars(text("SELECT body FROM responses"))),
            *(await conn.scalars(text("SELECT content FROM response_items"))),
        ]
    assert len(raw) == 4
    assert all(r.startswith("enc:v1:") and "secret" not in r for r in raw)
    assert await convs.get_item("p1", "conv_1", "msg_1") == item(1)
    got = await responses.get("p1", "resp_1")
    assert got is not None
    assert got.body == body
    await db.close()


async def test_a_chain_of_responses_is_history_oldest_first(database_url: str) -> None:
    db = await _db(database_url)
    responses = Responses(db, ContentCipher([]))
    previous = None
    for n in range(3):
        rid = f"resp_{n}"
        stored = StoredResponse(rid, previous, None, "completed", {}, 100 + n)
        await responses.save("p1", stored, [item(2 * n)], [item(2 * n + 1, "assistant")])
        previous = rid
    chain = await responses.chain("p1", "resp_2")
    assert chain is not None
    assert [i["id"] for i in chain] == [f"msg_{i}" for i in range(6)]
    page = await responses.input_items("p1", "resp_2")
    assert page is not None
    assert [i["id"] for i in page.items] == ["msg_4"]
    assert await responses.delete("p1", "resp_0")  # history then starts after the gap
    chain = await responses.chain("p1", "resp_2")
    assert chain is not None
    assert [i["id"] for i in chain] == [f"msg_{i}" for i in range(2, 6)]
    await db.close()


async def test_prompt_versions_are_immutable_and_promotion_moves_current(
    database_url: str,
) -> None:
    db = await _db(database_url)
    v1 = await prompts.create_prompt(db, "pmpt_1", "support", "v1 {{x}}", ["x"], 100)
    assert v1.version == 1
    assert v1.current
    v2 = await prompts.add_version(db, "support", "v2 {{x}}", ["x"], 101)
    assert v2 is not None
    assert v2.version == 2
    assert not v2.current
    current = await prompts.get_version(db, "pmpt_1")
    assert current is not None
    assert current.instructions == "v1 {{x}}"
    assert await prompts.promote(db, "support", 3) is None
    promoted = await prompts.promote(db, "support", 2)
    assert promoted is not None
    assert promoted.current
    current = await prompts.get_version(db, "support")
    assert current is not None
    assert current.version == 2
    old = await prompts.get_version(db, "support", 1)
    assert old is not None
    assert old.instructions == "v1 {{x}}"
    assert not old.current
    [listed] = await prompts.list_prompts(db)
    assert (listed.current_version, listed.latest_version) == (2, 2)
    await db.close()


async def test_purge_deletes_only_what_retention_has_expired(database_url: str) -> None:
    db = await _db(database_url)
    convs, responses = Conversations(db, ContentCipher([])), Responses(db, ContentCipher([]))
    now = 1_000 * DAY
    await retention.set_retention(db, "p1", 7, now)
    await convs.create("p1", "conv_old", {}, [item(1)], now - 10 * DAY)
    await convs.create("p1", "conv_new", {}, [item(2)], now - 10 * DAY)
    await convs.add_items("p1", "conv_new", [item(3)], now - DAY)  # still active
    await convs.create("p2", "conv_kept", {}, [item(4)], now - 100 * DAY)  # no policy
    for rid, age in (("resp_old", 8), ("resp_new", 6)):
        stored = StoredResponse(rid, None, None, "completed", {}, now - age * DAY)
        await responses.save("p1", stored, [item(10 + age)], [])
    purged = await retention.purge(db, now)
    assert (purged.conversations, purged.items, purged.responses) == (1, 2, 1)
    assert await convs.get("p1", "conv_old") is None
    history = await convs.history("p1", "conv_new")
    assert history is not None
    assert [i["id"] for i in history] == ["msg_3"]
    assert await convs.get("p2", "conv_kept") is not None
    assert await responses.get("p1", "resp_old") is None
    assert await responses.get("p1", "resp_new") is not None
    async with db.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM response_items")) == 1
    await retention.set_retention(db, "p1", None, now)
    assert await retention.get_retention(db, "p1") is None
    await db.close()
