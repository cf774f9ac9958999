"""The receive stage and the error envelope over raw HTTP: what the SDK cannot send."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from headrace.api.app import create_app
from headrace.config import Settings
from tests.conftest import Server, new_key, serving
from tests.fakes import FAKE_MODEL, FakeEngine, fake_registry


def _post(server: Server, path: str, content: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}{path}",
        content=content,
        headers={
            "Authorization": f"Bearer {server.api_key}",
            "Content-Type": "application/json",
            **headers,
        },
    )


def _assert_envelope(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    return error  # type: ignore[no-any-return]


def test_malformed_json_is_400(server: Server) -> None:
    error = _assert_envelope(_post(server, "/v1/chat/completions", b'{"model": '), 400)
    assert "parse the JSON body" in str(error["message"])


def test_wrong_type_is_400_naming_the_param(server: Server) -> None:
    body = b'{"model": "headrace-tiny-chat", "messages": [], "temperature": "hot"}'
    error = _assert_envelope(_post(server, "/v1/chat/completions", body), 400)
    assert error["param"] in {"messages", "temperature"}


def test_unknown_argument_is_400(server: Server) -> None:
    body = (
        b'{"model": "headrace-tiny-chat", "messages": [{"role": "user", "content": "hi"}],'
        b' "temperture": 0}'
    )
    error = _assert_envelope(_post(server, "/v1/chat/completions", body), 400)
    assert error["param"] == "temperture"
    assert "Unrecognized request argument" in str(error["message"])


def test_body_over_the_limit_is_413(server: Server) -> None:
    big = b'{"model": "headrace-tiny-chat", "messages": [{"role": "user", "content": "'
    big += b"a" * (server.settings.server.max_body_bytes + 1) + b'"}]}'
    _assert_envelope(_post(server, "/v1/chat/completions", big), 413)


def test_chunked_body_over_the_limit_is_413(server: Server) -> None:
    size = server.settings.server.max_body_bytes + 10

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(size // 1000 + 1):
            yield b"a" * 1000

    response = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        content=chunks(),
        headers={"Authorization": f"Bearer {server.api_key}"},
    )
    _assert_envelope(response, 413)


def test_unknown_route_is_404_envelope(server: Server) -> None:
    response = httpx.get(f"{server.base_url}/v1/nothing-here")
    _assert_envelope(response, 404)


def test_request_id_is_echoed_or_made(server: Server) -> None:
    mine = httpx.get(f"{server.base_url}/healthz", headers={"x-request-id": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    made = httpx.get(f"{server.base_url}/healthz")
    assert made.headers["x-request-id"].startswith("req_")
    assert int(made.headers["openai-processing-ms"]) >= 0


@pytest.mark.parametrize(("path", "status"), [("/healthz", "ok"), ("/readyz", "ready")])
def test_probes(server: Server, path: str, status: str) -> None:
    response = httpx.get(f"{server.base_url}{path}")
    assert response.status_code == 200
    assert response.json()["status"] == status


def test_an_error_escaping_the_first_stages_is_the_500_envelope(tmp_path: Path) -> None:
    """The receive, idempotency and proxy-lane stages run in front of FastAPI's own error
    stage: a bug in one of them still answers the envelope, and the server goes on."""
    app = create_app(Settings(data_dir=tmp_path), fake_registry(FakeEngine()))
    with serving(app) as base_url:
        state = app.state.headrace

        async def broken(key: str, fingerprint: str) -> None:
            raise RuntimeError("a bug in the idempotency store")

        state.idempotency.begin = broken
        key = new_key(Settings(data_dir=tmp_path)).secret
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "k1"}
        body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "hi"}]}
        response = httpx.post(f"{base_url}/v1/chat/completions", json=body, headers=headers)
        error = _assert_envelope(response, 500)
        assert error["type"] == "server_error"
        assert response.headers["x-request-id"].startswith("req_")
        assert httpx.get(f"{base_url}/healthz").status_code == 200
