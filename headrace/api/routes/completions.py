"""`/v1/completions`: legacy text completion, served by the same engines as chat."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import APIRouter
from fastapi.responses import Response

from headrace.api import sse
from headrace.api.chat_request import MAX_STOP_SEQUENCES, logit_bias
from headrace.api.generation import merged_events
from headrace.api.generation_response import Meter, respond
from headrace.api.internal import response_id
from headrace.api.load import shed_load
from headrace.api.moderation import moderate_input
from headrace.api.privacy import pii_masker
from headrace.api.proxy import proxy_completion
from headrace.api.state import Caller, Internal, Record, State
from headrace.context.prompt import fit_output_budget
from headrace.engine.interface import (
    Engine,
    Finished,
    GenerationEvent,
    GenerationRequest,
    SamplingParams,
    TextDelta,
    TokenLogprob,
)
from headrace.engine.tokenizer import Tokenizer
from headrace.errors import InvalidRequestError
from headrace.observability.request import timed
from headrace.protocol.common import FinishReason, Usage
from headrace.protocol.completions import (
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
)
from headrace.safety.placeholders import Masker, mask_prompt, restore_events

router = APIRouter(tags=["completions"])
_FINISH_REASONS: dict[str, FinishReason] = {"length": "length", "content_filter": "content_filter"}


@router.post("/v1/completions", response_model=None)
async def create_completion(
    body: CompletionRequest, state: State, caller: Caller, record: Record, internal: Internal
) -> Response:
    record.stream = bool(body.stream)
    refuse_unsupported_completion(body)
    record.mark("validate")
    caller.check_model(body.model)
    if (remote := state.registry.remote(body.model)) is not None:
        record.model = body.model  # a model on deployments elsewhere: proxied there
        return await proxy_completion(
            state, caller, record, remote, body, batch=internal is not None, call=internal
        )
    model = state.registry.chat(body.model)
    record.model = body.model  # only now: a label must name a model we serve
    shed_load(model, record, batch=internal is not None)
    record.mark("route")
    masker = await pii_masker(state, caller)
    prompts = _prompts(
        body.prompt if masker is None else mask_prompt(masker, body.prompt), model.tokenizer
    )
    n = body.n or 1
    completion_id = response_id("cmpl", internal)
    requests: list[GenerationRequest] = []
    for p, ids in enumerate(prompts):
        budget = fit_output_budget(
            len(ids), model.context_window, body.max_tokens, model.settings.default_max_tokens
        )
        for i in range(n):
            requests.append(
                GenerationRequest(
                    request_id=f"{completion_id}-{p}-{i}",
                    prompt_token_ids=ids,
                    params=_params(body, budget, model.tokenizer, choice=p * n + i),
                    tenant=caller.project_id,
                    priority=internal.priority if internal is not None else 0,
                )
            )
    reserved = sum(len(r.prompt_token_ids) + r.params.max_tokens for r in requests)
    record.mark("build_context")
    admission = await state.limiter.admit(caller, model=body.model, tokens=reserved)
    record.mark("admission")
    echoes = [model.tokenizer.decode(list(ids)) if body.echo else "" for ids in prompts]
    if masker is not None:  # the caller's own prompt, as they wrote it
        echoes = [masker.unmask(echo) for echo in echoes]
    run = _Run(
        completion_id,
        body.model,
        int(time.time()),
        tokenizer=model.tokenizer,
        body=body,
        echoes=echoes,
        n=n,
        masker=masker,
    )
    run.prompt_tokens = sum(len(ids) for ids in prompts)
    run.record = record
    run.endpoint = "completions"
    texts = [model.tokenizer.decode(list(ids)) for ids in prompts]
    await moderate_input(state, caller, model, admission, run, texts, param="prompt")
    return await respond(
        state,
        caller,
        model,
        admission,
        run,
        stream=(lambda: run.stream(model.engine, requests)) if body.stream else None,
        complete=lambda: run.complete(model.engine, requests),
        headers={"openai-model": body.model},
    )


def refuse_unsupported_completion(body: CompletionRequest) -> None:
    if body.stream_options is not None and not body.stream:
        raise InvalidRequestError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    if body.suffix:
        raise InvalidRequestError(
            "Unsupported parameter: 'suffix' is not supported with this model.",
            param="suffix",
            code="unsupported_parameter",
        )
    if body.best_of is not None and body.best_of != (body.n or 1):
        raise InvalidRequestError(
            "Unsupported parameter: 'best_of' other than n is not supported.",
            param="best_of",
            code="unsupported_parameter",
        )
    if body.echo and body.logprobs is not None:
        raise InvalidRequestError(
            "'echo' together with 'logprobs' is not supported: prompt logprobs are not computed.",
            param="echo",
            code="unsupported_parameter",
        )


def _prompts(
    prompt: str | list[str] | list[int] | list[list[int]], tokenizer: Tokenizer
) -> list[tuple[int, ...]]:
    if isinstance(prompt, str):
        items: list[str | list[int]] = [prompt]
    elif prompt and all(isinstance(t, int) for t in prompt):
        items = [[t for t in prompt if isinstance(t, int)]]
    else:
        items = [p for p in prompt if isinstance(p, str | list)]
    if not items:
        raise InvalidRequestError("'prompt' must not be empty.", param="prompt")
    out = []
    for i, item in enumerate(items):
        ids = tuple(tokenizer.encode(item)) if isinstance(item, str) else tuple(item)
        if not ids:
            raise InvalidRequestError(f"'prompt[{i}]' must not be empty.", param="prompt")
        if min(ids) < 0 or max(ids) >= tokenizer.vocab_size:
            raise InvalidRequestError(
                f"'prompt[{i}]' has token ids outside the vocabulary.", param="prompt"
            )
        out.append(ids)
    return out


def _params(
    body: CompletionRequest, budget: int, tokenizer: Tokenizer, *, choice: int
) -> SamplingParams:
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stop) > MAX_STOP_SEQUENCES:
        raise InvalidRequestError(
            f"At most {MAX_STOP_SEQUENCES} stop sequences are allowed.", param="stop"
        )
    return SamplingParams(
        max_tokens=budget,
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        seed=None if body.seed is None else body.seed + choice,
        presence_penalty=body.presence_penalty or 0.0,
        frequency_penalty=body.frequency_penalty or 0.0,
        logit_bias=logit_bias(body.logit_bias, tokenizer.vocab_size),
        stop=tuple(s for s in stop if s),
        logprobs=body.logprobs,
    )


@dataclass(slots=True)
class _Choice:
    text: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    token_logprobs: list[float | None] = field(default_factory=list)
    top_logprobs: list[dict[str, float]] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    completion_tokens: int = 0
    prompt_tokens: int = 0


@dataclass(slots=True, kw_only=True)
class _Run(Meter):
    """One legacy completion being produced: collects events into the wire shapes."""

    tokenizer: Tokenizer
    body: CompletionRequest
    echoes: list[str]
    n: int
    masker: Masker | None = None  # PII mode `mask`: placeholders restored in the output

    def _events(
        self, engine: Engine, requests: list[GenerationRequest]
    ) -> AsyncIterator[tuple[int, GenerationEvent]]:
        events = self.checked(merged_events(engine, requests), engine, requests)
        return events if self.masker is None else restore_events(events, self.masker)

    async def complete(self, engine: Engine, requests: list[GenerationRequest]) -> Completion:
        choices = [_Choice() for _ in requests]
        self.engaged = True
        async for index, ev in timed(self._events(engine, requests), self.record):
            c = choices[index]
            if isinstance(ev, Finished):
                self._finish(c, ev)
            else:
                self._count(c, ev)
                c.text.append(ev.text)
                self._add_logprobs(c, ev.logprobs)
        return Completion(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[
                CompletionChoice(
                    text=self.echoes[i // self.n] + "".join(c.text),
                    index=i,
                    logprobs=self._logprobs(c),
                    finish_reason=c.finish_reason,
                )
                for i, c in enumerate(choices)
            ],
            usage=self._usage(choices),
        )

    async def stream(
        self, engine: Engine, requests: list[GenerationRequest]
    ) -> AsyncIterator[bytes]:
        choices = [_Choice() for _ in requests]
        self.engaged = True
        for i in range(len(requests)):
            if self.echoes[i // self.n]:
                yield sse.event(
                    self._chunk(
                        CompletionChoice(text=self.echoes[i // self.n], index=i, finish_reason=None)
                    )
                )
        async for index, ev in timed(self._events(engine, requests), self.record):
            c = choices[index]
            if isinstance(ev, Finished):
                self._finish(c, ev)
                choice = CompletionChoice(text="", index=index, finish_reason=c.finish_reason)
            else:
                self._count(c, ev)
                if not ev.text and not ev.logprobs:
                    continue  # a token whose text is still held back: nothing to send yet
                start = len(c.tokens)
                self._add_logprobs(c, ev.logprobs)
                choice = CompletionChoice(
                    text=ev.text,
                    index=index,
                    logprobs=self._logprobs(c, start),
                    finish_reason=None,
                )
            yield sse.event(self._chunk(choice))
        if self.body.stream_options and self.body.stream_options.include_usage:
            yield sse.event(
                Completion(
                    id=self.id,
                    created=self.created,
                    model=self.model,
                    choices=[],
                    usage=self._usage(choices),
                )
            )
        yield sse.DONE

    def _chunk(self, choice: CompletionChoice) -> Completion:
        return Completion(id=self.id, created=self.created, model=self.model, choices=[choice])

    def _count(self, c: _Choice, ev: TextDelta) -> None:
        c.completion_tokens += len(ev.token_ids)
        self.generated_tokens += len(ev.token_ids)

    def _finish(self, c: _Choice, ev: Finished) -> None:
        c.finish_reason = _FINISH_REASONS.get(ev.finish_reason, "stop")
        # The engine's count is the truth: held-back stop-string tokens never streamed.
        self.generated_tokens += ev.completion_tokens - c.completion_tokens
        c.completion_tokens = ev.completion_tokens
        c.prompt_tokens = ev.prompt_tokens

    def _usage(self, choices: list[_Choice]) -> Usage:
        # Each prompt counts once, however many choices it has.
        prompt = sum(c.prompt_tokens for c in choices[:: self.n])
        completion = sum(c.completion_tokens for c in choices)
        return Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )

    def _add_logprobs(self, c: _Choice, logprobs: tuple[TokenLogprob, ...]) -> None:
        for lp in logprobs:
            c.tokens.append(self.tokenizer.token_text(lp.token_id))
            c.token_logprobs.append(lp.logprob)
            c.top_logprobs.append({self.tokenizer.token_text(t): v for t, v in lp.top})

    def _logprobs(self, c: _Choice, start: int = 0) -> CompletionLogprobs | None:
        if self.body.logprobs is None:
            return None
        offsets, position = [], sum(len(t) for t in c.tokens[:start])
        for token in c.tokens[start:]:
            offsets.append(position)
            position += len(token)
        return CompletionLogprobs(
            tokens=c.tokens[start:],
            token_logprobs=c.token_logprobs[start:],
            top_logprobs=c.top_logprobs[start:],
            text_offset=offsets,
        )
