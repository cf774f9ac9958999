"""`/v1/embeddings` with the bundled sentence-embedding model."""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Callable

from fastapi import APIRouter, Response

from headrace.api.accounting import accounted, begun, once
from headrace.api.internal import response_id
from headrace.api.proxy import proxy_embeddings
from headrace.api.state import Caller, Internal, Record, State
from headrace.errors import InvalidRequestError
from headrace.metering.usage import EventStatus, Prices, Status, UsageEvent, usage_event
from headrace.protocol.embeddings import (
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
)

router = APIRouter(tags=["embeddings"])
MAX_INPUTS = 2048


@router.post("/v1/embeddings", response_model=EmbeddingResponse)
async def create_embeddings(
    body: EmbeddingRequest,
    state: State,
    caller: Caller,
    response: Response,
    record: Record,
    internal: Internal,
) -> EmbeddingResponse | Response:
    caller.check_model(body.model)
    if (remote := state.registry.remote(body.model)) is not None:
        record.model = body.model  # a model on deployments elsewhere: proxied there
        return await proxy_embeddings(
            state, caller, record, remote, body, batch=internal is not None, call=internal
        )
    model = state.registry.embedding(body.model)
    record.model = body.model  # only now: a label must name a model we serve
    embedder = model.embedder
    if body.dimensions is not None and body.dimensions != embedder.dimensions:
        raise InvalidRequestError(
            f"This model only supports dimensions={embedder.dimensions}.", param="dimensions"
        )
    texts = _texts(body.input, embedder.decode, embedder.vocab_size)
    tokens = sum(embedder.count_tokens(texts))
    admission = await state.limiter.admit(caller, model=body.model, tokens=tokens)
    record.mark("admission")
    response.headers.update(admission.headers)
    request_id, created = response_id("embd", internal), int(time.time())
    prices = Prices(model.settings.input_price_per_1m, model.settings.output_price_per_1m)
    handed_s: float | None = None  # when the embedder got the work: the gateway's share

    def usage(status: EventStatus) -> UsageEvent:
        return usage_event(
            request_id=request_id,
            created_at=created,
            org_id=caller.org_id,
            project_id=caller.project_id,
            api_key_id=caller.key_id,
            model=body.model,
            input_tokens=tokens,
            cached_tokens=0,
            output_tokens=0,
            latency_s=record.now_s(),
            prices=prices,
            status=status,
            endpoint="embeddings",
            deployment=model.deployment,
            model_version=model.version,
            gateway_s=handed_s,
        )

    @once
    def account(status: Status) -> None:
        admission.release(tokens)  # input is all an embedding costs: nothing to refund
        event = usage(status)
        record.account(event, status)
        state.ledger.record(event)

    # Like a generation: the started row is durable before the work, one event at the end.
    await begun(state.ledger, usage("started"), account)
    handed_s = record.now_s()
    vectors = await accounted(embedder.aembed(texts), account)
    return EmbeddingResponse(
        data=[
            Embedding(index=i, embedding=_encode(v, body.encoding_format))
            for i, v in enumerate(vectors)
        ],
        model=body.model,
        usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )


def _texts(
    value: str | list[str] | list[int] | list[list[int]],
    decode: Callable[[list[int]], str],
    vocab_size: int,
) -> list[str]:
    items: list[str | int | list[int]] = [value] if isinstance(value, str) else list(value)
    if not items:
        raise InvalidRequestError("'input' must not be empty.", param="input")
    if len(items) > MAX_INPUTS:
        raise InvalidRequestError(f"At most {MAX_INPUTS} inputs per request.", param="input")
    if all(isinstance(i, int) for i in items):  # one input given as token ids
        items = [[i for i in items if isinstance(i, int)]]
    out = []
    for i, item in enumerate(items):
        ids = [item] if isinstance(item, int) else item
        if not isinstance(ids, str) and any(not 0 <= t < vocab_size for t in ids):
            # The tokenizer would drop unknown ids silently, or overflow on huge ones.
            raise InvalidRequestError(
                f"'input[{i}]' has token ids outside the vocabulary (0 to {vocab_size - 1}).",
                param="input",
            )
        text = ids if isinstance(ids, str) else decode(ids)
        if not text:
            raise InvalidRequestError(f"'input[{i}]' must not be empty.", param="input")
        out.append(text)
    return out


def _encode(vector: list[float], fmt: str) -> list[float] | str:
    if fmt == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
