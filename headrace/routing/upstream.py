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
from typing import Any

import httpx
import orjson


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
    """One pooled HTTP client for every upstream."""

    def __init__(self, http: httpx.AsyncClient | None = None) -> None:
        self._http = http or httpx.AsyncClient(
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
            timeout=httpx.Timeout(600.0, connect=5.0),
        )

    async def close(self) -> None:
        await self._http.aclose()

    def _request(
        self, target: UpstreamTarget, path: str, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> httpx.Request:
        sent = {**headers, "content-type": "application/json"}
        if target.api_key:
            sent["authorization"] = f"Bearer {target.api_key}"
        payload = orjson.dumps({**body, "model": target.model})
        return self._http.build_request(
            "POST",
            f"{target.base_url.rstrip('/')}{path}",
            content=payload,
            headers=sent,
            timeout=target.timeout_s,
        )

    async def complete(
        self,
        target: UpstreamTarget,
        path: str,
        body: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """A JSON request and its JSON answer."""
        request = self._request(target, path, body, headers or {})
        try:
            response = await self._http.send(request)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{target.name}: {exc!r}", retryable=True) from exc
        if response.status_code >= 400:
            raise _error_from(response.status_code, response.content)
        try:
            answer = orjson.loads(response.content)
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
    ) -> AsyncIterator[dict[str, Any]]:
        """The `data:` objects of an SSE stream, as they arrive, until `[DONE]`. A stream
        that breaks off (no `[DONE]`) raises a retryable error where it breaks."""
        request = self._request(target, path, {**body, "stream": True}, headers or {})
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{target.name}: {exc!r}", retryable=True) from exc
        try:
            if response.status_code >= 400:
                raise _error_from(response.status_code, await response.aread())
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # comments (heartbeats), `event:` names, blank separators
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    event = orjson.loads(data)
                except orjson.JSONDecodeError as exc:
                    raise UpstreamError(f"{target.name}: bad SSE data", retryable=True) from exc
                if isinstance(event, dict) and "error" in event and "choices" not in event:
                    raise _error_from(500, data.encode())
                yield event
            raise UpstreamError(f"{target.name}: stream ended without [DONE]", retryable=True)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{target.name}: {exc!r}", retryable=True) from exc
        finally:
            await response.aclose()
