"""Models that run on deployments elsewhere: the request goes to an upstream the router
picks, and comes back as the upstream sends it, metered and accounted like a local run.

    route (rollout, affinity, bounds) -> admit (the prompt's tokens estimated) ->
    started row -> first event (retried on another deployment or a fallback model while
    nothing was sent) -> stream

Chunks pass through with our request id and public model name; the upstream is asked for
its usage (`stream_options.include_usage`), which replaces our estimate when it comes, and
is dropped again unless the client asked for it too. An upstream that sends no usage is
counted with our tokenizer: the prompt, and the answer's text (a stream: a token a chunk).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import orjson
from fastapi.responses import Response
from pydantic import BaseModel

from headrace.admission.auth import Principal
from headrace.admission.estimate import estimate_tokens
from headrace.api import sse
from headrace.api.generation_response import Meter, respond
from headrace.api.internal import InternalCall, response_id
from headrace.api.moderation import moderate_input
from headrace.api.privacy import check_input, injection_headers, pii_masker
from headrace.api.routing import RouteHints, route
from headrace.api.state import AppState
from headrace.errors import (
    BadGatewayError,
    ConflictError,
    HeadraceError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
)
from headrace.observability.request import RequestRecord
from headrace.protocol.chat import ChatCompletionRequest
from headrace.protocol.completions import CompletionRequest
from headrace.protocol.embeddings import EmbeddingRequest
from headrace.routing.affinity import affinity_key
from headrace.routing.registry import RemoteModel
from headrace.routing.router import Deployment
from headrace.routing.upstream import UpstreamError
from headrace.safety.chunk_guard import guarded_answer, guarded_chunks
from headrace.safety.placeholders import (
    Masker,
    mask_prompt,
    restore_answer,
    restored_chunks,
)

Event = tuple[Deployment, list[dict[str, Any]]]


async def proxy(
    state: AppState,
    caller: Principal,
    record: RequestRecord,
    model: RemoteModel,
    *,
    endpoint: str,
    path: str,
    body: dict[str, Any],
    prompt_text: str,
    max_tokens: int | None,
    hints: RouteHints | None = None,
    call: InternalCall | None = None,
    masker: Masker | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Serve `body` (the client's request, validated) from `model`'s deployments; `call` is
    the batch line behind an in-process request (its response id is the line's own);
    `masker` restores the placeholders PII mode `mask` sent instead of personal data;
    `headers` go on the response."""
    name = model.settings.name
    if not state.router.permits(name, caller.tier):
        raise NotFoundError(  # as for a model the key may not use: nothing is revealed
            f"The model `{name}` does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    stream = bool(body.get("stream"))
    # Routed before admission: a request refused for overload reserves nothing.
    plan = await route(state, caller, record, name, hints or RouteHints())
    prompt_tokens = estimate_tokens(prompt_text)
    output_cap = model.settings.default_max_tokens if max_tokens is None else max_tokens
    reserved = prompt_tokens + output_cap
    admission = await state.limiter.admit(caller, model=name, tokens=reserved)
    record.mark("admission")
    prefix = {"chat.completions": "chatcmpl", "completions": "cmpl"}.get(endpoint, "embd")
    meter = Meter(
        response_id(prefix, call), name, int(time.time()), endpoint, prompt_tokens, record=record
    )
    # Check input (and set up the output check), as for a local model.
    param = {"chat.completions": "messages", "completions": "prompt"}.get(endpoint, "input")
    await moderate_input(state, caller, model, admission, meter, [prompt_text], param=param)
    wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    sent = dict(body)
    if stream:
        sent["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    outgoing = {"traceparent": record.outgoing_traceparent()}

    def open_stream(d: Deployment) -> AsyncIterator[list[dict[str, Any]]]:
        assert d.target is not None  # the router holds upstream deployments only
        if stream:
            return state.upstream.stream(d.target, path, sent, outgoing)
        return _one(state.upstream.complete(d.target, path, sent, outgoing))

    # The upstream's chunks come in lists, those of one read together (a whole answer: one).
    events = _translated(state.router.failover(plan, open_stream))
    head: list[Event] = []
    reported = False  # the upstream sent its usage: else ours is counted at the end

    async def first_event() -> None:
        record.engine_submitted_s = record.now_s()
        head.append(await anext(events))
        served = head[0][0]
        meter.engaged = True
        meter.deployment, meter.model_version = served.name, served.version
        if served.model != name:
            response_headers["x-headrace-fallback-model"] = served.model
            record.fallback_model = served.model

    def measured(chunk: dict[str, Any]) -> dict[str, Any]:
        """`chunk`, counted: what the upstream generated, shown or not."""
        nonlocal reported
        reported = _measure(meter, record, chunk) or reported
        return chunk

    def checked() -> AsyncIterator[dict[str, Any]]:
        """The upstream's chunks one by one through the output check and the PII
        restoration."""
        source: AsyncIterator[dict[str, Any]] = _chained(head, events, measured)
        if meter.output_check is not None:  # the project's policy checks output
            source = guarded_chunks(source, meter.output_check)
        if masker is not None:
            source = restored_chunks(source, masker)
        return source

    def framed(chunk: dict[str, Any]) -> bytes:
        """`chunk` as the client gets it (nothing, for the usage we asked for)."""
        if "usage" in chunk and not wants_usage:
            if not chunk.get("choices"):
                return b""  # the usage-only chunk we asked for, not the client
            del chunk["usage"]
        chunk["id"], chunk["model"] = meter.id, name
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    async def chunks() -> AsyncIterator[bytes]:
        if meter.output_check is None and masker is None:
            # Straight from the upstream, the chunks of one read in one piece.
            if data := b"".join([framed(measured(chunk)) for chunk in head[0][1]]):
                yield data
            async for _, batch in events:
                if data := b"".join([framed(measured(chunk)) for chunk in batch]):
                    yield data
        else:
            async for chunk in checked():
                if data := framed(chunk):
                    yield data
        if not reported:
            meter.prompt_tokens = model.tokenizer.count(prompt_text)
        if wants_usage and not reported:  # asked for, and the upstream sent none: ours
            kind = "chat.completion.chunk" if endpoint == "chat.completions" else "text_completion"
            last = {"id": meter.id, "object": kind,
                    "created": meter.created, "model": name, "choices": [],
                    "usage": _usage(meter, endpoint)}  # fmt: skip
            yield b"data: " + orjson.dumps(last) + b"\n\n"
        yield sse.DONE

    async def complete() -> dict[str, Any]:
        answer = head[0][1][0]
        # Read the one-answer stream to its end: the router then counts the request done
        # (in flight, circuit breaker) now, not when the generator is collected.
        async for _ in events:
            pass
        if not _measure(meter, record, answer):  # no usage from the upstream: ours
            meter.prompt_tokens = model.tokenizer.count(prompt_text)
            meter.generated_tokens = sum(model.tokenizer.count(t) for t in _answer_texts(answer))
            answer["usage"] = _usage(meter, endpoint)
        if meter.output_check is not None:
            answer = await guarded_answer(answer, meter.output_check)
        if masker is not None:
            restore_answer(answer, masker)
        answer["id"], answer["model"] = meter.id, name
        return answer

    response_headers = {"openai-model": name, **(headers or {})}
    return await respond(
        state,
        caller,
        model,
        admission,
        meter,
        stream=chunks if stream else None,
        complete=complete,
        headers=response_headers,
        first_event=first_event,
    )


async def proxy_chat(
    state: AppState,
    caller: Principal,
    record: RequestRecord,
    model: RemoteModel,
    body: ChatCompletionRequest,
    *,
    affinity: str | None = None,
    batch: bool = False,
    call: InternalCall | None = None,
    received: dict[str, Any] | None = None,
) -> Response:
    """`/v1/chat/completions` of a model on deployments elsewhere; `affinity` is the
    client's `x-headrace-affinity`, else the conversation's opening names it. `received`
    is the JSON `body` was validated from, forwarded as the client wrote it (the proxy
    lane has it; rebuilding it from `body` cost 2% of a proxied request)."""
    _check_kind(model, "chat")
    sent = _as_sent(body, received)
    # Tool results scored for injection, personal data masked (PII mode `mask`): what the
    # upstream sees, as for a local model (api/privacy.py).
    guarded = await check_input(state, caller, record, sent["messages"])
    record.mark("check_input")
    if guarded.masker is not None:
        sent = sent | {"messages": guarded.messages}
    texts = [m.get("content") for m in sent["messages"]]
    prompt_text = "\n".join(t if isinstance(t, str) else orjson.dumps(t).decode() for t in texts)
    return await proxy(
        state,
        caller,
        record,
        model,
        endpoint="chat.completions",
        path="/chat/completions",
        body=sent,
        prompt_text=prompt_text,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        hints=RouteHints(affinity_key(sent["messages"], affinity), batch),
        call=call,
        masker=guarded.masker,
        headers=injection_headers(guarded),
    )


async def proxy_completion(
    state: AppState,
    caller: Principal,
    record: RequestRecord,
    model: RemoteModel,
    body: CompletionRequest,
    *,
    batch: bool = False,
    call: InternalCall | None = None,
    received: dict[str, Any] | None = None,
) -> Response:
    """`/v1/completions` of a model on deployments elsewhere."""
    _check_kind(model, "chat")
    sent = _as_sent(body, received)
    masker = await pii_masker(state, caller)
    if masker is not None:
        sent = sent | {"prompt": mask_prompt(masker, sent.get("prompt"))}
    prompt = sent.get("prompt")
    prompt_text = prompt if isinstance(prompt, str) else orjson.dumps(prompt).decode()
    return await proxy(
        state,
        caller,
        record,
        model,
        endpoint="completions",
        path="/completions",
        body=sent,
        prompt_text=prompt_text,
        max_tokens=body.max_tokens,
        hints=RouteHints(batch=batch),
        call=call,
        masker=masker,
    )


async def proxy_embeddings(
    state: AppState,
    caller: Principal,
    record: RequestRecord,
    model: RemoteModel,
    body: EmbeddingRequest,
    *,
    batch: bool = False,
    call: InternalCall | None = None,
    received: dict[str, Any] | None = None,
) -> Response:
    """`/v1/embeddings` of a model on deployments elsewhere: input is all it costs."""
    _check_kind(model, "embedding")
    sent = _as_sent(body, received)
    inputs = sent.get("input")
    prompt_text = inputs if isinstance(inputs, str) else orjson.dumps(inputs).decode()
    return await proxy(
        state,
        caller,
        record,
        model,
        endpoint="embeddings",
        path="/embeddings",
        body=sent,
        prompt_text=prompt_text,
        max_tokens=0,
        hints=RouteHints(batch=batch),
        call=call,
    )


def _as_sent(body: BaseModel, received: dict[str, Any] | None) -> dict[str, Any]:
    """What goes upstream: the JSON the client sent (validated as `body`), else `body`'s
    own fields as the client set them."""
    if received is not None:
        return received
    return body.model_dump(mode="json", exclude_unset=True, by_alias=True)


def _measure(meter: Meter, record: RequestRecord, chunk: dict[str, Any]) -> bool:
    """Count a chunk: a token per content delta until the upstream's own usage says;
    whether it carried that usage."""
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or choice.get("message") or {}
        if delta.get("content") or delta.get("tool_calls") or choice.get("text"):
            record.token_times_s.append(record.now_s())
            record.output_tokens_timed += 1
            if "message" not in choice:  # a chunk of a stream: a token, near enough
                meter.generated_tokens += 1
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        meter.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        meter.generated_tokens = int(usage.get("completion_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        meter.cached_tokens = int(details.get("cached_tokens") or 0)
        return True
    return False


def _usage(meter: Meter, endpoint: str) -> dict[str, int]:
    """The usage block of our own count, in `endpoint`'s shape."""
    if endpoint == "embeddings":
        return {"prompt_tokens": meter.prompt_tokens, "total_tokens": meter.prompt_tokens}
    return {
        "prompt_tokens": meter.prompt_tokens,
        "completion_tokens": meter.generated_tokens,
        "total_tokens": meter.used_tokens,
    }


def _answer_texts(answer: dict[str, Any]) -> list[str]:
    """What a whole answer generated: each choice's text or message content, and its tool
    calls' names and arguments (embeddings generate nothing)."""
    texts = []
    for choice in answer.get("choices") or ():
        message = choice.get("message") or {}
        texts.append(str(choice.get("text") or message.get("content") or ""))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            texts.append(f"{function.get('name') or ''}{function.get('arguments') or ''}")
    return texts


async def _one(answer: Awaitable[dict[str, Any]]) -> AsyncIterator[list[dict[str, Any]]]:
    yield [await answer]


async def _chained(
    head: list[Event],
    rest: AsyncIterator[Event],
    each: Callable[[dict[str, Any]], dict[str, Any]],
) -> AsyncIterator[dict[str, Any]]:
    """The chunks of `head`'s lists, then of `rest`'s, one by one, each through `each`."""
    for _, chunks in head:
        for chunk in chunks:
            yield each(chunk)
    async for _, chunks in rest:
        for chunk in chunks:
            yield each(chunk)


async def _translated(events: AsyncGenerator[Event]) -> AsyncIterator[Event]:
    """The router's events, its upstreams' failures in our error hierarchy."""
    try:
        async for event in events:
            yield event
    except UpstreamError as exc:
        raise _as_headrace_error(exc) from exc
    finally:
        await events.aclose()


def _as_headrace_error(exc: UpstreamError) -> HeadraceError:
    """What the client is told of an upstream's refusal: the request's own faults as the
    upstream said them; anything else is the gateway's problem, a 502."""
    kinds: dict[int, type[HeadraceError]] = {
        400: InvalidRequestError, 404: NotFoundError, 409: ConflictError,
        413: PayloadTooLargeError, 422: InvalidRequestError,
    }  # fmt: skip
    kind = kinds.get(exc.status or 0)
    if kind is None:
        return BadGatewayError(f"The model's deployment failed: {exc}")
    return kind(str(exc), param=exc.param, code=exc.code)


def _check_kind(model: RemoteModel, kind: str) -> None:
    if model.settings.kind != kind:
        what = "produce embeddings" if kind == "embedding" else "generate text"
        raise NotFoundError(
            f"The model `{model.settings.name}` does not {what}.",
            param="model",
            code="model_not_found",
        )
