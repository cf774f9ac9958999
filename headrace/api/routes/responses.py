"""`/v1/responses`: the data-plane lifecycle for the Responses API, top to bottom.

It runs the same stages as chat completions, and reuses them: the request is translated at
the edge into chat terms (tools, output format, sampling), its context is assembled from
history (`previous_response_id` or `conversation`), the prompt registry and the new input
(`context/assembly.py`), then admission, metering and the engine run as for chat.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response as HttpResponse

from headrace.api.chat_request import (
    check_metadata,
    output_grammar,
    priority,
    sampling_params,
    tool_plan,
)
from headrace.api.generation_response import respond
from headrace.api.items import input_items, new_id
from headrace.api.load import shed_load
from headrace.api.moderation import message_texts, moderate_input
from headrace.api.privacy import check_input, injection_headers
from headrace.api.response_run import ResponseRun, Stored
from headrace.api.routes.conversations import item_list
from headrace.api.state import Caller, Record, State
from headrace.context.assembly import Assembled, assemble, to_messages
from headrace.context.chat_template import render_chat
from headrace.engine.interface import GenerationRequest
from headrace.engine.tokenizer import Tokenizer
from headrace.errors import InvalidRequestError, NotFoundError
from headrace.protocol.chat import ChatCompletionRequest
from headrace.protocol.responses import (
    CreateResponse,
    DeletedResponse,
    ItemList,
    Response,
    ResponseConversation,
    ResponsePrompt,
)
from headrace.safety.placeholders import mask_messages
from headrace.storage import retention

router = APIRouter(tags=["responses"])
Limit = Annotated[int, Query(ge=1, le=100)]


@router.post("/v1/responses", response_model=None)
async def create_response(
    body: CreateResponse, state: State, caller: Caller, record: Record
) -> HttpResponse:
    # Receive, authenticate and validate ran before this line (middleware, Caller, pydantic).
    record.stream = bool(body.stream)
    refuse_unsupported(body)
    chat = as_chat(body)
    record.mark("validate")
    caller.check_model(body.model)
    model = state.registry.chat(body.model)
    record.model = body.model
    shed_load(model, record, batch=False)
    record.mark("route")
    new_input = input_items(body.input)
    history, conversation_id = await _history(state, caller.project_id, body)
    days = await retention.get_retention(state.db, caller.project_id)
    if conversation_id is not None and body.store is False:
        # `store: false` keeps nothing beyond usage; a conversation keeps every turn.
        raise InvalidRequestError(
            "'store' must not be false with 'conversation': the conversation would keep "
            "this turn's input and output.",
            param="store",
        )
    if conversation_id is not None and days == 0:
        raise InvalidRequestError(
            "This project's retention is 0 days: conversations cannot be stored.",
            param="conversation",
            code="storage_disabled",
        )
    prompt = (
        await state.prompts.resolve(body.prompt.id, body.prompt.version, body.prompt.variables)
        if body.prompt is not None
        else None
    )
    instructions = "\n\n".join(t for t in (prompt and prompt.text, body.instructions) if t) or None
    tools = tool_plan(chat, model.structured)
    # Check input (privacy): tool results scored for injection, personal data masked in
    # mode `mask` (the output is restored), as for chat.
    guarded = await check_input(state, caller, record, to_messages([*history, *new_input]))
    masker = guarded.masker
    record.mark("check_input")
    assembled = assemble(
        instructions=instructions,
        history=history,
        new_input=new_input,
        tools=tools.template_tools,
        output_format=(body.text or {}).get("format"),
        encode=_encoder(model.tokenizer),
        context_window=model.context_window,
        max_tokens=body.max_output_tokens,
        default_max_tokens=model.settings.default_max_tokens,
        truncation=body.truncation or "disabled",
        transform=(lambda messages: mask_messages(masker, messages)) if masker else None,
    )
    grammar = tools.grammar or output_grammar(chat, model.structured)
    record.mark("build_context")
    response_id = new_id("resp")
    request = GenerationRequest(
        request_id=response_id,
        prompt_token_ids=assembled.token_ids,
        params=sampling_params(
            chat, assembled.max_tokens, model.tokenizer, choice=0, grammar=grammar
        ),
        priority=priority(chat),
        tenant=caller.project_id,
    )
    admission = await state.limiter.admit(
        caller, model=body.model, tokens=len(assembled.token_ids) + assembled.max_tokens
    )
    record.mark("admission")
    shell = _shell(body, response_id, instructions, conversation_id, prompt_ref(body, prompt))
    store = Stored(
        project_id=caller.project_id,
        responses=state.responses if body.store is not False and days != 0 else None,
        conversations=state.conversations if conversation_id is not None else None,
        conversation_id=conversation_id,
        inputs=new_input,
    )
    run = ResponseRun(response_id, body.model, shell.created_at, shell=shell, store=store)
    run.parse_calls = tools.parse_calls
    run.record = record
    run.masker = masker
    run.prompt = (prompt.id, prompt.version) if prompt is not None else None
    run.prompt_tokens = len(assembled.token_ids)
    # Check input: the new input and the instructions (earlier turns were checked then).
    texts = [*([instructions] if instructions else []), *message_texts(new_input)]
    await moderate_input(state, caller, model, admission, run, texts, param="input")
    return await respond(
        state,
        caller,
        model,
        admission,
        run,
        stream=(lambda: run.stream(model.engine, request)) if body.stream else None,
        complete=lambda: run.complete(model.engine, request),
        headers={"openai-model": body.model}
        | _dropped_header(assembled)
        | injection_headers(guarded),
    )


@router.get("/v1/responses/{response_id}")
async def get_response(response_id: str, state: State, caller: Caller) -> Response:
    found = await state.responses.get(caller.project_id, response_id)
    if found is None:
        raise _missing(response_id)
    return Response.model_validate(found.body)


@router.delete("/v1/responses/{response_id}")
async def delete_response(response_id: str, state: State, caller: Caller) -> DeletedResponse:
    if not await state.responses.delete(caller.project_id, response_id):
        raise _missing(response_id)
    return DeletedResponse(id=response_id)


@router.get("/v1/responses/{response_id}/input_items")
async def list_input_items(
    response_id: str,
    state: State,
    caller: Caller,
    after: str | None = None,
    limit: Limit = 20,
    order: Literal["asc", "desc"] = "desc",
    include: Annotated[list[str] | None, Query()] = None,
) -> ItemList:
    page = await state.responses.input_items(
        caller.project_id, response_id, after=after, limit=limit, order=order
    )
    if page is None:
        if after is not None and await state.responses.get(caller.project_id, response_id):
            raise NotFoundError(f"Item with id '{after}' not found.", param="after")
        raise _missing(response_id)
    return item_list(page.items, page.has_more)


def refuse_unsupported(body: CreateResponse) -> None:
    """400 naming the first argument this server cannot honour (never ignored silently)."""
    unsupported = {
        "include": bool(body.include),
        "reasoning": body.reasoning is not None,
        "background": bool(body.background),
        "max_tool_calls": body.max_tool_calls is not None,
        "top_logprobs": body.top_logprobs is not None,
        "prompt_cache_retention": body.prompt_cache_retention is not None,
        "context_management": body.context_management is not None,
    }
    for param, refused in unsupported.items():
        if refused:
            raise InvalidRequestError(
                f"Unsupported parameter: '{param}' is not supported with this model.",
                param=param,
                code="unsupported_parameter",
            )
    if body.previous_response_id is not None and body.conversation is not None:
        raise InvalidRequestError(
            "'previous_response_id' and 'conversation' cannot be used together.",
            param="conversation",
            code="mutually_exclusive_parameters",
        )
    if body.stream_options is not None and not body.stream:
        raise InvalidRequestError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    if body.input is None and body.prompt is None:
        raise InvalidRequestError("Missing required parameter: 'input'.", param="input")
    if isinstance(body.input, list) and not body.input and body.prompt is None:
        raise InvalidRequestError("'input' must not be an empty array.", param="input")
    if body.metadata is not None:
        check_metadata(body.metadata)


def as_chat(body: CreateResponse) -> ChatCompletionRequest:
    """The request in chat terms, so tools, output formats and sampling are checked and
    compiled exactly as for chat completions."""
    return ChatCompletionRequest(
        model=body.model,
        messages=[{"role": "user", "content": ""}],
        temperature=body.temperature,
        top_p=body.top_p,
        tools=[_chat_tool(t, i) for i, t in enumerate(body.tools)] if body.tools else None,
        tool_choice=_chat_tool_choice(body.tool_choice),
        parallel_tool_calls=body.parallel_tool_calls,
        response_format=_chat_format(body.text),
        service_tier=body.service_tier,
    )


def prompt_ref(body: CreateResponse, prompt: Any) -> ResponsePrompt | None:
    if body.prompt is None or prompt is None:
        return None
    return ResponsePrompt(
        id=prompt.id, version=str(prompt.version), variables=body.prompt.variables or None
    )


def _chat_tool(tool: dict[str, Any], index: int) -> dict[str, Any]:
    if tool.get("type") != "function":
        raise InvalidRequestError(
            "Only tools of type 'function' are supported.", param=f"tools[{index}].type"
        )
    function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
    return {"type": "function", "function": function}


def _chat_tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return choice


def _chat_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    fmt = (text or {}).get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise InvalidRequestError("'text.format' must be an object.", param="text.format")
    if fmt.get("type") != "json_schema":
        return fmt
    schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
    return {"type": "json_schema", "json_schema": schema}


async def _history(
    state: State, project_id: str, body: CreateResponse
) -> tuple[list[dict[str, Any]], str | None]:
    """The items the response continues from, and the conversation it belongs to."""
    if body.previous_response_id is not None:
        chain = await state.responses.chain(project_id, body.previous_response_id)
        if chain is None:
            raise NotFoundError(
                f"Previous response with id '{body.previous_response_id}' not found.",
                param="previous_response_id",
            )
        return chain, None
    if body.conversation is not None:
        cid = body.conversation if isinstance(body.conversation, str) else body.conversation.id
        items = await state.conversations.history(project_id, cid)
        if items is None:
            raise NotFoundError(f"Conversation with id '{cid}' not found.", param="conversation")
        return items, cid
    return [], None


def _encoder(tokenizer: Tokenizer) -> Any:
    template = tokenizer.chat_template
    if template is None:
        raise InvalidRequestError("this model has no chat template; use /v1/completions")
    special = {"bos_token": tokenizer.bos_token, "eos_token": tokenizer.eos_token}

    def encode(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[int]:
        return tokenizer.encode(
            render_chat(template, messages, tools=tools, special_tokens=special)
        )

    return encode


def _shell(
    body: CreateResponse,
    response_id: str,
    instructions: str | None,
    conversation_id: str | None,
    prompt: ResponsePrompt | None,
) -> Response:
    """The response object before any output: what `response.created` carries."""
    return Response(
        id=response_id,
        created_at=int(time.time()),
        status="in_progress",
        instructions=instructions,
        max_output_tokens=body.max_output_tokens,
        model=body.model,
        parallel_tool_calls=body.parallel_tool_calls is not False,
        previous_response_id=body.previous_response_id,
        conversation=ResponseConversation(id=conversation_id) if conversation_id else None,
        prompt=prompt,
        service_tier="flex" if body.service_tier == "flex" else "default",
        store=body.store is not False,
        temperature=1.0 if body.temperature is None else body.temperature,
        text=body.text or {"format": {"type": "text"}},
        tool_choice=body.tool_choice if body.tool_choice is not None else "auto",
        tools=[_echoed_tool(t) for t in body.tools or []],
        top_p=1.0 if body.top_p is None else body.top_p,
        truncation=body.truncation or "disabled",
        metadata=body.metadata or {},
        user=body.user,
        safety_identifier=body.safety_identifier,
        prompt_cache_key=body.prompt_cache_key,
    )


def _echoed_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A function tool as the response object shows it: every field, `strict` as applied
    (schemas are enforced only when a call is forced, so never strict unless asked)."""
    return {
        "type": "function",
        "name": tool["name"],
        "description": tool.get("description"),
        "parameters": tool.get("parameters", {"type": "object", "properties": {}}),
        "strict": bool(tool.get("strict", False)),
    }


def _dropped_header(assembled: Assembled) -> dict[str, str]:
    """What `truncation=auto` left out, for the caller to see: a count of items."""
    return {"headrace-truncated-items": str(len(assembled.dropped))} if assembled.dropped else {}


def _missing(response_id: str) -> NotFoundError:
    return NotFoundError(f"Response with id '{response_id}' not found.", param="response_id")
