"""Requests the gateway makes to itself: batch lines, run through the same routes as HTTP.

A batch line is an ordinary request (receive, authenticate, validate, admit, ... account)
but three things are the batch's: the principal is the key that created the batch (the
request carries no `Authorization`), its engine priority is batch priority, and its
response id, the key of its usage event, is stable across attempts of the line, so a line
run again after a crash is counted once. These ride in the ASGI scope's state, which only
an in-process caller can set: no header can claim them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Message

from headrace.admission.auth import Principal
from headrace.ids import random_hex

SCOPE_KEY = "internal_call"
BATCH_PRIORITY = 1  # engine/scheduler.py: lower runs first; interactive is 0


@dataclass(frozen=True, slots=True)
class InternalCall:
    principal: Principal
    key: str  # stable per batch line
    priority: int = BATCH_PRIORITY


def internal_call(request: Request) -> InternalCall | None:
    """The in-process call behind `request`, if it is one."""
    call = request.scope.get("state", {}).get(SCOPE_KEY)
    return call if isinstance(call, InternalCall) else None


def response_id(prefix: str, call: InternalCall | None) -> str:
    """A response's id (the usage ledger's key): random, or stable for a batch line."""
    return f"{prefix}-{call.key}" if call is not None else f"{prefix}-{random_hex(12)}"


@dataclass(frozen=True, slots=True)
class InternalResponse:
    status_code: int
    headers: dict[str, str]
    body: Any  # the JSON body, or the raw text when it is not JSON


async def call_app(app: ASGIApp, path: str, body: bytes, call: InternalCall) -> InternalResponse:
    """POST `body` to `path` of `app` in process, as `call`."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", call.key.encode()),
        ],
        "client": None,
        "server": None,
        "state": {SCOPE_KEY: call},
    }
    done = asyncio.Event()
    sent = False
    status = 500
    headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()  # nobody hangs up on an in-process call before it ends
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            for name, value in message["headers"]:
                headers[name.decode("latin-1")] = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    try:
        await app(scope, receive, send)
    finally:
        done.set()
    raw = b"".join(chunks)
    try:
        parsed: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = raw.decode("utf-8", "replace")
    return InternalResponse(status, headers, parsed)
