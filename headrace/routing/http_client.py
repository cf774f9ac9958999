"""A small HTTP/1.1 client for upstream deployments: POST a body, read the answer whole or
as it arrives, over pooled keep-alive connections.

In front of a fast upstream the client is a large share of a gateway's CPU: aiohttp spent
about 90 us of CPU per proxied JSON request on this machine, this client about 20
(docs/benchmarks.md, "Gateway proxying an instant upstream"). It does only what the
upstream calls need: asyncio protocols, `httptools` (the parser uvicorn uses) for the
responses, requests written as one buffer, and no decompression (it asks for `identity`).

    client = HttpClient()
    response = await client.post(url, body, {"authorization": "Bearer ..."}, timeout_s=600)
    response.status, response.headers     # once the head has arrived
    await response.read()                 # the whole body; or:
    async for chunk in response.chunks(): # the body as it arrives
        ...
    response.release()                    # a body not read to its end closes its connection
    await client.close()

Failures raise `HttpClientError` (connection refused, reset, a malformed answer, the
connection closed before the answer ended) or `TimeoutError` (`timeout_s`, counted from
the request's start to the end of its body, or `connect_timeout_s` for a new connection).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping
from functools import lru_cache
from typing import cast
from urllib.parse import urlsplit

import httptools

MAX_IDLE_PER_ORIGIN = 256  # idle connections kept per scheme, host and port
# A connection idle this long is not reused: servers close idle keep-alive connections
# (uvicorn, which vLLM runs on, after 5 s), and one closed while a request is being
# written on it fails that request. Closing first, a little before, leaves no such race.
MAX_IDLE_S = 4.0
# A body this large is held while nobody reads it; the connection stops reading beyond it.
HIGH_WATER_BYTES = 1 << 20

Origin = tuple[str, str, int]  # scheme, host, port


class HttpClientError(Exception):
    """The exchange failed: no connection, a reset, or an answer that is not HTTP."""


@lru_cache(maxsize=1024)
def _split(url: str) -> tuple[Origin, bytes, bytes]:
    """The origin, the request target and the Host header's value of `url`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpClientError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (parts.scheme, parts.hostname, port), target.encode(), parts.netloc.encode()


def _header_lines(headers: Mapping[str, str]) -> bytes:
    lines = []
    for name, value in headers.items():
        line = f"{name}: {value}\r\n".encode("latin-1")
        if line.count(b"\r") != 1 or line.count(b"\n") != 1:  # no header smuggled in
            raise HttpClientError(f"header {name!r} holds a line break")
        lines.append(line)
    return b"".join(lines)


class HttpResponse:
    """One answer: its head at once, its body as the connection delivers it."""

    def __init__(self, connection: _Connection) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}  # names lower-cased; a repeated name: its last value
        self._connection = connection
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._complete = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    async def read(self) -> bytes:
        """The whole body."""
        return b"".join([chunk async for chunk in self.chunks()])

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives: what has arrived since the last chunk, joined."""
        while True:
            if self._chunks:
                data = b"".join(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
                self._chunks.clear()
                self._buffered = 0
                self._connection.resume()
                yield data
            elif self._error is not None:
                raise self._error
            elif self._complete:
                return
            else:
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None

    def release(self) -> None:
        """Done with it: a connection whose answer was not read to its end is closed (it
        cannot carry another request); a finished one is already back in the pool."""
        if not self._complete:
            self._fail(HttpClientError("response released before its end"))
            self._connection.close()

    # What the connection calls.

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER_BYTES:
            self._connection.pause()
        self._wake()

    def _finish(self) -> None:
        self._complete = True
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if not self._complete and self._error is None:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class _Connection(asyncio.Protocol):
    """One keep-alive connection, carrying one request at a time."""

    def __init__(self, pool: HttpClient, origin: Origin) -> None:
        self._pool = pool
        self.origin = origin
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._response: HttpResponse | None = None
        self._head: asyncio.Future[HttpResponse] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._paused = False
        self.closed = False
        self.idle_since = 0.0  # the loop's time when it last went back to the pool

    def send(self, request: bytes, deadline: asyncio.TimerHandle) -> asyncio.Future[HttpResponse]:
        """Write `request`; the future has the response once its head is read."""
        assert self._transport is not None
        assert self._response is None
        self._response = HttpResponse(self)
        self._head = asyncio.get_running_loop().create_future()
        self._deadline = deadline
        self._transport.write(request)
        return self._head

    def expire(self) -> None:
        """The request's time is up: it fails with `TimeoutError`, the connection closes."""
        self._failed(TimeoutError("the upstream did not answer in time"))
        self.close()

    def close(self) -> None:
        self.closed = True
        if self._deadline is not None:  # a request given up: its timer need not hold this
            self._deadline.cancel()
            self._deadline = None
        if self._transport is not None:
            self._transport.close()

    def pause(self) -> None:
        if not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._response is None:  # nothing was asked: a server talking out of turn
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._failed(HttpClientError("the upstream switched protocols"))
            self.close()
        except httptools.HttpParserError as exc:
            self._failed(HttpClientError(f"malformed HTTP answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self._response
        if exc is None and response is not None and response.status and _until_close(response):
            self.on_message_complete()  # a body without a length ends where the connection does
            return
        why = f": {exc!r}" if exc is not None else ""
        self._failed(HttpClientError(f"connection closed before the answer ended{why}"))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._response is not None
        self._response.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        response, head = self._response, self._head
        assert response is not None
        assert head is not None
        response.status = self._parser.get_status_code()
        if not head.done():
            head.set_result(response)

    def on_body(self, body: bytes) -> None:
        assert self._response is not None
        self._response._feed(body)

    def on_message_complete(self) -> None:
        response, self._response, self._head = self._response, None, None
        assert response is not None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._parser.should_keep_alive() and not self.closed:
            self._pool._idle(self)
        else:
            self.close()
        response._finish()

    def _failed(self, error: BaseException) -> None:
        response, head = self._response, self._head
        self._response = self._head = None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if head is not None and not head.done():
            head.set_exception(error)
        if response is not None:
            response._fail(error)


def _until_close(response: HttpResponse) -> bool:
    """Whether the answer's body runs until the connection closes (no length given)."""
    headers = response.headers
    return "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "")


class HttpClient:
    """Pooled connections to any number of origins; one per request in flight."""

    def __init__(
        self, *, connect_timeout_s: float = 5.0, tls: ssl.SSLContext | None = None
    ) -> None:
        """`tls` verifies `https` upstreams (default: the system's certificate authorities)."""
        self._connect_timeout_s = connect_timeout_s
        self._pools: dict[Origin, list[_Connection]] = {}
        self._tls = tls

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float
    ) -> HttpResponse:
        """Send `body` to `url`; the response once its status and headers are in."""
        origin, target, host = _split(url)
        request = b"".join(
            (
                b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\n"
                b"accept-encoding: identity\r\n" % (target, host, len(body)),
                _header_lines(headers),
                b"\r\n",
                body,
            )
        )
        loop = asyncio.get_running_loop()
        connection = self._take(origin) or await self._connect(origin)
        head = connection.send(request, loop.call_later(timeout_s, connection.expire))
        try:
            return await head
        except asyncio.CancelledError:
            connection.close()  # the answer would arrive for nobody
            raise

    async def close(self) -> None:
        for pool in self._pools.values():
            for connection in pool:
                connection.close()
        self._pools.clear()

    def _take(self, origin: Origin) -> _Connection | None:
        pool = self._pools.get(origin)
        if not pool:
            return None
        # Oldest first, as they went back: those idle too long are the front of the list.
        fresh = asyncio.get_running_loop().time() - MAX_IDLE_S
        stale = 0
        while stale < len(pool) and pool[stale].idle_since < fresh:
            pool[stale].close()
            stale += 1
        del pool[:stale]
        while pool:
            connection = pool.pop()  # the most recently used: the least likely timed out
            if not connection.closed:
                return connection
        return None

    def _idle(self, connection: _Connection) -> None:
        pool = self._pools.setdefault(connection.origin, [])
        if len(pool) < MAX_IDLE_PER_ORIGIN:
            connection.idle_since = asyncio.get_running_loop().time()
            pool.append(connection)
        else:
            connection.close()

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        tls = None
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self, origin), host, port, ssl=tls
                )
        except OSError as exc:
            raise HttpClientError(f"cannot connect to {host}:{port}: {exc}") from exc
        return connection
