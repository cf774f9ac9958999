"""Translating a validated chat request into the engine's terms, at the edge.

Pydantic checks types and ranges; this module checks what needs the model (token ids) or
several fields at once, and refuses by name every argument we cannot honour yet.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from headrace.engine.interface import SamplingParams
from headrace.engine.structured import CompiledGrammar, GrammarSpec, StructuredOutputs
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
        "functions": body.functions is not None,
        "function_call": body.function_call is not None,
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
    if body.stream_options is not None and not body.stream:
        raise InvalidRequestError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    if body.parallel_tool_calls is not None and not body.tools:
        raise InvalidRequestError(
            "'parallel_tool_calls' is only allowed when 'tools' are specified.",
            param="parallel_tool_calls",
        )
    if body.metadata is not None:
        check_metadata(body.metadata)


def check_metadata(metadata: dict[str, str]) -> None:
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
    call_ids: set[str] = set()  # tool calls made so far, which tool messages answer
    for i, msg in enumerate(messages):
        if isinstance(msg, FunctionMessage) or (
            isinstance(msg, AssistantMessage) and msg.function_call is not None
        ):
            raise InvalidRequestError(
                "Function messages are deprecated; use tool messages.", param=f"messages[{i}]"
            )
        if isinstance(msg, AssistantMessage):
            call_ids.update(tc.id for tc in msg.tool_calls or ())
        if isinstance(msg, ToolMessage) and msg.tool_call_id not in call_ids:
            raise InvalidRequestError(
                "Messages with role 'tool' must answer a tool call of a preceding assistant "
                f"message; no call has id {msg.tool_call_id!r}.",
                param=f"messages[{i}].tool_call_id",
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
    if not content:
        raise InvalidRequestError(
            "Content parts must not be an empty array.", param=f"messages[{index}].content"
        )
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


def output_grammar(
    body: ChatCompletionRequest, structured: StructuredOutputs
) -> CompiledGrammar | None:
    """`response_format` as a compiled grammar; a schema that cannot compile is a 400."""
    fmt = body.response_format
    if fmt is None:
        return None
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        spec = GrammarSpec("json_object")
    elif kind == "json_schema":
        wrapper = fmt.get("json_schema")
        if not isinstance(wrapper, dict) or not isinstance(wrapper.get("name"), str):
            raise InvalidRequestError(
                "response_format.json_schema must be an object with a 'name'.",
                param="response_format.json_schema",
            )
        schema = wrapper.get("schema", {})
        if not isinstance(schema, dict):
            raise InvalidRequestError(
                "response_format.json_schema.schema must be a JSON schema object.",
                param="response_format.json_schema.schema",
            )
        spec = GrammarSpec("json_schema", json.dumps(schema))
    else:
        raise InvalidRequestError(
            f"Invalid value for 'response_format.type': {kind!r}; expected 'text', "
            "'json_object' or 'json_schema'.",
            param="response_format.type",
        )
    try:
        return structured.compile(spec)
    except ValueError as exc:
        param = "response_format.json_schema.schema" if spec.kind == "json_schema" else None
        raise InvalidRequestError(str(exc), param=param or "response_format") from exc


def sampling_params(
    body: ChatCompletionRequest,
    max_tokens: int,
    tokenizer: Tokenizer,
    *,
    choice: int,
    grammar: CompiledGrammar | None = None,
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
        logit_bias=logit_bias(body.logit_bias, tokenizer.vocab_size),
        stop=tuple(s for s in stop if s),
        logprobs=(body.top_logprobs or 0) if body.logprobs else None,
        grammar=grammar,
    )


def logit_bias(bias: dict[str, float] | None, vocab_size: int) -> tuple[tuple[int, float], ...]:
    """`logit_bias` keyed by token-id strings, checked against the vocabulary."""
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


_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """How a request's tools shape the prompt and the output."""

    template_tools: list[dict[str, Any]] | None  # rendered into the prompt
    grammar: CompiledGrammar | None  # set when a call is forced (required or named)
    parse_calls: bool  # outputs are scanned for tool calls


NO_TOOLS = ToolPlan(None, None, parse_calls=False)


def tool_plan(body: ChatCompletionRequest, structured: StructuredOutputs) -> ToolPlan:
    """Check `tools` / `tool_choice` / `parallel_tool_calls` and decide what they do."""
    tools = body.tools or []
    functions: dict[str, dict[str, Any]] = {}
    for i, tool in enumerate(tools):
        fn = tool.get("function")
        if tool.get("type") != "function" or not isinstance(fn, dict):
            raise InvalidRequestError(
                "Only tools of type 'function' are supported.", param=f"tools[{i}].type"
            )
        name = fn.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise InvalidRequestError(
                "Function names are 1 to 64 letters, digits, '_' or '-'.",
                param=f"tools[{i}].function.name",
            )
        if name in functions:
            raise InvalidRequestError(
                f"Duplicate function name {name!r}.", param=f"tools[{i}].function.name"
            )
        parameters = fn.get("parameters", {"type": "object"})
        if not isinstance(parameters, dict):
            raise InvalidRequestError(
                "Function parameters must be a JSON schema object.",
                param=f"tools[{i}].function.parameters",
            )
        functions[name] = parameters
    choice = body.tool_choice if body.tool_choice is not None else "auto"
    if choice == "none" or not functions:
        if choice not in ("none", "auto"):
            raise InvalidRequestError(
                "'tool_choice' requires 'tools' to be given.", param="tool_choice"
            )
        return NO_TOOLS
    forced = _forced_functions(choice, functions)
    template_tools = [t for t in tools if t["function"]["name"] in functions]
    if forced is None:
        return ToolPlan(template_tools, None, parse_calls=True)
    if body.response_format is not None and body.response_format.get("type") != "text":
        raise InvalidRequestError(
            "'response_format' cannot be combined with a forced 'tool_choice'.",
            param="response_format",
        )
    parallel = body.parallel_tool_calls is not False and len(forced) > 1
    spec = GrammarSpec.tool_call([(n, functions[n]) for n in forced], parallel=parallel)
    try:
        grammar = structured.compile(spec)
    except ValueError as exc:
        names = list(functions)
        param = (
            f"tools[{names.index(forced[0])}].function.parameters" if len(forced) == 1 else "tools"
        )
        raise InvalidRequestError(str(exc), param=param) from exc
    return ToolPlan(template_tools, grammar, parse_calls=True)


def _forced_functions(choice: str | dict[str, Any], functions: dict[str, Any]) -> list[str] | None:
    if choice == "auto":
        return None
    if choice == "required":
        return list(functions)
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name not in functions:
            raise InvalidRequestError(
                f"tool_choice names function {name!r}, which is not in 'tools'.",
                param="tool_choice",
            )
        return [str(name)]
    raise InvalidRequestError(
        "'tool_choice' must be 'none', 'auto', 'required' or a named function.",
        param="tool_choice",
    )
