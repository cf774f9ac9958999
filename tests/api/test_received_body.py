"""The received body, read and parsed once for every stage before the routes."""

from __future__ import annotations

from typing import Any

from headrace.admission.idempotency import fingerprint
from headrace.api.middleware import NOT_JSON, json_body


def test_the_body_is_parsed_once_and_shared() -> None:
    scope: dict[str, Any] = {"state": {}}
    body = b'{"model": "m", "messages": []}'
    first = json_body(scope, body)
    assert first == {"model": "m", "messages": []}
    assert json_body(scope, b"ignored: the parse is kept") is first


def test_a_body_that_is_not_json_says_so_once() -> None:
    scope: dict[str, Any] = {}
    assert json_body(scope, b"{not json") is NOT_JSON
    assert json_body(scope, b"{}") is NOT_JSON


def test_the_fingerprint_of_a_shared_parse_is_the_bodys_own() -> None:
    body = b'{"b": [1, 2], "a": 1}'
    for raw in (body, b"not json"):
        parsed = json_body({}, raw)
        assert fingerprint("POST", "/v1/x", raw, parsed) == fingerprint("POST", "/v1/x", raw)
