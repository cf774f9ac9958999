"""The upstream HTTP client against loopback servers that answer byte by byte as told."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from headrace.routing.http_client import MAX_IDLE_S, HttpClient, HttpClientError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
JSON = b'{"ok": true}'
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(JSON),
    JSON,
)


class Server:
    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[bytes] = []  # head and body of each request, as received


@asynccontextmanager
async def serving(answer: Handler) -> AsyncIterator[tuple[str, Server]]:
    """A server that reads each request (head and body) on a connection, then runs
    `answer` for it; yields its URL."""
    server = Server()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                server.requests.append(head + await reader.readexactly(length))
                await answer(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    listening = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1/chat/completions", server
    finally:
        listening.close()


def answering(raw: bytes) -> Handler:
    """A server's answer of fixed bytes, whatever the request."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()

    return answer


_ok = answering(OK)


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    http = HttpClient()
    yield http
    await http.close()


async def test_a_request_is_sent_whole_and_its_connection_kept_for_the_next(
    client: HttpClient,
) -> None:
    async with serving(_ok) as (url, server):
        for _ in range(3):
            response = await client.post(url, b'{"a": 1}', {"x-trace": "t1"}, timeout_s=5)
            assert (response.status, await response.read()) == (200, JSON)
            assert response.headers["content-type"] == "application/json"
            response.release()
        assert server.connections == 1  # kept alive and reused
        head, body = server.requests[0].split(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"POST /v1/chat/completions HTTP/1.1"
        assert {b"content-length: 8", b"x-trace: t1", b"accept-encoding: identity"} <= set(lines)
        assert any(line.startswith(b"host: 127.0.0.1:") for line in lines)
        assert body == b'{"a": 1}'


async def test_a_chunked_body_arrives_as_it_is_sent(client: HttpClient) -> None:
    more = asyncio.Event()

    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await more.wait()  # the client has read the first chunk before the second exists
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
        await writer.drain()

    async with serving(chunked) as (url, server):
        response = await client.post(url, b"{}", {}, timeout_s=5)
        chunks = response.chunks()
        assert await anext(chunks) == b"first"
        more.set()
        assert [chunk async for chunk in chunks] == [b"second"]
        response.release()
        more.clear()
        second = await client.post(url, b"{}", {}, timeout_s=5)
        more.set()
        assert await second.read() == b"firstsecond"
        assert server.connections == 1


async def test_a_body_without_a_length_ends_with_its_connection(client: HttpClient) -> None:
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    async with serving(until_close) as (url, _):
        response = await client.post(url, b"{}", {}, timeout_s=5)
        assert await response.read() == b"all of it"


async def test_a_connection_reset_mid_body_is_an_error(client: HttpClient) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
        await writer.drain()
        writer.transport.abort()  # a reset, not an orderly close

    async with serving(cut) as (url, _):
        response = await client.post(url, b"{}", {}, timeout_s=5)
        with pytest.raises(HttpClientError, match="before the answer ended"):
            await response.read()


async def test_an_upstream_that_never_answers_times_out(client: HttpClient) -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes

    async with serving(hang) as (url, _):
        with pytest.raises(TimeoutError):
            await client.post(url, b"{}", {}, timeout_s=0.05)


async def test_a_body_that_stalls_times_out(client: HttpClient) -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nsome")
        await writer.drain()
        await reader.read()

    async with serving(stall) as (url, _):
        response = await client.post(url, b"{}", {}, timeout_s=0.05)
        with pytest.raises(TimeoutError):
            await response.read()


async def test_a_response_released_early_closes_its_connection(client: HttpClient) -> None:
    chunked = answering(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")

    async with serving(chunked) as (url, server):
        response = await client.post(url, b"{}", {}, timeout_s=5)
        assert await anext(response.chunks()) == b"first"
        response.release()  # the rest would arrive on this connection: it cannot be reused
        second = await client.post(url, b"{}", {}, timeout_s=5)
        assert await anext(second.chunks()) == b"first"
        second.release()
        assert server.connections == 2


async def test_refused_and_malformed_answers_are_client_errors(client: HttpClient) -> None:
    garbage = answering(b"this is not HTTP\r\n\r\n")

    async with serving(garbage) as (url, _):
        with pytest.raises(HttpClientError, match="malformed"):
            await client.post(url, b"{}", {}, timeout_s=5)
    async with serving(_ok) as (url, _):
        pass  # closed again: nothing listens on its port now
    with pytest.raises(HttpClientError, match="cannot connect"):
        await client.post(url, b"{}", {}, timeout_s=5)
    with pytest.raises(HttpClientError, match="line break"):
        await client.post(url, b"{}", {"x-evil": "a\r\nx-injected: 1"}, timeout_s=5)
    with pytest.raises(HttpClientError, match="not an http"):
        await client.post("ftp://example.invalid/x", b"{}", {}, timeout_s=5)


async def test_a_kept_connection_the_server_closed_is_not_reused(client: HttpClient) -> None:
    closed = asyncio.Event()

    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(OK)
        await writer.drain()
        writer.close()  # an idle timeout on the server's side, right after answering
        await writer.wait_closed()
        closed.set()

    async with serving(once) as (url, server):
        for _ in range(2):
            response = await client.post(url, b"{}", {}, timeout_s=5)
            assert await response.read() == JSON
            await closed.wait()
            closed.clear()
            for _ in range(10):  # a few turns of the loop: the close reaches the client
                await asyncio.sleep(0)
        assert server.connections == 2


async def test_a_connection_idle_too_long_is_closed_not_reused(client: HttpClient) -> None:
    """Servers close idle keep-alive connections; one closed as a request is written on it
    fails that request, so the client stops reusing them a little before."""
    async with serving(_ok) as (url, server):
        for _ in range(2):
            response = await client.post(url, b"{}", {}, timeout_s=5)
            assert await response.read() == JSON
        assert server.connections == 1
        [kept] = client._pools[next(iter(client._pools))]
        kept.idle_since -= MAX_IDLE_S + 1  # as if it had waited that long
        response = await client.post(url, b"{}", {}, timeout_s=5)
        assert await response.read() == JSON
        assert server.connections == 2
        assert kept.closed


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for `localhost` signed by its own key: (certificate, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_https_upstreams_are_verified(tmp_path: Path) -> None:
    cert_file, key_file = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)
            writer.write(OK)
            await writer.drain()
        writer.close()

    listening = await asyncio.start_server(on_connection, "127.0.0.1", 0, ssl=server_tls)
    url = f"https://localhost:{listening.sockets[0].getsockname()[1]}/v1/chat/completions"
    trusting = HttpClient(tls=ssl.create_default_context(cafile=str(cert_file)))
    response = await trusting.post(url, b"{}", {}, timeout_s=5)
    assert (response.status, await response.read()) == (200, JSON)
    await trusting.close()
    default = HttpClient()  # the system's authorities do not know this certificate
    with pytest.raises(HttpClientError, match="CERTIFICATE_VERIFY_FAILED"):
        await default.post(url, b"{}", {}, timeout_s=5)
    await default.close()
    listening.close()


async def test_a_request_cancelled_while_waiting_closes_its_connection_quietly(
    client: HttpClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client gone while the upstream thinks: the connection is dropped (the answer would
    come for nobody), and no future is left with an exception nobody reads."""
    arrived = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        arrived.set()
        await reader.read()  # until the client closes

    async with serving(slow) as (url, server):
        waiting = asyncio.create_task(client.post(url, b"{}", {}, timeout_s=5))
        await arrived.wait()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        async with serving(_ok) as (other, _):
            response = await client.post(other, b"{}", {}, timeout_s=5)
            assert await response.read() == JSON
        assert server.connections == 1
    del waiting
    gc.collect()
    assert "never retrieved" not in caplog.text
