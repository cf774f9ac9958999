"""`/v1/embeddings` with the bundled MiniLM model."""

from __future__ import annotations

import asyncio
import base64
import math
import struct
import time
from pathlib import Path

import httpx
import openai
import pytest

from headrace.admission.secrets import load_or_create_pepper
from headrace.api.app import create_app
from headrace.config import Settings
from headrace.control.keys import bootstrap
from headrace.routing.registry import ModelRegistry
from headrace.storage.database import Database
from tests.conftest import serving, usage_rows

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


def test_embeddings_are_metered_apart_from_completions(
    tmp_path: Path, registry: ModelRegistry
) -> None:
    """Each embeddings request leaves one usage event (endpoint, version, deployment,
    latency), read back from `/v1/organization/usage/embeddings`, and not counted among
    completions; a chat request beside it is a completion with its latency breakdown."""
    settings = Settings(data_dir=tmp_path)

    async def keys() -> tuple[str, str]:
        db = Database(settings.effective_database_url)
        await db.migrate()
        first = await bootstrap(db, load_or_create_pepper(settings.data_dir))
        await db.close()
        assert first is not None
        return first.api_key.secret, first.admin_secret

    api_key, admin_key = asyncio.run(keys())
    with serving(create_app(settings, registry)) as base_url:
        client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=api_key, max_retries=0)
        used = [
            client.embeddings.create(model=MODEL, input=text).usage.prompt_tokens
            for text in ("one", ["two words", "three more words"])
        ]
        client.chat.completions.create(
            model="headrace-tiny-chat", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
        )
    rows = {r.endpoint: r for r in usage_rows(settings)}
    embedding_rows = [r for r in usage_rows(settings) if r.endpoint == "embeddings"]
    assert sorted(r.input_tokens for r in embedding_rows) == sorted(used)
    assert {(r.status, r.output_tokens, r.deployment) for r in embedding_rows} == {
        ("ok", 0, "local:embedder")
    }
    assert all(len(r.model_version) == 12 and r.gateway_ms is not None for r in embedding_rows)
    chat = rows["chat.completions"]
    assert chat.deployment == "local:builtin"
    assert chat.model_version
    assert chat.gateway_ms is not None
    assert chat.ttft_ms is not None
    assert chat.gateway_ms <= chat.ttft_ms <= chat.latency_ms

    with (
        serving(create_app(settings, registry)) as base_url,
        httpx.Client(
            base_url=f"{base_url}/v1/organization",
            headers={"Authorization": f"Bearer {admin_key}"},
        ) as admin,
    ):
        start = int(time.time()) // 86_400 * 86_400
        page = admin.get("/usage/embeddings", params={"start_time": start}).json()
        [result] = page["data"][-1]["results"]
        assert result["object"] == "organization.usage.embeddings.result"
        assert (result["num_model_requests"], result["input_tokens"]) == (2, sum(used))
        completions = admin.get("/usage/completions", params={"start_time": start}).json()
        [completion] = completions["data"][-1]["results"]
        assert completion["num_model_requests"] == 1
