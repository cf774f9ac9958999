"""The affinity key of a chat request: which conversation it belongs to, so that its turns
go to the same deployment (whose KV cache still holds the conversation's prefix) and, under
a rollout, to the same model version.

The client may name the conversation (`x-headrace-affinity`). Without that, the key is a
digest of the conversation's opening: the messages up to and including the first user
message (the system prompt and the first question). A chat client sends the whole history
each turn, so the opening is the same on every turn of one conversation, and differs
between conversations that start differently.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

HEADER = "x-headrace-affinity"
MAX_KEY_CHARS = 256  # a longer explicit key is cut: it only feeds a hash


def affinity_key(messages: Sequence[Mapping[str, Any]], explicit: str | None = None) -> str | None:
    """The request's key: `explicit` (the header) when given, else a digest of the opening;
    None for messages without a user message (nothing identifies a conversation)."""
    if explicit is not None and explicit.strip():
        return explicit.strip()[:MAX_KEY_CHARS]
    opening: list[tuple[str, Any]] = []
    for message in messages:
        role = str(message.get("role", ""))
        opening.append((role, message.get("content")))
        if role == "user":
            # Sorted keys: content parts that differ only in key order are one conversation.
            canonical = orjson.dumps(opening, option=orjson.OPT_SORT_KEYS)
            return "opening:" + hashlib.blake2b(canonical, digest_size=16).hexdigest()
    return None
