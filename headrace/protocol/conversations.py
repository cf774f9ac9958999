"""`/v1/conversations` request and response shapes (items: see `protocol/responses.py`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from headrace.protocol.common import RequestModel, WireModel

MAX_ITEMS_PER_CALL = 20  # as OpenAI: a create adds at most 20 items


class CreateConversation(RequestModel):
    items: list[Any] | None = Field(default=None, max_length=MAX_ITEMS_PER_CALL)
    metadata: dict[str, str] | None = None


class UpdateConversation(RequestModel):
    metadata: dict[str, str]


class CreateItems(RequestModel):
    items: list[Any] = Field(min_length=1, max_length=MAX_ITEMS_PER_CALL)


class Conversation(WireModel):
    id: str
    object: Literal["conversation"] = "conversation"
    metadata: dict[str, str]
    created_at: int


class DeletedConversation(WireModel):
    id: str
    object: Literal["conversation.deleted"] = "conversation.deleted"
    deleted: bool = True
