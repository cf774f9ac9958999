"""Translating a validated chat request into the engine's terms, at the edge.

Pydantic checks types and ranges; this module checks what needs the model (token ids) or
several fields at once, and refuses by name every argument we cannot honour yet.
"""

from __future__ import annotations

from typing import Any

from headrace.engine.interface import SamplingParams
from headrace.engine.tokenizer import Tokenizer
from headrace.errors import InvalidRequestError
from headrace.protocol.chat import (
    AssistantMessage,
    ChatCompletionRequest,
    FunctionMessage,
    Message,
    TextPart,
    ToolMessage,
    UserMessage,
)

MAX_STOP_SEQUENCES = 4
MAX_METADATA_PAIRS = 16
_BATCH_TIERS = {"flex"}


def refuse_unsupported(body: ChatCompletionRequest) -> None:
    """400 naming the first argument this server cannot honour (never ignored silently)."""
    unsupported: dict[str, bool] = {
        "tools": bool(body.tools),
        "tool_choice": body.tool_choice not in (None, "none"),
        "parallel_tool_calls": body.parallel_tool_calls is not None and bool(body.tools),
        "functions": body.functions is not None,
        "function_call": body.function_call is not None,
        "response_format": body.response_format is not None
        and body.response_format.get("type") != "text",
        "modalities": body.modalities is not None and body.modalities != ["text"],
        "audio": body.audio is not None,
        "prediction": body.prediction is not None,
        "web_search_options": body.web_search_options is not None,
        "reasoning_effort": body.reasoning_effort is not None,
        "verbosity": body.verbosity is not None,
        "store": bool(body.store),
        "moderation": body.moderation is not None,
        "prompt_cache_retention": body.prompt_cache_retention is not None,
        "prompt_cache_options": body.prompt_cache_options is not None,
    }
    for param, refused in unsupported.items():
        if refused:
            raise InvalidRequestError(
                f"Unsupported parameter: '{param}' is not supported with this model.",
                param=param,
                code="unsupported_parameter",
            )
    if body.top_logprobs is not None and not body.logprobs:
        raise InvalidRequestError(
            "'top_logprobs' requires 'logprobs' to be true.", param="top_logprobs"
        )
    if body.metadata is not None:
        _check_metadata(body.metadata)


def _check_metadata(metadata: dict[str, str]) -> None:
    if len(metadata) > MAX_METADATA_PAIRS:
        raise InvalidRequestError(
            f"metadata may hold at most {MAX_METADATA_PAIRS} pairs.", param="metadata"
        )
    for key, value in metadata.items():
        if len(key) > 64 or len(value) > 512:
            raise InvalidRequestError(
                "metadata keys are at most 64 characters and values at most 512.",
                param=f"metadata.{key[:64]}",
            )


def template_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """OpenAI messages as the plain dicts a chat template expects (content as text)."""
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        if isinstance(msg, FunctionMessage) or (
            isinstance(msg, AssistantMessage) and msg.function_call is not None
        ):
            raise InvalidRequestError(
                "Function messages are deprecated; use tool messages.", param=f"messages[{i}]"
            )
        item: dict[str, Any] = {"role": msg.role, "content": _text(msg, i)}
        if isinstance(msg, AssistantMessage) and msg.tool_calls:
            item["tool_calls"] = [tc.model_dump() for tc in msg.tool_calls]
        if isinstance(msg, ToolMessage):
            item["tool_call_id"] = msg.tool_call_id
        out.append(item)
    return out


def _text(msg: Message, index: int) -> str:
    content = msg.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for j, part in enumerate(content):
        if isinstance(part, TextPart):
            parts.append(part.text)
        elif isinstance(msg, UserMessage):
            raise InvalidRequestError(
                f"This model accepts text only; content parts of type '{part.type}' are not "
                "supported.",
                param=f"messages[{index}].content[{j}]",
                code="unsupported_content",
            )
        else:  # a refusal part in an assistant message: keep what the assistant said
            parts.append(getattr(part, "refusal", ""))
    return "".join(parts)


def sampling_params(
    body: ChatCompletionRequest, max_tokens: int, tokenizer: Tokenizer, *, choice: int
) -> SamplingParams:
    """The engine's parameters for choice `choice` of the request."""
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stop) > MAX_STOP_SEQUENCES:
        raise InvalidRequestError(
            f"At most {MAX_STOP_SEQUENCES} stop sequences are allowed.", param="stop"
        )
    # Choices of one seeded request differ from each other, yet are each reproducible.
    seed = None if body.seed is None else body.seed + choice
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        seed=seed,
        presence_penalty=body.presence_penalty or 0.0,
        frequency_penalty=body.frequency_penalty or 0.0,
        logit_bias=_logit_bias(body.logit_bias, tokenizer.vocab_size),
        stop=tuple(s for s in stop if s),
        logprobs=(body.top_logprobs or 0) if body.logprobs else None,
    )


def _logit_bias(bias: dict[str, float] | None, vocab_size: int) -> tuple[tuple[int, float], ...]:
    if not bias:
        return ()
    out = []
    for key, value in bias.items():
        if not key.lstrip("-").isdigit() or not 0 <= int(key) < vocab_size:
            raise InvalidRequestError(
                f"Invalid key in 'logit_bias': {key!r} is not a token id of this model "
                f"(0 to {vocab_size - 1}).",
                param="logit_bias",
            )
        if not -100 <= value <= 100:
            raise InvalidRequestError(
                f"Invalid value in 'logit_bias' for token {key}: {value} is outside -100 to 100.",
                param="logit_bias",
            )
        out.append((int(key), float(value)))
    return tuple(out)


def priority(body: ChatCompletionRequest) -> int:
    """`service_tier` to the engine's priority class: 0 interactive, 1 batch."""
    return 1 if body.service_tier in _BATCH_TIERS else 0


def max_output_tokens(body: ChatCompletionRequest) -> int | None:
    return body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
