"""Tool calls checked against the tools the request declared, before they are returned.

A model's call must name a declared function and carry arguments its `parameters` JSON
schema accepts. A call that does not is not returned as a call: its text stays in the
message content and the choice finishes with "stop" (see docs/safety.md). Retrying would
double the cost and latency for an answer a small model tends to repeat, and a stream has
already sent its first tokens by the time a call completes.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from headrace.errors import InvalidRequestError


class ToolCallValidator:
    """The declared functions' schemas, compiled once per request."""

    __slots__ = ("_validators",)

    def __init__(self, tools: list[dict[str, Any]] | None) -> None:
        self._validators: dict[str, Draft202012Validator] = {}
        for i, tool in enumerate(tools or []):
            fn = tool.get("function")
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                continue  # refused by name in `tool_plan`
            schema = fn.get("parameters", {"type": "object"})
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                raise InvalidRequestError(
                    f"Invalid JSON schema for function {fn['name']!r}: {exc.message}",
                    param=f"tools[{i}].function.parameters",
                ) from exc
            self._validators[fn["name"]] = Draft202012Validator(schema)

    def problem(self, name: str, arguments: str) -> str | None:
        """Why a call to `name` with `arguments` (a JSON text) is invalid, or None."""
        validator = self._validators.get(name)
        if validator is None:
            return f"no function named {name!r} was declared"
        try:
            value = json.loads(arguments)
        except json.JSONDecodeError:
            return "arguments are not JSON"
        error = next(iter(validator.iter_errors(value)), None)
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "arguments"
        return f"{where}: {error.message}"

    def accepts(self, name: str, arguments: str) -> bool:
        return self.problem(name, arguments) is None
