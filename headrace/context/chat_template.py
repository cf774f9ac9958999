"""Renders a model's Jinja chat template, the way `transformers` does, without loading it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NoReturn

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from headrace.errors import InvalidRequestError


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False) -> str:
    # Jinja's own `tojson` HTML-escapes `<`, `>` and `&`; chat templates expect plain JSON.
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)


def _raise(message: str) -> NoReturn:
    raise InvalidRequestError(
        f"chat template refused the conversation: {message}", param="messages"
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now(UTC).strftime(fmt)


@lru_cache(maxsize=16)
def _compile(source: str) -> Any:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(source)


def render_chat(
    template: str,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = True,
    special_tokens: dict[str, str] | None = None,
) -> str:
    """The prompt text for `messages` (OpenAI-shaped dicts) under the model's template."""
    try:
        return str(
            _compile(template).render(
                messages=messages,
                tools=tools,
                add_generation_prompt=add_generation_prompt,
                **(special_tokens or {}),
            )
        )
    except TemplateError as exc:
        raise InvalidRequestError(f"could not render the chat template: {exc}") from exc
