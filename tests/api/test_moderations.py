"""`/v1/moderations` through the SDK, in OpenAI's shape."""

from __future__ import annotations

import openai
import pytest

from headrace.safety.moderation import CATEGORIES
from tests.api.test_contract import REFERENCE, Contract
from tests.conftest import Server


def test_one_string(client: openai.OpenAI) -> None:
    done = client.moderations.create(input="I want to kill myself", model="omni-moderation-latest")
    assert done.id.startswith("modr-")
    assert done.model == "omni-moderation-latest"
    [result] = done.results
    assert result.flagged
    assert result.categories.self_harm_intent
    assert result.categories.self_harm
    assert not result.categories.sexual_minors
    assert 0.9 < result.category_scores.self_harm_intent <= 1
    raw = result.model_dump(by_alias=True)
    assert set(raw["categories"]) == set(CATEGORIES) == set(raw["category_scores"])
    assert raw["category_applied_input_types"] == {c: ["text"] for c in CATEGORIES}


def test_a_list_gives_one_result_each_in_order(client: openai.OpenAI) -> None:
    done = client.moderations.create(
        input=[
            "What is the capital of France?",
            "you are a worthless idiot and everyone hates you",
        ],
        model="text-moderation-latest",
    )
    assert [r.flagged for r in done.results] == [False, True]
    assert done.results[1].categories.harassment


def test_text_parts_are_one_input_and_our_own_name_works(client: openai.OpenAI) -> None:
    done = client.moderations.create(
        model="headrace-moderation",
        input=[
            {"type": "text", "text": "Here is my plan."},
            {"type": "text", "text": "I want to kill myself"},
        ],
    )
    [result] = done.results
    assert result.flagged


def test_default_model(client: openai.OpenAI) -> None:
    assert client.moderations.create(input="hello").results[0].flagged is False


def test_an_image_part_is_a_clear_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.moderations.create(
            model="omni-moderation-latest",
            input=[{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}],
        )
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["param"] == "input[0]"
    assert "image" in body["message"]


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.moderations.create(input="hi", model="moderation-9000")
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["code"] == "model_not_found"


@pytest.mark.parametrize("body", [{}, {"input": []}, {"input": 5}, {"input": "x", "extra": 1}])
def test_bad_bodies_are_400(server: Server, body: dict[str, object]) -> None:
    import httpx

    r = httpx.post(
        f"{server.base_url}/v1/moderations",
        json=body,
        headers={"Authorization": f"Bearer {server.api_key}"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_needs_a_key(server: Server) -> None:
    import httpx

    r = httpx.post(f"{server.base_url}/v1/moderations", json={"input": "hi"})
    assert r.status_code == 401


@pytest.mark.skipif(not REFERENCE.exists(), reason="no reference OpenAPI file")
def test_response_matches_the_reference_schema(server: Server) -> None:
    import httpx

    r = httpx.post(
        f"{server.base_url}/v1/moderations",
        json={"input": ["hi", "I want to kill myself"]},
        headers={"Authorization": f"Bearer {server.api_key}"},
    )
    assert r.status_code == 200
    Contract(REFERENCE).check(r.json(), "CreateModerationResponse")
