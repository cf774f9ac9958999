"""A key of project B gets 404 for every id of project A, on every route that takes one,
exactly as for an id that does not exist; A's objects are untouched afterwards."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute

from headrace.api.app import create_app
from headrace.config import Settings
from tests.api import stateful
from tests.api.stateful import MODEL, Gateway

gateway = stateful.gateway  # the module-scoped fixture of the stateful gateway


def _a_objects(gateway: Gateway) -> dict[str, str]:
    client = gateway.sdk(gateway.key_a)
    conv = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "A's secret"}]  # type: ignore[list-item]
    )
    [item] = client.conversations.items.list(conv.id).data
    response = client.responses.create(model=MODEL, input="A's question")
    return {"conversation_id": conv.id, "item_id": item.id, "response_id": response.id}


def _calls(
    ids: dict[str, str], own_conversation: str
) -> list[tuple[str, str, dict[str, Any] | None]]:
    c, i, r = ids["conversation_id"], ids["item_id"], ids["response_id"]
    return [
        ("GET", f"/v1/responses/{r}", None),
        ("DELETE", f"/v1/responses/{r}", None),
        ("GET", f"/v1/responses/{r}/input_items", None),
        ("POST", "/v1/responses", {"model": MODEL, "input": "x", "previous_response_id": r}),
        ("POST", "/v1/responses", {"model": MODEL, "input": "x", "conversation": c}),
        ("GET", f"/v1/conversations/{c}", None),
        ("POST", f"/v1/conversations/{c}", {"metadata": {"owner": "B"}}),
        ("DELETE", f"/v1/conversations/{c}", None),
        ("GET", f"/v1/conversations/{c}/items", None),
        ("POST", f"/v1/conversations/{c}/items", {"items": [{"role": "user", "content": "B"}]}),
        ("GET", f"/v1/conversations/{c}/items/{i}", None),
        ("DELETE", f"/v1/conversations/{c}/items/{i}", None),
        # A's item through a conversation of B's own: still not B's.
        ("GET", f"/v1/conversations/{own_conversation}/items/{i}", None),
        ("DELETE", f"/v1/conversations/{own_conversation}/items/{i}", None),
    ]


def test_every_stateful_route_is_covered() -> None:
    """The list above names every route of the stateful APIs that takes an id."""
    app = create_app(Settings())
    served = {
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute)
        and route.path.startswith(("/v1/responses/", "/v1/conversations/"))
        for method in route.methods
    }
    ids = {
        "conversation_id": "{conversation_id}",
        "item_id": "{item_id}",
        "response_id": "{response_id}",
    }
    covered = {(m, p) for m, p, _ in _calls(ids, "{conversation_id}")}
    assert served <= covered


def test_project_b_gets_404_for_every_id_of_project_a(gateway: Gateway) -> None:
    ids = _a_objects(gateway)
    own = gateway.sdk(gateway.key_b).conversations.create().id
    with gateway.http(gateway.key_b) as http:
        for method, path, body in _calls(ids, own):
            response = http.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
            error = response.json()["error"]
            assert error["type"] == "invalid_request_error"
            assert "not found" in error["message"]
    # Nothing of A's was changed or removed by B's attempts.
    client = gateway.sdk(gateway.key_a)
    conv = client.conversations.retrieve(ids["conversation_id"])
    assert conv.metadata == {}
    items = client.conversations.items.list(ids["conversation_id"]).data
    assert [i.id for i in items] == [ids["item_id"]]
    assert client.responses.retrieve(ids["response_id"]).output_text == "xxx"


def test_an_unknown_id_answers_exactly_like_another_projects(gateway: Gateway) -> None:
    ids = _a_objects(gateway)
    with gateway.http(gateway.key_b) as http:
        theirs = http.get(f"/v1/responses/{ids['response_id']}").json()["error"]
        unknown = http.get("/v1/responses/resp_unknown").json()["error"]
    assert theirs["message"].replace(ids["response_id"], "ID") == unknown["message"].replace(
        "resp_unknown", "ID"
    )
    assert theirs["param"] == unknown["param"]
