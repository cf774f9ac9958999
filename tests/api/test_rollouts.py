"""Rollouts, conversation affinity and backpressure of proxied models, through HTTP: the
admin API sets a model's version weights, the SDK sees the version served on every
response, a conversation keeps its version and deployment across turns, and a deployment
at its bound of requests in flight answers 503 `overloaded`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from headrace.admission.secrets import load_or_create_pepper
from headrace.api.app import create_app
from headrace.api.state import AppState
from headrace.config import Settings
from headrace.control.keys import bootstrap
from headrace.storage.database import Database
from headrace.storage.schema import UsageEventRow
from tests.conftest import serving, usage_rows
from tests.fake_upstream import FakeUpstream

VERSIONS = {"a": "v1", "b": "v1", "c": "v2"}
WAIT_S = 10  # for a request to reach the gated upstream: an event, never a sleep


class GatedUpstream(FakeUpstream):
    """Holds each request until `release` is set, so requests stay in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.arrived = threading.Semaphore(0)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.arrived.release()
            await asyncio.to_thread(self.release.wait, WAIT_S)
        await super().__call__(scope, receive, send)


@dataclass
class Gateway:
    settings: Settings
    client: openai.OpenAI
    admin: httpx.Client
    upstreams: dict[str, FakeUpstream]
    gate: GatedUpstream
    stack: ExitStack
    state: AppState

    def ask(self, content: str, **kw: Any) -> tuple[str, str]:
        """(version, deployment) that served a one-message chat."""
        raw = self.client.chat.completions.with_raw_response.create(
            model="big", messages=[{"role": "user", "content": content}], **kw
        )
        return raw.headers["x-headrace-model-version"], raw.headers["x-headrace-deployment"]

    def usage(self) -> list[UsageEventRow]:
        self.stack.close()  # the gateway writes all it queued as it stops
        return usage_rows(self.settings)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    """Model `big` on a and b (v1) and c (v2); model `capped` on one gated deployment that
    takes two requests at a time."""
    upstreams = {name: FakeUpstream() for name in VERSIONS}
    gate = GatedUpstream()
    with ExitStack() as stack:
        urls = {n: stack.enter_context(serving(u)) + "/v1" for n, u in upstreams.items()}
        gate_url = stack.enter_context(serving(gate)) + "/v1"
        big = [
            {"name": n, "url": urls[n], "version": v, "timeout_s": 5.0} for n, v in VERSIONS.items()
        ]
        capped = [{"name": "g", "url": gate_url, "max_outstanding": 2, "version": "v1"}]
        settings = Settings(
            data_dir=tmp_path,
            models=[{"name": "big", "deployments": big}, {"name": "capped", "deployments": capped}],
            routing={"retry_base_s": 0.0, "breaker_failures": 1, "breaker_cooldown_s": 60},
        )

        async def keys() -> tuple[str, str]:
            db = Database(settings.effective_database_url)
            await db.migrate()
            start = await bootstrap(db, load_or_create_pepper(tmp_path))
            await db.close()
            assert start is not None
            return start.admin_secret, start.api_key.secret

        admin_key, api_key = asyncio.run(keys())
        app = create_app(settings)
        base = stack.enter_context(serving(app))
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=api_key, max_retries=0)
        admin = httpx.Client(
            base_url=f"{base}/admin/v1", headers={"Authorization": f"Bearer {admin_key}"}
        )
        stack.callback(gate.release.set)  # a test that fails mid-way lets its requests go
        yield Gateway(settings, client, admin, upstreams, gate, stack, app.state.headrace)


def test_the_admin_api_sets_shows_and_clears_a_rollout(gateway: Gateway) -> None:
    none = gateway.admin.get("/models/big/rollout").json()
    assert none == {
        "object": "model.rollout", "model": "big", "weights": {}, "versions": ["v1", "v2"],
        "updated_at": None,
    }  # fmt: skip
    put = gateway.admin.put("/models/big/rollout", json={"weights": {"v2": 5, "v1": 95}})
    assert put.status_code == 200, put.text
    assert put.json()["weights"] == {"v1": 95.0, "v2": 5.0}
    shown = gateway.admin.get("/models/big/rollout").json()
    assert shown["weights"] == {"v1": 95.0, "v2": 5.0}
    assert isinstance(shown["updated_at"], int)
    cleared = gateway.admin.delete("/models/big/rollout")
    assert cleared.status_code == 200
    assert cleared.json()["weights"] == {}
    audit = gateway.admin.get("/audit-events", params={"target_type": "rollout"}).json()
    assert [(e["action"], e["target"]["id"]) for e in audit["data"]] == [
        ("rollout.set", "big"),
        ("rollout.clear", "big"),
    ]


@pytest.mark.parametrize(
    ("model", "weights", "status"),
    [
        ("big", {"v3": 1}, 400),  # no deployment runs v3
        ("big", {"v1": -1, "v2": 1}, 400),
        ("big", {"v1": 0, "v2": 0}, 400),
        ("big", {"v1": "lots"}, 400),
        ("nope", {"v1": 1}, 404),
    ],
)
def test_a_bad_rollout_is_refused_in_the_error_envelope(
    gateway: Gateway, model: str, weights: dict[str, Any], status: int
) -> None:
    refused = gateway.admin.put(f"/models/{model}/rollout", json={"weights": weights})
    assert refused.status_code == status, refused.text
    error = refused.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    assert gateway.admin.get("/models/big/rollout").json()["weights"] == {}


def test_only_admin_keys_change_rollouts(gateway: Gateway) -> None:
    api_key = gateway.client.api_key
    denied = gateway.admin.put(
        "/models/big/rollout",
        json={"weights": {"v2": 1}},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert denied.status_code == 401
    assert gateway.admin.get("/models/big/rollout").json()["weights"] == {}


def test_the_version_served_is_on_the_response_and_the_usage_event(gateway: Gateway) -> None:
    gateway.admin.put("/models/big/rollout", json={"weights": {"v1": 0, "v2": 1}})
    assert {gateway.ask(f"question {i}") for i in range(10)} == {("v2", "c")}
    stream = gateway.client.chat.completions.with_raw_response.create(
        model="big", messages=[{"role": "user", "content": "stream"}], stream=True
    )
    assert stream.headers["x-headrace-model-version"] == "v2"
    list(stream.parse())
    gateway.admin.delete("/models/big/rollout")  # the rollback: every deployment again
    served = {gateway.ask(f"after {i}") for i in range(30)}
    assert {version for version, _ in served} == {"v1", "v2"}
    events = gateway.usage()
    assert len(events) == 41
    assert {(e.model_version, e.deployment) for e in events} == {
        ("v1", "a"), ("v1", "b"), ("v2", "c"),
    }  # fmt: skip
    assert sum(e.model_version == "v2" for e in events) >= 11  # the 11 under the rollout


def test_a_conversation_keeps_its_version_and_deployment_across_turns(gateway: Gateway) -> None:
    gateway.admin.put("/models/big/rollout", json={"weights": {"v1": 50, "v2": 50}})
    served: dict[int, set[tuple[str, str]]] = {}
    for conv in range(12):
        messages: list[dict[str, str]] = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"Conversation {conv} starts here."},
        ]
        for turn in range(3):
            raw = gateway.client.chat.completions.with_raw_response.create(
                model="big",
                messages=messages,  # type: ignore[arg-type]
            )
            served.setdefault(conv, set()).add(
                (raw.headers["x-headrace-model-version"], raw.headers["x-headrace-deployment"])
            )
            reply = raw.parse().choices[0].message.content or ""
            messages += [
                {"role": "assistant", "content": reply},
                {"role": "user", "content": f"Turn {turn + 1}?"},
            ]
    assert all(len(s) == 1 for s in served.values())  # each conversation stayed put
    assert {next(iter(s))[0] for s in served.values()} == {"v1", "v2"}  # and they spread


def test_the_affinity_header_names_the_conversation(gateway: Gateway) -> None:
    pinned = {
        gateway.ask(f"unrelated {i}", extra_headers={"x-headrace-affinity": "session-9"})
        for i in range(8)
    }
    assert len(pinned) == 1
    spread = {gateway.ask(f"unrelated {i}") for i in range(30)}
    assert len(spread) > 1


def test_a_failing_canary_falls_back_to_the_stable_version(gateway: Gateway) -> None:
    gateway.admin.put("/models/big/rollout", json={"weights": {"v1": 1, "v2": 99}})
    gateway.upstreams["c"].mode = "fail"
    served = {gateway.ask(f"question {i}") for i in range(6)}
    assert {version for version, _ in served} == {"v1"}  # never an error for the client
    assert len(gateway.upstreams["c"].requests) == 1  # then its circuit opened


def test_a_deployment_at_its_bound_is_overloaded_and_batch_work_at_half(
    gateway: Gateway,
) -> None:
    def hold(**kw: Any) -> threading.Thread:
        thread = threading.Thread(
            target=gateway.client.chat.completions.create,
            kwargs={"model": "capped", "messages": [{"role": "user", "content": "hi"}], **kw},
        )
        thread.start()
        assert gateway.gate.arrived.acquire(timeout=WAIT_S)  # it is in flight upstream
        return thread

    held = [hold()]
    with pytest.raises(openai.InternalServerError) as batch:
        gateway.client.chat.completions.create(
            model="capped", messages=[{"role": "user", "content": "hi"}], service_tier="flex"
        )
    assert batch.value.status_code == 503
    assert batch.value.code == "overloaded"
    held.append(hold())  # interactive work may use the rest
    with pytest.raises(openai.InternalServerError) as full:
        gateway.client.chat.completions.create(
            model="capped", messages=[{"role": "user", "content": "hi"}]
        )
    assert full.value.code == "overloaded"
    assert full.value.response.headers["retry-after"] == "1"
    gateway.gate.release.set()
    for thread in held:
        thread.join(WAIT_S)
    done = gateway.client.chat.completions.create(
        model="capped", messages=[{"role": "user", "content": "hi"}]
    )
    assert done.model == "capped"
    assert len(gateway.gate.requests) == 3  # the refused ones never reached it


def test_a_json_answer_leaves_nothing_in_flight(gateway: Gateway) -> None:
    """A non-streamed answer is done once it is sent: its deployment's count of requests in
    flight is back down, or sequential requests would look like load and hit the bound."""
    for i in range(5):
        gateway.ask(f"question {i}")
        assert all(d.outstanding == 0 for d in gateway.state.router.deployments["big"])
