"""The batch file formats (batch/lines.py): what a bad input line is refused for, and the
output lines' shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from headrace.batch.lines import (
    MAX_ERRORS,
    MAX_LINES,
    expired_line,
    output_line,
    parse_input,
    usage_of,
)

CHAT = "/v1/chat/completions"


def line(custom_id: str = "a", **overrides: Any) -> bytes:
    item = {"custom_id": custom_id, "method": "POST", "url": CHAT,
            "body": {"model": "m", "messages": []}} | overrides  # fmt: skip
    return json.dumps(item).encode()


def codes(raw: list[bytes]) -> list[tuple[str, int | None, str | None]]:
    return [(e.code, e.line, e.param) for e in parse_input(raw, CHAT).errors]


def test_a_good_file_parses_in_order_skipping_blank_lines() -> None:
    parsed = parse_input([line("a"), b"", b"  ", line("b")], CHAT)
    assert parsed.errors == []
    assert [x.custom_id for x in parsed.lines] == ["a", "b"]
    assert parsed.model == "m"
    assert json.loads(parsed.lines[0].body) == {"model": "m", "messages": []}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"{oops", ("invalid_json_line", 1, None)),
        (b"[1, 2]", ("invalid_json_line", 1, None)),
        (b"\xff\xfe", ("invalid_json_line", 1, None)),
        (line(custom_id=None), ("missing_required_parameter", 1, "custom_id")),
        (line("x" * 513), ("invalid_value", 1, "custom_id")),
        (line(method="GET"), ("invalid_method", 1, "method")),
        (line(url="/v1/embeddings"), ("mismatched_endpoint", 1, "url")),
        (line(body="text"), ("missing_required_parameter", 1, "body")),
        (line(body={"model": "m", "stream": True}), ("invalid_value", 1, "body.stream")),
    ],
)
def test_each_bad_line_is_named_with_its_number(
    raw: bytes, expected: tuple[str, int, str | None]
) -> None:
    assert codes([raw]) == [expected]


def test_duplicates_mixed_models_and_empty_files_fail() -> None:
    assert codes([line("a"), line("b"), line("a")]) == [("duplicate_custom_id", 3, "custom_id")]
    other = line("b", body={"model": "n", "messages": []})
    assert codes([line("a"), other]) == [("mismatched_model", None, "body.model")]
    assert codes([b"", b"\n"]) == [("empty_file", None, None)]


def test_more_than_50000_lines_fail_and_errors_are_capped() -> None:
    assert codes([line(f"c{i}") for i in range(MAX_LINES + 1)]) == [
        ("too_many_requests", MAX_LINES + 1, None)
    ]
    assert len(codes([b"{"] * (MAX_ERRORS + 50))) == MAX_ERRORS


def test_output_and_expired_lines_have_openais_shape() -> None:
    body = {"usage": {"prompt_tokens": 5, "completion_tokens": 2,
                      "prompt_tokens_details": {"cached_tokens": 3}}}  # fmt: skip
    out = output_line("batch_req_1", "a", 200, "req_1", body)
    response = {"status_code": 200, "request_id": "req_1", "body": body}
    assert out == {"id": "batch_req_1", "custom_id": "a", "error": None, "response": response}
    assert usage_of(body) == (5, 3, 2)
    assert usage_of({"error": {}}) == (0, 0, 0)
    assert usage_of({"usage": {"prompt_tokens": True}}) == (0, 0, 0)
    late = expired_line("batch_req_2", "b")
    assert late["response"] is None
    assert late["error"]["code"] == "batch_expired"
