"""`/v1/chat/completions`: the data-plane lifecycle for chat, top to bottom."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import Response

from headrace.api import sse
from headrace.api.chat_request import (
    max_output_tokens,
    output_grammar,
    priority,
    refuse_unsupported,
    sampling_params,
    template_messages,
    tool_plan,
)
from headrace.api.generation import merged_events
from headrace.api.generation_response import Meter, respond
from headrace.api.internal import response_id
from headrace.api.load import shed_load
from headrace.api.moderation import message_texts, moderate_input
from headrace.api.privacy import check_input, injection_headers
from headrace.api.proxy import proxy_chat
from headrace.api.state import Caller, Internal, Record, State
from headrace.context.prompt import build_chat_prompt
from headrace.context.tool_calls import ParsedToolCall, ToolCallStream, parse_tool_calls
from headrace.engine.interface import (
    Engine,
    Finished,
    GenerationEvent,
    GenerationRequest,
    TextDelta,
    TokenLogprob,
)
from headrace.engine.tokenizer import Tokenizer
from headrace.observability.request import timed
from headrace.protocol.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    Delta,
    FunctionCall,
    FunctionDelta,
    ResponseMessage,
    ToolCall,
    ToolCallDelta,
    TopLogprob,
)
from headrace.protocol.chat import (
    TokenLogprob as WireTokenLogprob,
)
from headrace.protocol.common import FinishReason, PromptTokensDetails, Usage
from headrace.routing.affinity import HEADER as AFFINITY_HEADER
from headrace.safety.placeholders import Masker, restore_events
from headrace.safety.tool_validation import ToolCallValidator

router = APIRouter(tags=["chat"])
_FINISH_REASONS: dict[str, FinishReason] = {"length": "length", "content_filter": "content_filter"}


@router.post("/v1/chat/completions", response_model=None)
async def create_chat_completion(
    body: ChatCompletionRequest,
    state: State,
    caller: Caller,
    record: Record,
    internal: Internal,
    affinity: Annotated[str | None, Header(alias=AFFINITY_HEADER)] = None,
) -> Response:
    # Receive, authenticate and validate ran before this line (middleware, Caller, pydantic).
    record.stream = bool(body.stream)
    refuse_unsupported(body)
    record.mark("validate")
    caller.check_model(body.model)
    if (remote := state.registry.remote(body.model)) is not None:
        record.model = body.model  # a model on deployments elsewhere: proxied there
        batch = internal is not None or priority(body) > 0
        return await proxy_chat(
            state, caller, record, remote, body, affinity=affinity, batch=batch, call=internal
        )
    model = state.registry.chat(body.model)
    record.model = body.model  # only now: a label must name a model we serve
    shed_load(model, record, batch=internal is not None or priority(body) > 0)
    record.mark("route")
    tools = tool_plan(body, model.structured)
    validator = ToolCallValidator(body.tools) if tools.parse_calls else None
    guarded = await check_input(state, caller, record, template_messages(body.messages))
    record.mark("check_input")
    prompt = build_chat_prompt(
        model.tokenizer,
        guarded.messages,
        context_window=model.context_window,
        max_tokens=max_output_tokens(body),
        default_max_tokens=model.settings.default_max_tokens,
        tools=tools.template_tools,
    )
    grammar = tools.grammar or output_grammar(body, model.structured)
    record.mark("build_context")
    completion_id = response_id("chatcmpl", internal)
    requests = [
        GenerationRequest(
            request_id=f"{completion_id}-{i}",
            prompt_token_ids=prompt.token_ids,
            params=sampling_params(
                body, prompt.max_tokens, model.tokenizer, choice=i, grammar=grammar
            ),
            priority=internal.priority if internal is not None else priority(body),
            tenant=caller.project_id,
        )
        for i in range(body.n or 1)
    ]
    # Admit once the prompt is built: the token reservation needs its length.
    admission = await state.limiter.admit(
        caller, model=body.model, tokens=len(prompt.token_ids) + prompt.max_tokens * len(requests)
    )
    record.mark("admission")
    run = _Run(completion_id, body.model, int(time.time()), tokenizer=model.tokenizer, body=body)
    run.parse_calls = tools.parse_calls
    run.tools, run.masker = validator, guarded.masker
    run.record = record
    run.prompt_tokens = len(prompt.token_ids)
    texts = message_texts(guarded.messages)
    await moderate_input(state, caller, model, admission, run, texts, param="messages")
    return await respond(
        state,
        caller,
        model,
        admission,
        run,
        stream=(lambda: run.stream(model.engine, requests)) if body.stream else None,
        complete=lambda: run.complete(model.engine, requests),
        headers={"openai-model": body.model} | injection_headers(guarded),
    )


@dataclass(slots=True)
class _ChoiceState:
    text: list[str] = field(default_factory=list)
    logprobs: list[WireTokenLogprob] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    completion_tokens: int = 0
    calls: ToolCallStream = field(default_factory=ToolCallStream)


@dataclass(slots=True, kw_only=True)
class _Run(Meter):
    """One chat completion being produced: collects events into the wire shapes."""

    tokenizer: Tokenizer
    body: ChatCompletionRequest
    parse_calls: bool = False  # tools were offered: outputs may hold tool calls
    tools: ToolCallValidator | None = None  # a call its schema refuses stays content
    masker: Masker | None = None  # PII mode `mask`: placeholders restored in the output

    async def complete(self, engine: Engine, requests: list[GenerationRequest]) -> ChatCompletion:
        choices = [_ChoiceState(calls=ToolCallStream(accept=self._accept)) for _ in requests]
        self.engaged = True
        async for index, ev in timed(self._events(engine, requests), self.record):
            state = choices[index]
            if isinstance(ev, Finished):
                self._finish(state, ev)
            else:
                self._count(state, ev)
                state.text.append(ev.text)
                state.logprobs.extend(self._wire_logprobs(ev.logprobs))
        return ChatCompletion(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[
                Choice(
                    index=i,
                    message=self._message(c),
                    finish_reason=c.finish_reason,
                    logprobs=ChoiceLogprobs(content=c.logprobs) if self.body.logprobs else None,
                )
                for i, c in enumerate(choices)
            ],
            usage=self._usage(choices),
            service_tier=self._service_tier(),
        )

    async def stream(
        self, engine: Engine, requests: list[GenerationRequest]
    ) -> AsyncIterator[bytes]:
        choices = [_ChoiceState(calls=ToolCallStream(accept=self._accept)) for _ in requests]
        for i in range(len(requests)):
            yield sse.event(
                self._chunk(ChunkChoice(index=i, delta=Delta(role="assistant", content="")))
            )
        self.engaged = True
        async for index, ev in timed(self._events(engine, requests), self.record):
            state = choices[index]
            if isinstance(ev, Finished):
                self._finish(state, ev)
                for delta in self._tool_deltas(state, state.calls.flush(), []):
                    yield sse.event(self._chunk(ChunkChoice(index=index, delta=delta)))
                choice = ChunkChoice(index=index, delta=Delta(), finish_reason=state.finish_reason)
                yield sse.event(self._chunk(choice))
                continue
            self._count(state, ev)
            if not ev.text and not ev.logprobs:
                continue  # a token whose text is still held back: nothing to send yet
            logprobs = self._wire_logprobs(ev.logprobs)
            text = ev.text
            if self.parse_calls:
                text, calls = state.calls.push(ev.text)
                for delta in self._tool_deltas(state, "", calls):
                    yield sse.event(self._chunk(ChunkChoice(index=index, delta=delta)))
                if not text and not self.body.logprobs:
                    continue
            choice = ChunkChoice(
                index=index,
                delta=Delta(content=text),
                logprobs=ChoiceLogprobs(content=logprobs) if self.body.logprobs else None,
            )
            yield sse.event(self._chunk(choice))
        if self.body.stream_options and self.body.stream_options.include_usage:
            yield sse.event(self._chunk(None, usage=self._usage(choices)))
        yield sse.DONE

    def _events(
        self, engine: Engine, requests: list[GenerationRequest]
    ) -> AsyncIterator[tuple[int, GenerationEvent]]:
        events = merged_events(engine, requests)
        if self.masker is not None:
            events = restore_events(events, self.masker)
        return self.checked(events, engine, requests)  # the check-output stage

    def _accept(self, call: ParsedToolCall) -> bool:
        """A call is returned as one only when its arguments fit its tool's schema."""
        return self.tools is None or self.tools.accepts(call.name, call.arguments)

    def _chunk(self, choice: ChunkChoice | None, usage: Usage | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[] if choice is None else [choice],
            usage=usage,
            service_tier=self._service_tier(),
        )

    def _count(self, state: _ChoiceState, ev: TextDelta) -> None:
        state.completion_tokens += len(ev.token_ids)
        self.generated_tokens += len(ev.token_ids)

    def _message(self, state: _ChoiceState) -> ResponseMessage:
        text = "".join(state.text)
        if not self.parse_calls:
            return ResponseMessage(content=text)
        content, calls = parse_tool_calls(text, self._accept)
        if calls and state.finish_reason == "stop":
            state.finish_reason = "tool_calls"
        return ResponseMessage(
            content=content if content.strip() or not calls else None,
            tool_calls=[
                ToolCall(id=c.id, function=FunctionCall(name=c.name, arguments=c.arguments))
                for c in calls
            ]
            or None,
        )

    def _tool_deltas(
        self, state: _ChoiceState, tail: str, calls: list[ParsedToolCall]
    ) -> list[Delta]:
        """Stream fragments for finished calls (header, then arguments, as OpenAI sends
        them) and any trailing content."""
        deltas = [Delta(content=tail)] if tail else []
        for call in calls:
            index = len(state.calls.calls) - len(calls) + calls.index(call)
            deltas.append(
                Delta(
                    tool_calls=[
                        ToolCallDelta(
                            index=index,
                            id=call.id,
                            type="function",
                            function=FunctionDelta(name=call.name, arguments=""),
                        )
                    ]
                )
            )
            deltas.append(
                Delta(
                    tool_calls=[
                        ToolCallDelta(index=index, function=FunctionDelta(arguments=call.arguments))
                    ]
                )
            )
        return deltas

    def _finish(self, state: _ChoiceState, ev: Finished) -> None:
        state.finish_reason = _FINISH_REASONS.get(ev.finish_reason, "stop")
        if state.calls.calls and ev.finish_reason == "stop":
            state.finish_reason = "tool_calls"
        # The engine's count is the truth: held-back stop-string tokens never streamed.
        self.generated_tokens += ev.completion_tokens - state.completion_tokens
        state.completion_tokens = ev.completion_tokens
        self.prompt_tokens = ev.prompt_tokens
        self.cached_tokens = max(self.cached_tokens, ev.cached_tokens)

    def _usage(self, choices: list[_ChoiceState]) -> Usage:
        completion = sum(c.completion_tokens for c in choices)
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=completion,
            total_tokens=self.prompt_tokens + completion,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=self.cached_tokens),
        )

    def _service_tier(self) -> str:
        return "flex" if self.body.service_tier == "flex" else "default"

    def _wire_logprobs(self, logprobs: tuple[TokenLogprob, ...]) -> list[WireTokenLogprob]:
        out = []
        for lp in logprobs:
            text = self.tokenizer.token_text(lp.token_id)
            out.append(
                WireTokenLogprob(
                    token=text,
                    logprob=lp.logprob,
                    bytes=list(text.encode()),
                    top_logprobs=[
                        TopLogprob(
                            token=(t := self.tokenizer.token_text(tid)),
                            logprob=v,
                            bytes=list(t.encode()),
                        )
                        for tid, v in lp.top
                    ],
                )
            )
        return out
