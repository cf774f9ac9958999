"""`/v1/models` and authentication, through the official SDK."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import Server


def test_list_models_reports_both_bundled_models(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {"headrace-tiny-chat", "headrace-embed-minilm"}
    chat = models["headrace-tiny-chat"]
    assert chat.object == "model"
    assert chat.owned_by == "headrace"
    assert chat.context_window == 2048  # type: ignore[attr-defined]
    assert "chat.completions" in chat.capabilities  # type: ignore[attr-defined]
    assert {"tools", "json_schema"} <= set(chat.capabilities)  # type: ignore[attr-defined]
    assert chat.pricing == {"input_per_1m": 0.0, "output_per_1m": 0.0}  # type: ignore[attr-defined]
    assert models["headrace-embed-minilm"].kind == "embedding"  # type: ignore[attr-defined]


def test_retrieve_model(client: openai.OpenAI) -> None:
    model = client.models.retrieve("headrace-tiny-chat")
    assert model.id == "headrace-tiny-chat"
    assert model.created > 0


def test_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("gpt-17")
    assert info.value.code == "model_not_found"


def test_wrong_key_is_refused(server: Server) -> None:
    bad = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="sk-hr-" + "x" * 44)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.models.list()
    assert info.value.code == "invalid_api_key"
    assert info.value.body["type"] == "invalid_request_error"  # type: ignore[index]


@pytest.mark.parametrize("key", ["", "not-a-key", "sk-hr-short"])
def test_malformed_keys_are_refused(server: Server, key: str) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.get(f"{server.base_url}/v1/models", headers=headers)
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
