"""`/v1/conversations`: conversations and their items, scoped to the caller's project.

An id of another project is answered exactly as an unknown one: 404.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal, NoReturn

from fastapi import APIRouter, Query

from headrace.api.chat_request import check_metadata
from headrace.api.items import new_id, parse_item
from headrace.api.state import Caller, State
from headrace.errors import InvalidRequestError, NotFoundError
from headrace.protocol.conversations import (
    Conversation,
    CreateConversation,
    CreateItems,
    DeletedConversation,
    UpdateConversation,
)
from headrace.protocol.responses import ItemList
from headrace.storage import retention
from headrace.storage.conversations import StoredConversation

router = APIRouter(tags=["conversations"])
Limit = Annotated[int, Query(ge=1, le=100)]
Order = Literal["asc", "desc"]


@router.post("/v1/conversations")
async def create_conversation(
    body: CreateConversation, state: State, caller: Caller
) -> Conversation:
    metadata = body.metadata or {}
    check_metadata(metadata)
    items = [parse_item(raw, f"items[{i}]") for i, raw in enumerate(body.items or [])]
    await _check_retention(state, caller.project_id)
    created = await state.conversations.create(
        caller.project_id, new_id("conv"), metadata, items, int(time.time())
    )
    return _wire(created)


@router.get("/v1/conversations/{conversation_id}")
async def get_conversation(conversation_id: str, state: State, caller: Caller) -> Conversation:
    found = await state.conversations.get(caller.project_id, conversation_id)
    return _wire(found or _missing(conversation_id))


@router.post("/v1/conversations/{conversation_id}")
async def update_conversation(
    conversation_id: str, body: UpdateConversation, state: State, caller: Caller
) -> Conversation:
    check_metadata(body.metadata)
    updated = await state.conversations.update_metadata(
        caller.project_id, conversation_id, body.metadata
    )
    return _wire(updated or _missing(conversation_id))


@router.delete("/v1/conversations/{conversation_id}")
async def delete_conversation(
    conversation_id: str, state: State, caller: Caller
) -> DeletedConversation:
    if not await state.conversations.delete(caller.project_id, conversation_id):
        _missing(conversation_id)
    return DeletedConversation(id=conversation_id)


@router.get("/v1/conversations/{conversation_id}/items")
async def list_items(
    conversation_id: str,
    state: State,
    caller: Caller,
    after: str | None = None,
    limit: Limit = 20,
    order: Order = "desc",
    include: Annotated[list[str] | None, Query()] = None,
) -> ItemList:
    page = await state.conversations.list_items(
        caller.project_id, conversation_id, after=after, limit=limit, order=order
    )
    if page is None:
        if after is not None and await state.conversations.get(caller.project_id, conversation_id):
            raise NotFoundError(f"Item with id '{after}' not found.", param="after")
        _missing(conversation_id)
    return item_list(page.items, page.has_more)


@router.post("/v1/conversations/{conversation_id}/items")
async def create_items(
    conversation_id: str, body: CreateItems, state: State, caller: Caller
) -> ItemList:
    items = [parse_item(raw, f"items[{i}]") for i, raw in enumerate(body.items)]
    if not await state.conversations.add_items(
        caller.project_id, conversation_id, items, int(time.time())
    ):
        _missing(conversation_id)
    return item_list(items, has_more=False)


@router.get("/v1/conversations/{conversation_id}/items/{item_id}")
async def get_item(
    conversation_id: str, item_id: str, state: State, caller: Caller
) -> dict[str, Any]:
    item = await state.conversations.get_item(caller.project_id, conversation_id, item_id)
    if item is None:
        await _item_missing(state, caller.project_id, conversation_id, item_id)
    return item or {}


@router.delete("/v1/conversations/{conversation_id}/items/{item_id}")
async def delete_item(
    conversation_id: str, item_id: str, state: State, caller: Caller
) -> Conversation:
    """As OpenAI: answers with the conversation the item was deleted from."""
    if not await state.conversations.delete_item(caller.project_id, conversation_id, item_id):
        await _item_missing(state, caller.project_id, conversation_id, item_id)
    found = await state.conversations.get(caller.project_id, conversation_id)
    return _wire(found or _missing(conversation_id))


def item_list(items: list[dict[str, Any]], has_more: bool) -> ItemList:
    return ItemList(
        data=items,
        has_more=has_more,
        first_id=items[0]["id"] if items else None,
        last_id=items[-1]["id"] if items else None,
    )


async def _check_retention(state: State, project_id: str) -> None:
    if await retention.get_retention(state.db, project_id) == 0:
        raise InvalidRequestError(
            "This project's retention is 0 days: conversations cannot be stored.",
            param="conversation",
            code="storage_disabled",
        )


async def _item_missing(state: State, project_id: str, conversation_id: str, item_id: str) -> None:
    if await state.conversations.get(project_id, conversation_id) is None:
        _missing(conversation_id)
    raise NotFoundError(f"Item with id '{item_id}' not found.", param="item_id")


def _missing(conversation_id: str) -> NoReturn:
    raise NotFoundError(
        f"Conversation with id '{conversation_id}' not found.", param="conversation_id"
    )


def _wire(c: StoredConversation) -> Conversation:
    return Conversation(id=c.id, metadata=c.metadata, created_at=c.created_at)
