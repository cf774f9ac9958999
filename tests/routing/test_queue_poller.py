"""Workers' reported queue depth, polled from a fake `/stats` on loopback: one round at a
time (`poll_once`), so nothing waits on the poller's interval."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from headrace.api.app import create_app
from headrace.config import Settings
from headrace.routing.queue_poller import QueuePoller, stats_url, waiting
from headrace.routing.router import Deployment
from headrace.routing.upstream import UpstreamTarget
from tests.conftest import serving
from tests.fake_upstream import FakeUpstream


class FakeStats:
    """A worker's `/stats`: `answer` as JSON, or `status` 500, or `body` as it is."""

    def __init__(self) -> None:
        self.answer: Any = {"models": {"tiny": {"waiting": 7, "running": 2}}}
        self.status = 200
        self.body: bytes | None = None
        self.paths: list[str] = []
        self.auth: list[bytes | None] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.paths.append(scope["path"])
        self.auth.append(dict(scope["headers"]).get(b"authorization"))
        body = self.body if self.body is not None else orjson.dumps(self.answer)
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def stats() -> Iterator[tuple[FakeStats, str]]:
    fake = FakeStats()
    with serving(fake) as base:
        yield fake, base


def worker(name: str, base_url: str, model: str = "tiny", **kw: Any) -> Deployment:
    target = UpstreamTarget(name=name, base_url=base_url, model=model, api_key=kw.pop("key", None))
    return Deployment(name, "m", kind=kw.pop("kind", "worker"), target=target, **kw)


async def test_one_round_sets_each_workers_queue_depth(stats: tuple[FakeStats, str]) -> None:
    fake, base = stats
    w = worker("w", f"{base}/v1", key="sk-worker")
    other = worker("o", f"{base}/v1", kind="openai")  # not a worker: no /stats to read
    poller = QueuePoller([w, other], interval_s=60.0)  # polls time out at 5 s: room on a loaded box
    await poller.poll_once()
    assert (w.queue_depth, other.queue_depth) == (7, 0)
    assert fake.paths == ["/stats"]
    assert fake.auth == [b"Bearer sk-worker"]
    fake.answer = {"models": {"tiny": {"waiting": 0}}}
    await poller.poll_once()
    assert w.queue_depth == 0
    await poller.close()


@pytest.mark.parametrize(
    "breakage",
    [
        {"status": 500},
        {"body": b"<html>not json"},
        {"answer": {"models": {"tiny": {"waiting": "many"}}}},
        {"answer": {"models": {}}},
        {"answer": ["not", "an", "object"]},
    ],
)
async def test_a_failed_poll_leaves_the_last_value(
    stats: tuple[FakeStats, str], breakage: dict[str, Any]
) -> None:
    fake, base = stats
    w = worker("w", f"{base}/v1")
    poller = QueuePoller([w], interval_s=60.0)
    await poller.poll_once()
    assert w.queue_depth == 7
    for name, value in breakage.items():
        setattr(fake, name, value)
    await poller.poll_once()  # does not raise
    assert w.queue_depth == 7
    await poller.close()


async def test_an_unreachable_worker_leaves_the_last_value() -> None:
    w = worker("w", "http://127.0.0.1:1/v1")
    w.queue_depth = 3
    poller = QueuePoller([w], interval_s=1.0)
    await poller.poll_once()
    assert w.queue_depth == 3
    await poller.close()


async def test_start_and_close_with_the_app() -> None:
    poller = QueuePoller([worker("w", "http://127.0.0.1:1/v1")], interval_s=60.0)
    poller.start()
    await poller.close()  # cancels the loop; no task left behind
    idle = QueuePoller([], interval_s=1.0)
    idle.start()  # nothing to poll: no task at all
    await idle.close()


def test_stats_sit_beside_the_api_root() -> None:
    assert stats_url("http://w:8000/v1") == "http://w:8000/stats"
    assert stats_url("http://w:8000/v1/") == "http://w:8000/stats"
    assert stats_url("http://w:8000") == "http://w:8000/stats"


def test_the_depth_of_the_named_model_or_the_only_one() -> None:
    two = {"models": {"a": {"waiting": 1}, "b": {"waiting": 2}}}
    assert waiting(two, "b") == 2
    assert waiting(two, "c") is None
    assert waiting({"models": {"served-as": {"waiting": 4}}}, "asked-as") == 4
    assert waiting({"models": {"a": {"waiting": -1}}}, "a") is None
    assert waiting({"models": {"a": {"waiting": True}}}, "a") is None


def test_a_running_gateway_polls_its_workers_and_shows_their_queue(tmp_path: Path) -> None:
    """End to end: the app's poller runs on its own, the depth reaches `/metrics`."""
    fake, upstream = FakeStats(), FakeUpstream()

    async def worker_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        app = fake if scope.get("path") == "/stats" else upstream
        await app(scope, receive, send)

    with serving(worker_app) as base:
        settings = Settings(
            data_dir=tmp_path,
            models=[{"name": "m", "deployments": [
                {"name": "w", "kind": "worker", "url": f"{base}/v1", "model": "tiny"}]}],
            routing={"queue_poll_interval_s": 0.05},
        )  # fmt: skip
        with serving(create_app(settings)) as gateway:
            deadline = time.monotonic() + 10
            line = 'headrace:deployment_queue_depth{deployment="w",model="m"} 7.0'
            while line not in (text := httpx.get(f"{gateway}/metrics").text):
                assert time.monotonic() < deadline, text[-2000:]
                time.sleep(0.02)
            fake.answer = {"models": {"tiny": {"waiting": 0}}}
            line = 'headrace:deployment_queue_depth{deployment="w",model="m"} 0.0'
            while line not in httpx.get(f"{gateway}/metrics").text:
                assert time.monotonic() < deadline
                time.sleep(0.02)
    assert fake.paths.count("/stats") >= 2
