"""Response and conversation items from the wire, checked and normalised at the edge.

Every item is stored and served in one shape (the OpenAI `ConversationItem` one), with an
id of ours: messages (`msg_`), function calls (`fc_`) and function call outputs (`fco_`).
Anything else is a 400 that names the offending item.
"""

from __future__ import annotations

import secrets
from typing import Any

from headrace.errors import InvalidRequestError

Item = dict[str, Any]
ROLES = ("user", "assistant", "system", "developer")
_TEXT_PARTS = ("input_text", "output_text", "text", "refusal")
_UNSUPPORTED_PARTS = ("input_image", "input_file", "input_audio")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def input_items(value: str | list[Any] | None, param: str = "input") -> list[Item]:
    """`input` (a string: one user message; or a list of items) as normalised items."""
    if value is None:
        return []
    if isinstance(value, str):
        return [message("user", value)]
    return [parse_item(raw, f"{param}[{i}]") for i, raw in enumerate(value)]


def parse_item(raw: Any, param: str) -> Item:
    if not isinstance(raw, dict):
        raise InvalidRequestError(f"'{param}' must be an object.", param=param)
    kind = raw.get("type", "message" if "role" in raw else None)
    if kind == "message":
        return _message(raw, param)
    if kind == "function_call":
        call_id, name, arguments = (
            _string(raw, k, param) for k in ("call_id", "name", "arguments")
        )
        return {
            "type": "function_call",
            "id": new_id("fc"),
            "call_id": call_id,
            "name": name,
            "arguments": arguments,
            "status": "completed",
        }
    if kind == "function_call_output":
        return {
            "type": "function_call_output",
            "id": new_id("fco"),
            "call_id": _string(raw, "call_id", param),
            "output": _string(raw, "output", param),
            "status": "completed",
        }
    raise InvalidRequestError(
        f"Invalid value for '{param}.type': {kind!r}. Supported item types are 'message', "
        "'function_call' and 'function_call_output'.",
        param=f"{param}.type",
        code="invalid_value",
    )


def message(role: str, text: str) -> Item:
    """A completed message item; the assistant's text is output text, anyone else's input."""
    part: Item = (
        {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        if role == "assistant"
        else {"type": "input_text", "text": text}
    )
    return {
        "type": "message",
        "id": new_id("msg"),
        "status": "completed",
        "role": role,
        "content": [part],
    }


def _message(raw: dict[str, Any], param: str) -> Item:
    role = raw.get("role")
    if role not in ROLES:
        raise InvalidRequestError(
            f"Invalid value for '{param}.role': {role!r}; expected one of {', '.join(ROLES)}.",
            param=f"{param}.role",
            code="invalid_value",
        )
    content = raw.get("content")
    if isinstance(content, str):
        return message(role, content)
    if not isinstance(content, list) or not content:
        raise InvalidRequestError(
            f"'{param}.content' must be a string or a non-empty array of content parts.",
            param=f"{param}.content",
        )
    texts = []
    for j, part in enumerate(content):
        where = f"{param}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _UNSUPPORTED_PARTS:
            raise InvalidRequestError(
                f"This model accepts text only; content parts of type '{kind}' are not supported.",
                param=where,
                code="unsupported_content",
            )
        if kind not in _TEXT_PARTS or not isinstance(part, dict):
            raise InvalidRequestError(
                f"Invalid content part at '{where}': expected a part of type 'input_text'.",
                param=f"{where}.type",
                code="invalid_value",
            )
        text = part.get("refusal" if kind == "refusal" else "text")
        if not isinstance(text, str):
            raise InvalidRequestError(f"'{where}' has no text.", param=where)
        texts.append(text)
    return message(role, "".join(texts))


def _string(raw: dict[str, Any], key: str, param: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str):
        raise InvalidRequestError(
            f"Missing or invalid '{param}.{key}': expected a string.", param=f"{param}.{key}"
        )
    return value
