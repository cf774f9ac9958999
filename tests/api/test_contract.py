"""Contract tests: what every route serves, recorded on the real models, validated against
the official OpenAPI description's schemas (`../shared/reference/openai-openapi.yaml`)."""

from __future__ import annotations

import base64
import copy
import struct
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import orjson
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.conftest import Server

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "openai-openapi.yaml"
MODEL = "headrace-tiny-chat"
EMBED = "headrace-embed-minilm"
ASK = [{"role": "user", "content": "Say hello."}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}

pytestmark = pytest.mark.skipif(not REFERENCE.exists(), reason="no reference OpenAPI file")


class Contract:
    """The reference document as a JSON Schema registry: `check(body, "Name")`."""

    def __init__(self, path: Path) -> None:
        document = _nullable(yaml.load(path.read_text(), Loader=yaml.CSafeLoader))
        schemas = document["components"]["schemas"]
        schemas["CreateCompletionStreamResponse"] = _completion_chunk(
            schemas["CreateCompletionResponse"]
        )
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource("urn:openai", resource)

    def check(self, instance: object, schema: str) -> None:
        validator = jsonschema.Draft202012Validator(
            {"$ref": f"urn:openai#/components/schemas/{schema}"}, registry=self._registry
        )
        problems = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(instance)
        ]
        assert not problems, f"{schema}: " + "; ".join(problems)


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true`, which the document still uses, as JSON Schema says it."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def _completion_chunk(response: dict[str, Any]) -> dict[str, Any]:
    """The document has no schema for legacy completion chunks; OpenAI streams them as
    `CreateCompletionResponse` with `finish_reason` null until a choice ends, and `usage`
    null but in the last chunk, as for chat chunks."""
    chunk = copy.deepcopy(response)
    choice = chunk["properties"]["choices"]["items"]["properties"]
    choice["finish_reason"] = {"anyOf": [choice["finish_reason"], {"type": "null"}]}
    chunk["properties"]["usage"] = {"anyOf": [chunk["properties"]["usage"], {"type": "null"}]}
    return chunk


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract(REFERENCE)


@pytest.fixture(scope="module")
def http(server: Server) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=60,
    )


def _post(http: httpx.Client, path: str, body: dict[str, Any], status: int = 200) -> Any:
    response = http.post(path, json=body)
    assert response.status_code == status, response.text
    return response.json()


def _events(http: httpx.Client, path: str, body: dict[str, Any]) -> list[Any]:
    with http.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    return [orjson.loads(line.removeprefix("data: ")) for line in lines[:-1]]


CHAT_BODIES: list[dict[str, Any]] = [
    {"max_tokens": 8},
    {"max_tokens": 4, "n": 2, "logprobs": True, "top_logprobs": 2, "seed": 1},
    {"max_tokens": 40, "tools": [WEATHER], "tool_choice": "required"},
    {
        "max_tokens": 30,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "object"}},
        },
    },
]


@pytest.mark.parametrize("extra", CHAT_BODIES)
def test_chat_completion(http: httpx.Client, contract: Contract, extra: dict[str, Any]) -> None:
    body = _post(http, "/v1/chat/completions", {"model": MODEL, "messages": ASK} | extra)
    contract.check(body, "CreateChatCompletionResponse")


@pytest.mark.parametrize("extra", CHAT_BODIES)
def test_chat_stream_chunks(http: httpx.Client, contract: Contract, extra: dict[str, Any]) -> None:
    body = {"model": MODEL, "messages": ASK, "stream": True} | extra
    body["stream_options"] = {"include_usage": True}
    chunks = _events(http, "/v1/chat/completions", body)
    assert chunks[-1]["usage"] is not None
    for chunk in chunks:
        contract.check(chunk, "CreateChatCompletionStreamResponse")


def test_completion(http: httpx.Client, contract: Contract) -> None:
    for extra in ({}, {"logprobs": 2, "n": 2}, {"echo": True, "prompt": ["a", "b"]}):
        body = {"model": MODEL, "prompt": "Once", "max_tokens": 4} | extra
        contract.check(_post(http, "/v1/completions", body), "CreateCompletionResponse")
    body = {"model": MODEL, "prompt": "Once", "max_tokens": 4, "stream": True, "logprobs": 1}
    body["stream_options"] = {"include_usage": True}
    for chunk in _events(http, "/v1/completions", body):
        contract.check(chunk, "CreateCompletionStreamResponse")


def test_embeddings(http: httpx.Client, contract: Contract) -> None:
    for extra in ({"input": "hi"}, {"input": ["a", "b"], "encoding_format": "base64"}):
        body = _post(http, "/v1/embeddings", {"model": EMBED} | extra)
        for item in body["data"]:
            if isinstance(item["embedding"], str):
                # The document types `embedding` as numbers only; OpenAI sends base64 as a
                # string of little-endian float32s, as we do: check it decodes to numbers.
                raw = base64.b64decode(item["embedding"])
                item["embedding"] = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        contract.check(body, "CreateEmbeddingResponse")


def test_models(http: httpx.Client, contract: Contract) -> None:
    listed = http.get("/v1/models").json()
    contract.check(listed, "ListModelsResponse")
    contract.check(http.get(f"/v1/models/{MODEL}").json(), "Model")


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/chat/completions", {"model": MODEL, "messages": []}, 400),
        ("/v1/chat/completions", {"model": "nope", "messages": ASK}, 404),
        ("/v1/chat/completions", {"model": MODEL, "messages": ASK, "n": 99}, 400),
        ("/v1/completions", {"model": MODEL, "prompt": "x", "suffix": "y"}, 400),
        ("/v1/embeddings", {"model": EMBED, "input": "x", "dimensions": 3}, 400),
        ("/v1/nowhere", {}, 404),
    ],
)
def test_errors(
    http: httpx.Client, contract: Contract, path: str, body: dict[str, Any], status: int
) -> None:
    contract.check(_post(http, path, body, status), "ErrorResponse")


def test_authentication_error(server: Server, contract: Contract) -> None:
    response = httpx.post(f"{server.base_url}/v1/chat/completions", json={})
    assert response.status_code == 401
    contract.check(response.json(), "ErrorResponse")


def test_idempotency_conflict_error(http: httpx.Client, contract: Contract) -> None:
    headers = {"Idempotency-Key": "contract-conflict"}
    first = {"model": EMBED, "input": "one"}
    assert http.post("/v1/embeddings", json=first, headers=headers).status_code == 200
    response = http.post("/v1/embeddings", json=first | {"input": "two"}, headers=headers)
    assert response.status_code == 409
    contract.check(response.json(), "ErrorResponse")
