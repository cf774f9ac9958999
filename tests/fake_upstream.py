"""An OpenAI-compatible upstream that misbehaves on demand, for the router's chaos tests.

upstream = FakeUpstream()          # serve `upstream` (an ASGI app) with tests.conftest.serving
upstream.mode = "fail"             # ok | fail | bad | hang | cut
upstream.words = [...]             # what it answers, a chunk per word when streaming
upstream.usage = False             # no usage block, as some servers do
"""

from __future__ import annotations

from typing import Any

import orjson

WORDS = ["Hello", " from", " upstream", "."]
USAGE = {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}


class FakeUpstream:
    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.words = list(WORDS)
        self.usage = True
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[bytes, bytes]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        request = orjson.loads(body)
        self.requests.append(request)
        self.headers.append(dict(scope["headers"]))
        if self.mode == "fail":
            await _json(
                send, 500, {"error": {"message": "upstream exploded", "type": "server_error"}}
            )
        elif self.mode == "bad":
            error = {"message": "max_tokens is too large for this model", "param": "max_tokens",
                     "code": "invalid_value", "type": "invalid_request_error"}  # fmt: skip
            await _json(send, 400, {"error": error})
        elif scope["path"].endswith("/embeddings"):
            data = [{"object": "embedding", "index": 0, "embedding": [0.6, 0.8]}]
            usage = {"prompt_tokens": 3, "total_tokens": 3}
            await _json(send, 200, {"object": "list", "data": data, "model": request["model"],
                                    "usage": usage})  # fmt: skip
        elif scope["path"].endswith("/v1/completions") and not request.get("stream"):
            text = "".join(self.words)
            choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
            await _json(send, 200, {
                "id": "up-2", "object": "text_completion", "created": 1, "model": request["model"],
                "choices": [choice], **self._usage(),
            })  # fmt: skip
        elif self.mode == "hang":
            await receive()  # answers nothing; returns when the gateway hangs up
        elif request.get("stream"):
            await self._stream(send, request, legacy=scope["path"].endswith("/v1/completions"))
        else:
            message = {"role": "assistant", "content": "".join(self.words)}
            choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
            await _json(send, 200, {
                "id": "up-1", "object": "chat.completion", "created": 1, "model": request["model"],
                "choices": [choice], **self._usage(),
            })  # fmt: skip

    def _usage(self) -> dict[str, Any]:
        return {"usage": USAGE} if self.usage else {}

    async def _stream(self, send: Any, request: dict[str, Any], *, legacy: bool) -> None:
        """Chat chunks, or `/v1/completions` ones (`legacy`: text, not deltas)."""
        kind = "text_completion" if legacy else "chat.completion.chunk"
        base = {"id": "up-1", "object": kind, "created": 1, "model": request["model"]}
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i, word in enumerate(self.words):
            if self.mode == "cut" and i == 2:
                raise ConnectionResetError("upstream went away mid-stream")
            delta = {"content": word} if i else {"role": "assistant", "content": word}
            choice = {"text": word} if legacy else {"delta": delta}
            chunk = {**base, "choices": [{"index": 0, **choice, "finish_reason": None}]}
            await _event(send, chunk)
        end = {"text": ""} if legacy else {"delta": {}}
        await _event(send, {**base, "choices": [{"index": 0, **end, "finish_reason": "stop"}]})
        if (request.get("stream_options") or {}).get("include_usage") and self.usage:
            await _event(send, {**base, "choices": [], "usage": USAGE})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


async def _event(send: Any, payload: dict[str, Any]) -> None:
    body = b"data: " + orjson.dumps(payload) + b"\n\n"
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def _json(send: Any, status: int, payload: dict[str, Any]) -> None:
    body = orjson.dumps(payload)
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
