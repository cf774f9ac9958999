"""`/v1/embeddings` with the bundled MiniLM model."""

from __future__ import annotations

import base64
import math
import struct

import openai
import pytest

MODEL = "headrace-embed-minilm"


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_are_unit_vectors_with_meaning(client: openai.OpenAI) -> None:
    r = client.embeddings.create(
        model=MODEL, input=["a small cat", "a little kitten", "quarterly tax report"]
    )
    vectors = [d.embedding for d in r.data]
    assert [d.index for d in r.data] == [0, 1, 2]
    assert all(len(v) == 384 for v in vectors)
    assert all(math.isclose(math.sqrt(_cos(v, v)), 1.0, rel_tol=1e-4) for v in vectors)
    assert _cos(vectors[0], vectors[1]) > _cos(vectors[0], vectors[2]) + 0.2
    assert r.usage.prompt_tokens > 0


def test_base64_encoding_matches_float(client: openai.OpenAI) -> None:
    as_float = client.embeddings.create(model=MODEL, input="hello").data[0].embedding
    raw = client.with_options().embeddings.with_raw_response.create(
        model=MODEL, input="hello", encoding_format="base64"
    )
    encoded = raw.http_response.json()["data"][0]["embedding"]
    decoded = struct.unpack(f"<{len(as_float)}f", base64.b64decode(encoded))
    assert decoded == pytest.approx(as_float, abs=1e-6)


def test_token_id_input(client: openai.OpenAI) -> None:
    r = client.embeddings.create(model=MODEL, input=[[7592, 2088]])
    assert len(r.data[0].embedding) == 384


def test_unsupported_dimensions(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=MODEL, input="x", dimensions=128)
    assert info.value.param == "dimensions"


def test_chat_model_cannot_embed(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="headrace-tiny-chat", input="x")
