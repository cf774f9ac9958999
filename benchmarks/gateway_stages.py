"""What each stage of a proxied request costs in CPU, by stubbing it out:

    .venv/bin/python -m benchmarks.gateway_stages --requests 3200 --rounds 8 [--stream]

The gateway's app runs in this process, driven directly as ASGI (no uvicorn, no wrk) by 64
concurrent callers against the instant upstream (benchmarks/proxy/upstream.py) over
loopback, with the pipeline of `gateway_proxy.py` (auth, limits, a fresh Idempotency-Key
per request, the ledger, metrics, the access log; moderation off); `--stream` asks for
SSE streams (the upstream's 6 content chunks and its usage) instead of JSON answers. For
each stage, rounds alternate between the stage as it is and the stage stubbed out; the CPU
time of the whole process per request is compared pair by pair, and the median difference
is what the stage costs. The floor's app (`benchmarks/proxy/floor.py`) is driven the same
way first, for scale.

The stubs only make sense here: a stubbed stage does no work (no usage row, no access
line, no upstream call: a canned answer).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import uvloop

from benchmarks.gateway_proxy import BODY, free_port, headrace_config, running

Patch = tuple[Any, str, Any]  # object, attribute, the value it takes while stubbed

ANSWER = orjson.dumps(
    {
        "id": "x", "object": "chat.completion", "created": 1, "model": "instant",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
    }
)  # fmt: skip


def _stubs() -> dict[str, Callable[[Any], list[Patch]]]:
    """Stage name -> the patches that stub it out, given the app's state."""
    from headrace.api.idempotency import IdempotencyMiddleware
    from headrace.engine.tokenizer import Tokenizer
    from headrace.metering.ledger import UsageLedger
    from headrace.observability.access_log import AccessLine
    from headrace.observability.telemetry import Telemetry
    from headrace.protocol.chat import ChatCompletionRequest
    from headrace.routing.upstream import UpstreamClient

    async def begun(self: Any, event: Any) -> bool:
        return True

    async def passed_on(self: Any, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    async def canned(self: Any, target: Any, path: str, body: Any, headers: Any = None) -> Any:
        orjson.dumps(body)
        await asyncio.sleep(0)
        return orjson.loads(ANSWER)

    async def canned_stream(
        self: Any, target: Any, path: str, body: Any, headers: Any = None
    ) -> Any:
        orjson.dumps(body)
        await asyncio.sleep(0)
        for event in STREAM:
            yield orjson.loads(event)

    def constructed(cls: Any, data: Any) -> Any:
        return cls.model_construct(**data)

    return {
        "upstream": lambda state: [
            (UpstreamClient, "complete", canned),
            (UpstreamClient, "stream", canned_stream),
        ],
        "ledger": lambda state: [
            (UsageLedger, "begin", begun),
            (UsageLedger, "record", lambda self, event: None),
            (UsageLedger, "discard", lambda self, request_id: None),
        ],
        "telemetry": lambda state: [(Telemetry, "observe", lambda self, record: None)],
        "access-log": lambda state: [(AccessLine, "write", lambda self, fields: None)],
        "idempotency": lambda state: [(IdempotencyMiddleware, "__call__", passed_on)],
        "count": lambda state: [(Tokenizer, "count", lambda self, text: 9)],
        "validation": lambda state: [
            (ChatCompletionRequest, "model_validate", classmethod(constructed))
        ],
    }


# What the instant upstream streams (benchmarks/proxy/upstream.py), less the `[DONE]`.
STREAM = [
    orjson.dumps(
        {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "instant",
         "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    )
    for text in ["", "Hello", " from", " the", " instant", " upstream", "."]
] + [
    orjson.dumps(
        {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "instant",
         "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}}
    )
]  # fmt: skip


class Driver:
    """Calls an ASGI app the way a server would, one POST at a time per caller."""

    def __init__(self, app: Any, key: str, *, stream: bool = False) -> None:
        self.app, self.key, self.count = app, key, 0
        self.body = orjson.dumps(BODY | ({"stream": True} if stream else {}))

    async def one(self) -> None:
        self.count += 1
        headers = [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode()),
            (b"authorization", f"Bearer {self.key}".encode()),
            (b"idempotency-key", f"stages-{time.time_ns()}-{self.count}".encode()),
        ]
        path = "/v1/chat/completions"
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "method": "POST", "scheme": "http", "path": path,
            "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2),
            "state": {},
        }  # fmt: skip
        delivered = False
        status: list[int] = []

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": self.body, "more_body": False}
            await asyncio.Event().wait()  # the client never leaves
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await self.app(scope, receive, send)
        if status != [200]:
            raise RuntimeError(f"the gateway answered {status}")

    async def cpu_per_request_us(self, requests: int, callers: int = 64) -> float:
        async def caller() -> None:
            for _ in range(requests // callers):
                await self.one()

        started = time.process_time()
        await asyncio.gather(*(caller() for _ in range(callers)))
        return (time.process_time() - started) / (requests // callers * callers) * 1e6


def _patch(patches: list[Patch]) -> list[Patch]:
    """Apply `patches`; the patches that undo them."""
    undo = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    for obj, name, value in patches:
        setattr(obj, name, value)
    return undo


async def measure(
    app: Any, key: str, stubs: list[str], requests: int, rounds: int, *, stream: bool = False
) -> dict[str, tuple[float, float]]:
    """Stage -> (median CPU per request with it, median paired saving without it), us."""
    driver = Driver(app, key, stream=stream)
    for _ in range(300):  # warm: key cache, connections, code paths
        await driver.one()
    gc.collect()
    gc.freeze()  # as `headrace serve` does after start-up
    gc.set_threshold(20_000, 20, 20)
    state = getattr(app, "state", None)
    found = _stubs()
    results = {}
    for stage in stubs:
        patches = found[stage](state.headrace if state is not None else None)
        with_stage, savings = [], []
        for _ in range(rounds):
            on = await driver.cpu_per_request_us(requests)
            undo = _patch(patches)
            try:
                off = await driver.cpu_per_request_us(requests)
            finally:
                _patch(undo)
            with_stage.append(on)
            savings.append(on - off)
        results[stage] = (statistics.median(with_stage), statistics.median(savings))
        print(f"{stage}: {results[stage][1]:.0f} us of {results[stage][0]:.0f}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=3200, help="per round")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--stubs", default="upstream,ledger,telemetry,idempotency,count,validation")
    parser.add_argument("--stream", action="store_true", help="SSE streams, not JSON answers")
    args = parser.parse_args()
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    with (
        tempfile.TemporaryDirectory() as tmp,
        running([sys.executable, "-m", "benchmarks.proxy.upstream", str(up_port)], up_port),
    ):
        env, key = headrace_config(Path(tmp), upstream, moderated=False)
        os.environ.update(env)
        from benchmarks.proxy import floor
        from headrace.api.app import create_app
        from headrace.config import load_settings

        app = create_app(load_settings(Path(env["HEADRACE_CONFIG"])))
        floor.UPSTREAM, floor.KEY = f"{upstream}/v1", f"Bearer {key}".encode()

        async def run() -> None:
            floor_us = await _floor_cpu(key, args.requests, stream=args.stream)
            print(f"floor: {floor_us:.0f} us", flush=True)
            async with app.router.lifespan_context(app):
                stubs = args.stubs.split(",")
                await measure(app, key, stubs, args.requests, args.rounds, stream=args.stream)

        stderr = sys.stderr
        with (Path(tmp) / "headrace.log").open("w") as log:
            sys.stderr = log  # the access log goes to a file, as in gateway_proxy.py
            try:
                uvloop.run(run())
            finally:
                sys.stderr = stderr


async def _floor_cpu(key: str, requests: int, *, stream: bool) -> float:
    """The floor's app (benchmarks/proxy/floor.py) driven the same way: CPU per request."""
    from benchmarks.proxy import floor

    driver = Driver(floor.app, key, stream=stream)
    for _ in range(300):
        await driver.one()
    return statistics.median([await driver.cpu_per_request_us(requests) for _ in range(3)])


if __name__ == "__main__":
    main()
