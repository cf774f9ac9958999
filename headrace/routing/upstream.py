"""A client of OpenAI-compatible servers: vLLM, llama.cpp, TGI, Ollama, OpenAI itself, or a
`headrace worker`. What the router calls for deployments that are not in this process.

Failures are sorted for the router: `retryable` ones (the connection failed or was reset,
a timeout, 429 or 5xx) may go to another deployment if nothing was sent to the client yet;
the others (4xx: the request itself is wrong) go back to the client as they are, in our
envelope.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from headrace.chunk_lines import Lines
from headrace.routing.http_client import HttpClient, HttpClientError, HttpResponse


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    """How to reach one deployment."""

    name: str
    base_url: str  # up to and including `/v1`
    model: str  # the upstream's own name for the model
    api_key: str | None = None
    timeout_s: float = 600.0  # the whole request; the first byte has the router's budget


class UpstreamError(Exception):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.code = code
        self.param = param


def _error_from(status: int, body: bytes) -> UpstreamError:
    message, code, param = f"upstream answered HTTP {status}", None, None
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        error = None
    if isinstance(error, dict):
        message = str(error.get("message") or message)
        code = error.get("code") if isinstance(error.get("code"), str) else None
        param = error.get("param") if isinstance(error.get("param"), str) else None
    elif isinstance(error, str):  # some servers send {"error": "text"}
        message = error
    return UpstreamError(
        message, status=status, retryable=status == 429 or status >= 500, code=code, param=param
    )


class UpstreamClient:
    """One pooled HTTP client for every upstream (`http_client.py`: about a fifth of
    aiohttp's CPU per request, which was most of what a gateway in front of a fast
    upstream spent on the call)."""

    def __init__(self, *, connect_timeout_s: float = 5.0) -> None:
        self._http = HttpClient(connect_timeout_s=connect_timeout_s)

    async def close(self) -> None:
        await self._http.close()

    async def _send(
        self, target: UpstreamTarget, path: str, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> HttpResponse:
        sent = {**headers, "content-type": "application/json"}
        if target.api_key:
            sent["authorization"] = f"Bearer {target.api_key}"
        try:
            return await self._http.post(
                f"{target.base_url.rstrip('/')}{path}",
                orjson.dumps({**body, "model": target.model}),
                sent,
                timeout_s=target.timeout_s,
            )
        except (HttpClientError, TimeoutError) as exc:
            raise UpstreamError(f"{target.name}: {exc!r}", retryable=True) from exc

    async def complete(
        self,
        target: UpstreamTarget,
        path: str,
        body: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """A JSON request and its JSON answer."""
        response = await self._send(target, path, body, headers or {})
        try:
            content = await response.read()
        except (HttpClientError, TimeoutError) as exc:
            raise UpstreamError(f"{target.name}: {exc!r}", retryable=True) from exc
        finally:
            response.release()
        if response.status >= 400:
            raise _error_from(response.status, content)
        try:
            answer = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(f"{target.name}: not JSON", retryable=True) from exc
        if not isinstance(answer, dict):
            raise UpstreamError(f"{target.name}: not a JSON object", retryable=True)
        return answer

    async def stream(
        self,
        target: UpstreamTarget,
        path: str,
        body: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The `data:` objects of an SSE stream as they arrive, until `[DONE]`: those of
        one read together (a list, never empty), so that the chunks an upstream sent
        together go on together. A stream that breaks off (no `[DONE]`) raises a
        retryable error where it breaks; an error event raises after the events before it."""
        response = await self._send(target, path, {**body, "stream": True}, headers or {})
        try:
            if response.status >= 400:
                raise _error_from(response.status, await response.read())
            lines = Lines()
            async for chunk in response.chunks():
                events, end = _events(target, lines.feed(chunk))
                if events:
                    yield events
                if end == "done":
                    await response.read()  # the rest (often nothing): the connection is reused
                    return
                if end is not None:
                    raise end
            events, end = _events(target, lines.end())  # a last line without its break
            if events:
                yield events
            if end is not None and end != "done":
                raise end
            if end is None:
                raise UpstreamError(f"{target.name}: stream ended without [DONE]", retryable=True)
        except (HttpClientError, TimeoutError) as exc:
            raise UpstreamError(f"{target.name}: {exc!r}", retryable=True) from exc
        finally:
            response.release()  # a stream left early closes its connection


def _events(
    target: UpstreamTarget, lines: list[bytes]
) -> tuple[list[dict[str, Any]], UpstreamError | Literal["done"] | None]:
    """The `data` objects of SSE lines, in order, and what ended them: `[DONE]`, an error
    event or bad data (the error to raise), or nothing yet (None). Comments (heartbeats),
    `event:` names and blank separators are skipped."""
    events: list[dict[str, Any]] = []
    for line in lines:
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            return events, "done"
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return events, UpstreamError(f"{target.name}: bad SSE data", retryable=True)
        if isinstance(event, dict) and "error" in event and "choices" not in event:
            return events, _error_from(500, data)
        events.append(event)
    return events, None
