"""`/v1/embeddings` with the bundled sentence-embedding model."""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable

from fastapi import APIRouter, Response

from headrace.api.state import Caller, Record, State
from headrace.errors import InvalidRequestError
from headrace.protocol.embeddings import (
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
)

router = APIRouter(tags=["embeddings"])
MAX_INPUTS = 2048


@router.post("/v1/embeddings")
async def create_embeddings(
    body: EmbeddingRequest, state: State, caller: Caller, response: Response, record: Record
) -> EmbeddingResponse:
    caller.check_model(body.model)
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
    response.headers.update(admission.headers)
    try:
        vectors = await embedder.aembed(texts)
    finally:
        admission.release(tokens)  # input is all an embedding costs: nothing to refund
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
