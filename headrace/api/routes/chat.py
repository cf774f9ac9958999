"""`/v1/chat/completions`: the data-plane lifecycle for chat, top to bottom."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse

from headrace.api import sse
from headrace.api.chat_request import (
    max_output_tokens,
    priority,
    refuse_unsupported,
    sampling_params,
    template_messages,
)
from headrace.api.responses import json_response
from headrace.api.state import Caller, State
from headrace.context.prompt import build_chat_prompt
from headrace.engine.interface import (
    Engine,
    Finished,
    GenerationEvent,
    GenerationRequest,
    TokenLogprob,
)
from headrace.engine.tokenizer import Tokenizer
from headrace.protocol.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    Delta,
    ResponseMessage,
    TopLogprob,
)
from headrace.protocol.chat import (
    TokenLogprob as WireTokenLogprob,
)
from headrace.protocol.common import FinishReason, PromptTokensDetails, Usage

router = APIRouter(tags=["chat"])


@router.post("/v1/chat/completions", response_model=None)
async def create_chat_completion(
    body: ChatCompletionRequest, state: State, caller: Caller
) -> Response:
    # Receive, authenticate and validate ran before this line (middleware, Caller, pydantic).
    refuse_unsupported(body)
    model = state.registry.chat(body.model)
    prompt = build_chat_prompt(
        model.tokenizer,
        template_messages(body.messages),
        context_window=model.context_window,
        max_tokens=max_output_tokens(body),
        default_max_tokens=model.settings.default_max_tokens,
    )
    completion_id = f"chatcmpl-{secrets.token_hex(12)}"
    requests = [
        GenerationRequest(
            request_id=f"{completion_id}-{i}",
            prompt_token_ids=prompt.token_ids,
            params=sampling_params(body, prompt.max_tokens, model.tokenizer, choice=i),
            priority=priority(body),
            tenant=caller.project_id,
        )
        for i in range(body.n or 1)
    ]
    run = _Run(completion_id, body.model, int(time.time()), model.tokenizer, body)
    headers = {"openai-model": body.model}
    if body.stream:
        return StreamingResponse(
            run.stream(model.engine, requests),
            media_type=sse.MEDIA_TYPE,
            headers=sse.HEADERS | headers,
        )
    return json_response(await run.complete(model.engine, requests), headers=headers)


async def _merged(
    engine: Engine, requests: list[GenerationRequest]
) -> AsyncIterator[tuple[int, GenerationEvent]]:
    """Events of all choices as they come, tagged with the choice index."""
    if len(requests) == 1:
        async for ev in engine.generate(requests[0]):
            yield 0, ev
        return
    queue: asyncio.Queue[tuple[int, GenerationEvent] | BaseException] = asyncio.Queue()

    async def pump(index: int, request: GenerationRequest) -> None:
        try:
            async for ev in engine.generate(request):
                await queue.put((index, ev))
        except Exception as exc:
            await queue.put(exc)

    tasks = [asyncio.create_task(pump(i, r)) for i, r in enumerate(requests)]
    remaining = len(requests)
    try:
        while remaining:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            remaining -= isinstance(item[1], Finished)
    finally:
        for task in tasks:
            task.cancel()


@dataclass(slots=True)
class _ChoiceState:
    text: list[str] = field(default_factory=list)
    logprobs: list[WireTokenLogprob] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    completion_tokens: int = 0


@dataclass(slots=True)
class _Run:
    """One chat completion being produced: collects events into the wire shapes."""

    id: str
    model: str
    created: int
    tokenizer: Tokenizer
    body: ChatCompletionRequest
    prompt_tokens: int = 0
    cached_tokens: int = 0

    async def complete(self, engine: Engine, requests: list[GenerationRequest]) -> ChatCompletion:
        choices = [_ChoiceState() for _ in requests]
        async for index, ev in _merged(engine, requests):
            state = choices[index]
            if isinstance(ev, Finished):
                self._finish(state, ev)
            else:
                state.text.append(ev.text)
                state.logprobs.extend(self._wire_logprobs(ev.logprobs))
        return ChatCompletion(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[
                Choice(
                    index=i,
                    message=ResponseMessage(content="".join(c.text)),
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
        choices = [_ChoiceState() for _ in requests]
        for i in range(len(requests)):
            yield sse.event(
                self._chunk(ChunkChoice(index=i, delta=Delta(role="assistant", content="")))
            )
        async for index, ev in _merged(engine, requests):
            if isinstance(ev, Finished):
                self._finish(choices[index], ev)
                choice = ChunkChoice(
                    index=index, delta=Delta(), finish_reason=choices[index].finish_reason
                )
            else:
                logprobs = self._wire_logprobs(ev.logprobs)
                choice = ChunkChoice(
                    index=index,
                    delta=Delta(content=ev.text),
                    logprobs=ChoiceLogprobs(content=logprobs) if self.body.logprobs else None,
                )
            yield sse.event(self._chunk(choice))
        if self.body.stream_options and self.body.stream_options.include_usage:
            yield sse.event(self._chunk(None, usage=self._usage(choices)))
        yield sse.DONE

    def _chunk(self, choice: ChunkChoice | None, usage: Usage | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[] if choice is None else [choice],
            usage=usage,
            service_tier=self._service_tier(),
        )

    def _finish(self, state: _ChoiceState, ev: Finished) -> None:
        state.finish_reason = "length" if ev.finish_reason == "length" else "stop"
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
