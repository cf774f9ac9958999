"""The batch file formats, pure: input lines checked and parsed, output and error lines built.

    {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {...}}  # in
    {"id": "batch_req_…", "custom_id": "r1", "response": {"status_code": 200,
     "request_id": "…", "body": {...}}, "error": null}                                  # out

A line whose request got a response (any status) carries it in `response`; a line that never
ran (the batch expired first) carries an `error` instead, as OpenAI's files do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
MAX_LINES = 50_000
MAX_ERRORS = 100  # a file with more bad lines reports the first ones
MAX_CUSTOM_ID = 512


@dataclass(frozen=True, slots=True)
class InputLine:
    custom_id: str
    body: str  # the request body's JSON
    model: str | None


@dataclass(frozen=True, slots=True)
class LineError:
    """One entry of a failed batch's `errors` (BatchError); `line` counts from 1."""

    code: str
    message: str
    line: int | None = None
    param: str | None = None

    def wire(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


@dataclass(frozen=True, slots=True)
class Parsed:
    lines: list[InputLine]
    errors: list[LineError]
    model: str | None  # the one model every line names, when they agree


class InputCheck:
    """`parse_input` a line at a time, for files too large to hold: it keeps only what the
    check needs (the custom ids seen, the models named, the errors), not the requests.

        check = InputCheck(endpoint)
        for number, raw in enumerate(lines, start=1):
            line = check.add(raw, number)   # an InputLine, or None (blank, or an error)
            if check.full:
                break
        check.errors, check.model, check.count
    """

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.count = 0  # the requests that passed
        self.full = False  # MAX_LINES passed: the file is refused, the rest need no reading
        self._errors: list[LineError] = []
        self._seen: set[str] = set()
        self._models: set[str] = set()

    def add(self, raw: bytes, number: int) -> InputLine | None:
        if not raw.strip() or self.full:
            return None
        if self.count + len(self._errors) >= MAX_LINES:
            self._errors.append(
                LineError(
                    "too_many_requests",
                    f"The input file has more than {MAX_LINES} requests.",
                    line=number,
                )
            )
            self.full = True
            return None
        parsed = _check(raw, number, self.endpoint, self._seen)
        if isinstance(parsed, LineError):
            self._errors.append(parsed)
            return None
        self._seen.add(parsed.custom_id)
        if parsed.model is not None:
            self._models.add(parsed.model)
        self.count += 1
        return parsed

    @property
    def errors(self) -> list[LineError]:
        """What is wrong with the file so far (the first `MAX_ERRORS`)."""
        errors = list(self._errors)
        if not self.count and not errors:
            errors.append(LineError("empty_file", "The input file has no requests."))
        if len(self._models) > 1:
            errors.append(
                LineError(
                    "mismatched_model",
                    "Every request of a batch must use the same model; found "
                    + ", ".join(sorted(self._models)[:5])
                    + ".",
                    param="body.model",
                )
            )
        return errors[:MAX_ERRORS]

    @property
    def model(self) -> str | None:
        """The one model every line names, when they agree."""
        return next(iter(self._models)) if len(self._models) == 1 else None


def parse_input(raw_lines: Iterable[bytes], endpoint: str) -> Parsed:
    """Check every line of a batch input file for `endpoint`: JSON object, `custom_id`
    unique, `method` POST, `url` the batch's endpoint, `body` an object naming one model
    shared by all lines, no streaming; at most `MAX_LINES` requests."""
    check = InputCheck(endpoint)
    lines = []
    for number, raw in enumerate(raw_lines, start=1):
        line = check.add(raw, number)
        if line is not None:
            lines.append(line)
        if check.full:
            break
    return Parsed(lines, check.errors, check.model)


def _check(raw: bytes, number: int, endpoint: str, seen: set[str]) -> LineError | InputLine:
    def bad(code: str, message: str, param: str | None = None) -> LineError:
        return LineError(code, message, line=number, param=param)

    try:
        item = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return bad("invalid_json_line", "This line is not valid JSON.")
    if not isinstance(item, dict):
        return bad("invalid_json_line", "This line is not a JSON object.")
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return bad("missing_required_parameter", "Missing 'custom_id'.", "custom_id")
    if len(custom_id) > MAX_CUSTOM_ID:
        return bad("invalid_value", f"'custom_id' is over {MAX_CUSTOM_ID} chars.", "custom_id")
    if custom_id in seen:
        return bad(
            "duplicate_custom_id",
            f"The custom_id {custom_id!r} is used by an earlier line: each must be unique.",
            "custom_id",
        )
    if item.get("method") != "POST":
        return bad("invalid_method", "'method' must be 'POST'.", "method")
    if item.get("url") != endpoint:
        return bad(
            "mismatched_endpoint",
            f"'url' must be the batch's endpoint {endpoint}, not {item.get('url')!r}.",
            "url",
        )
    body = item.get("body")
    if not isinstance(body, dict):
        return bad("missing_required_parameter", "'body' must be a JSON object.", "body")
    if body.get("stream"):
        return bad("invalid_value", "Streaming is not supported in a batch.", "body.stream")
    model = body.get("model")
    return InputLine(custom_id, json.dumps(body), model if isinstance(model, str) else None)


def output_line(
    line_id: str, custom_id: str, status_code: int, request_id: str, body: Any
) -> dict[str, Any]:
    """A line of the output file (2xx) or of the error file (any other status)."""
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": {"status_code": status_code, "request_id": request_id, "body": body},
        "error": None,
    }


def expired_line(line_id: str, custom_id: str) -> dict[str, Any]:
    """The error file's line for a request the completion window ran out on."""
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": None,
        "error": {
            "code": "batch_expired",
            "message": "This request could not be executed before the completion window expired.",
        },
    }


def usage_of(body: Any) -> tuple[int, int, int]:
    """(input, cached, output) tokens of a response body, zeros when it has no usage."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return 0, 0, 0
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens", 0) if isinstance(details, dict) else 0
    return (
        _int(usage.get("prompt_tokens")),
        _int(cached),
        _int(usage.get("completion_tokens")),
    )


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
