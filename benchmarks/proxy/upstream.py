"""An instant OpenAI-compatible upstream: the fixed answer of a chat completion, as JSON or as
a short SSE stream, with no work behind it. What gateways are measured against.

    python -m benchmarks.proxy.upstream PORT
"""

from __future__ import annotations

import sys
import time
from typing import Any

import orjson
import uvicorn

CHUNK_TEXTS = ["Hello", " from", " the", " instant", " upstream", "."]


def _completion(model: str) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-instant",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(CHUNK_TEXTS)},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
        }
    )


def _stream(model: str) -> list[bytes]:
    created = int(time.time())
    base: dict[str, Any] = {
        "id": "chatcmpl-instant", "object": "chat.completion.chunk", "created": created,
        "model": model,
    }  # fmt: skip
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    events += [
        {**base, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
        for text in CHUNK_TEXTS
    ]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append(
        {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
        }
    )
    return [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"] == "/v1/models":
        await _send(send, 200, b"application/json", orjson.dumps({"object": "list", "data": []}))
        return
    try:
        request = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        request = {}
    model = str(request.get("model", "instant"))
    if request.get("stream"):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for chunk in _stream(model):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await _send(send, 200, b"application/json", _completion(model))


async def _send(send: Any, status: int, content_type: bytes, body: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False, http="httptools", loop="uvloop")  # fmt: skip
