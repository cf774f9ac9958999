"""`/tokenize` and `/detokenize`: the counts every other endpoint uses."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import Server

MODEL = "headrace-tiny-chat"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def _post(server: Server, path: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}{path}", json=body, headers={"Authorization": f"Bearer {server.api_key}"}
    )


def test_messages_count_is_the_chat_prompt_count(server: Server, client: openai.OpenAI) -> None:
    counted = _post(server, "/tokenize", {"model": MODEL, "messages": MESSAGES}).json()
    r = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=1)  # type: ignore[arg-type]
    assert r.usage is not None
    assert counted["count"] == r.usage.prompt_tokens == len(counted["tokens"])
    assert counted["max_model_len"] == 2048


def test_round_trip(server: Server) -> None:
    text = "Héllo, wörld! 123"
    tokens = _post(server, "/tokenize", {"model": MODEL, "prompt": text}).json()["tokens"]
    back = _post(server, "/detokenize", {"model": MODEL, "tokens": tokens}).json()
    assert back["prompt"] == text


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/tokenize", {"model": MODEL}, "prompt"),
        ("/tokenize", {"model": MODEL, "prompt": "x", "messages": MESSAGES}, "prompt"),
        ("/detokenize", {"model": MODEL, "tokens": [10**9]}, "tokens"),
        ("/detokenize", {"model": MODEL, "tokens": "abc"}, "tokens"),
    ],
)
def test_bad_input(server: Server, path: str, body: dict[str, object], param: str) -> None:
    response = _post(server, path, body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_unknown_model(server: Server) -> None:
    assert _post(server, "/tokenize", {"model": "nope", "prompt": "x"}).status_code == 404
