"""Models on deployments elsewhere, through the SDK: proxied JSON and streams, failover
before the first token only, circuit breakers, fallback models, and one usage event each."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from headrace.admission.secrets import load_or_create_pepper
from headrace.api.app import create_app
from headrace.config import Settings
from headrace.control.keys import create_project_key
from headrace.control.tenants import create_org, create_project
from headrace.engine.tokenizer import Tokenizer
from headrace.observability.metrics import Metrics
from headrace.observability.telemetry import Telemetry
from headrace.observability.tracing import tracer_provider
from headrace.routing.registry import COUNTING_TOKENIZER
from headrace.storage.database import Database
from headrace.storage.schema import UsageEventRow
from tests.conftest import new_key, serving, usage_rows
from tests.fake_upstream import USAGE, WORDS, FakeUpstream

ASK = [{"role": "user", "content": "Say hello."}]


@dataclass
class Gateway:
    settings: Settings
    client: openai.OpenAI
    upstreams: dict[str, FakeUpstream]
    stack: ExitStack
    base_url: str
    spans: InMemorySpanExporter

    def metrics_until(self, *lines: str) -> str:
        """The `/metrics` page once it shows `lines` (requests are counted as they end,
        just after their last byte), or as it is after a few seconds."""
        deadline = time.monotonic() + 5
        while True:
            text = httpx.get(f"{self.base_url}/metrics").text
            if all(line in text for line in lines) or time.monotonic() > deadline:
                return text

    def usage(self) -> list[UsageEventRow]:
        """The ledger, once the gateway has stopped (and so written all it had queued)."""
        self.stack.close()
        return usage_rows(self.settings)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    """Model `big` on deployments a and b (b slow to time out when hanging), falling back to
    model `small` on deployment s."""
    upstreams = {name: FakeUpstream() for name in ("a", "b", "s")}
    with ExitStack() as stack:
        urls = {n: stack.enter_context(serving(u)) + "/v1" for n, u in upstreams.items()}

        def deployment(name: str) -> dict[str, object]:
            return {"name": name, "url": urls[name], "model": f"up-{name}", "timeout_s": 2.0}

        settings = Settings(
            data_dir=tmp_path,
            models=[
                {"name": "big", "deployments": [deployment("a"), deployment("b")],
                 "fallbacks": ["small"], "input_price_per_1m": 1.0, "output_price_per_1m": 2.0},
                {"name": "small", "deployments": [deployment("s")]},
                {"name": "vectors", "kind": "embedding", "deployments": [deployment("s")]},
                {"name": "gold", "deployments": [deployment("s") | {"tiers": ["premium"]}]},
            ],
            routing={"retry_base_s": 0.0, "breaker_failures": 2, "breaker_cooldown_s": 60},
        )  # fmt: skip

        secret = new_key(settings).secret
        spans = InMemorySpanExporter()
        telemetry = Telemetry(Metrics(), tracer_provider(settings.tracing, spans))
        base = stack.enter_context(serving(create_app(settings, telemetry=telemetry)))
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=secret, max_retries=0)
        yield Gateway(settings, client, upstreams, stack, base, spans)


def test_json_is_proxied_with_our_id_and_the_upstreams_usage(gateway: Gateway) -> None:
    raw = gateway.client.chat.completions.with_raw_response.create(model="big", messages=ASK)
    completion = raw.parse()
    assert completion.choices[0].message.content == "".join(WORDS)
    assert completion.model == "big"
    assert completion.id.startswith("chatcmpl-")
    assert completion.usage is not None
    assert completion.usage.completion_tokens == USAGE["completion_tokens"]
    served = raw.headers["x-headrace-deployment"]
    assert served in {"a", "b"}
    assert gateway.upstreams[served].requests[0]["model"] == f"up-{served}"


def test_the_request_goes_upstream_as_the_client_wrote_it(gateway: Gateway) -> None:
    """Arguments as sent (no defaults added), a message's keys the gateway does not know
    included (an upstream's own extensions); only the model is the deployment's own."""
    message = {"role": "user", "content": "Say hello.", "cache_control": {"type": "ephemeral"}}
    raw = gateway.client.chat.completions.with_raw_response.create(
        model="big", messages=[message], temperature=0.5, max_tokens=7, extra_body={"seed": 3}
    )
    served = raw.headers["x-headrace-deployment"]
    sent = gateway.upstreams[served].requests[-1]
    assert sent == {
        "model": f"up-{served}",
        "messages": [message],
        "temperature": 0.5,
        "max_tokens": 7,
        "seed": 3,
    }


def test_a_stream_passes_through_and_usage_only_when_asked(gateway: Gateway) -> None:
    chunks = list(gateway.client.chat.completions.create(model="big", messages=ASK, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(WORDS)
    assert all(c.usage is None for c in chunks)
    assert {c.model for c in chunks} == {"big"}
    with_usage = list(
        gateway.client.chat.completions.create(
            model="big", messages=ASK, stream=True, stream_options={"include_usage": True}
        )
    )
    assert with_usage[-1].usage is not None
    assert with_usage[-1].usage.prompt_tokens == USAGE["prompt_tokens"]


def test_an_upstream_without_usage_is_counted_with_our_tokenizer(gateway: Gateway) -> None:
    """Some servers send no usage block: the prompt and a whole answer are counted with the
    bundled tokenizer, a stream a token a chunk; the client gets that usage where it would
    have had the upstream's, and the ledger records it."""
    for upstream in gateway.upstreams.values():
        upstream.usage = False
    counter = Tokenizer(COUNTING_TOKENIZER)
    prompt, answer = counter.count("Say hello."), counter.count("".join(WORDS))
    completion = gateway.client.chat.completions.create(model="big", messages=ASK)
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (prompt, answer)
    chunks = list(
        gateway.client.chat.completions.create(
            model="big", messages=ASK, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (
        prompt,
        len(WORDS),
    )
    legacy = list(gateway.client.completions.create(model="big", prompt="Say hello.", stream=True))
    assert "".join(c.choices[0].text for c in legacy if c.choices) == "".join(WORDS)
    used = sorted((e.endpoint, e.input_tokens, e.output_tokens) for e in gateway.usage())
    assert used == sorted(
        [
            ("chat.completions", prompt, answer),
            ("chat.completions", prompt, len(WORDS)),
            ("completions", prompt, len(WORDS)),
        ]
    )


def test_a_failing_deployment_is_skipped_then_its_circuit_opens(gateway: Gateway) -> None:
    a, b = gateway.upstreams["a"], gateway.upstreams["b"]
    a.mode = "fail"
    for _ in range(30):  # a's turn comes up (at random among equals) at least twice
        raw = gateway.client.chat.completions.with_raw_response.create(model="big", messages=ASK)
        assert raw.headers["x-headrace-deployment"] == "b"
    assert len(a.requests) == 2  # two failures in a row: open, and left alone since
    assert len(b.requests) == 30


def test_the_fallback_model_serves_when_every_deployment_fails(gateway: Gateway) -> None:
    gateway.upstreams["a"].mode = gateway.upstreams["b"].mode = "fail"
    raw = gateway.client.chat.completions.with_raw_response.create(model="big", messages=ASK)
    assert raw.headers["x-headrace-fallback-model"] == "small"
    assert raw.headers["x-headrace-deployment"] == "s"
    assert raw.parse().model == "big"  # what the client asked for, served by the fallback


def test_a_hanging_deployment_times_out_into_the_next(gateway: Gateway) -> None:
    gateway.upstreams["a"].mode = gateway.upstreams["b"].mode = "hang"
    stream = gateway.client.chat.completions.create(model="big", messages=ASK, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "".join(WORDS)  # from `small`, after a and b timed out


def test_a_stream_cut_after_its_first_tokens_is_an_error_not_a_retry(gateway: Gateway) -> None:
    for name in ("a", "b"):
        gateway.upstreams[name].mode = "cut"
    seen: list[str | None] = []

    def read() -> None:
        for chunk in gateway.client.chat.completions.create(model="big", messages=ASK, stream=True):
            seen.append(chunk.choices[0].delta.content if chunk.choices else None)

    with pytest.raises(openai.APIError):
        read()
    assert "".join(s or "" for s in seen) == "".join(WORDS[:2])  # never twice
    tried = sum(len(gateway.upstreams[n].requests) for n in ("a", "b", "s"))
    assert tried == 1


def test_an_upstreams_own_refusal_reaches_the_client(gateway: Gateway) -> None:
    for name in ("a", "b"):
        gateway.upstreams[name].mode = "bad"
    with pytest.raises(openai.BadRequestError) as err:
        gateway.client.chat.completions.create(model="big", messages=ASK, max_tokens=10**6)
    assert "too large" in err.value.message
    assert err.value.param == "max_tokens"
    assert sum(len(u.requests) for u in gateway.upstreams.values()) == 1  # not retried


def test_everything_down_is_a_503_and_usage_is_one_event_per_request(
    gateway: Gateway,
) -> None:
    gateway.client.chat.completions.create(model="big", messages=ASK)
    for u in gateway.upstreams.values():
        u.mode = "fail"
    with pytest.raises(openai.InternalServerError) as err:
        gateway.client.chat.completions.create(model="big", messages=ASK)
    assert err.value.status_code == 503
    assert err.value.response.headers["retry-after"] == "1"
    for u in gateway.upstreams.values():
        u.mode = "cut"
    with pytest.raises(openai.APIError):
        list(gateway.client.chat.completions.create(model="big", messages=ASK, stream=True))
    events = sorted(gateway.usage(), key=lambda e: e.status)
    assert [(e.status, e.output_tokens) for e in events] == [("error", 2), ("ok", 4)]
    error, ok = events
    assert ok.input_tokens == USAGE["prompt_tokens"]  # the upstream's count, not our estimate
    assert ok.input_cost_nanousd == 11_000  # 11 tokens at $1 per million
    assert ok.deployment in {"a", "b"}
    assert error.ttft_ms is not None


def test_metrics_show_circuits_fallbacks_and_tiers(gateway: Gateway) -> None:
    gateway.upstreams["a"].mode = gateway.upstreams["b"].mode = "fail"
    for _ in range(3):
        gateway.client.chat.completions.create(model="big", messages=ASK)
    expected = (
        'headrace:deployment_circuit_state{deployment="a",model="big",state="open"} 1.0',
        'headrace:deployment_circuit_state{deployment="s",model="small",state="closed"} 1.0',
        'headrace:deployment_failures_total{deployment="a",model="big"} 2.0',
        'headrace:fallbacks_total{fallback_model="small",model="big"} 3.0',
        'route="/v1/chat/completions",status="200",tier="standard"} 3.0',
    )
    text = gateway.metrics_until(*expected)
    for line in expected:
        assert line in text


def test_a_tier_reaches_only_its_deployments(gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError):
        gateway.client.chat.completions.create(model="gold", messages=ASK)
    assert gateway.upstreams["s"].requests == []

    async def premium_key() -> str:
        db = Database(gateway.settings.effective_database_url)
        org = await create_org(db, "premium-org")
        project = await create_project(db, org.id, "premium-project", tier="premium")
        pepper = load_or_create_pepper(gateway.settings.data_dir)
        created = await create_project_key(db, pepper, project_id=project.id, name="gold")
        await db.close()
        return created.secret

    premium = gateway.client.with_options(api_key=asyncio.run(premium_key()))
    assert premium.chat.completions.create(model="gold", messages=ASK).model == "gold"


def test_the_trace_continues_into_the_upstream(gateway: Gateway) -> None:
    """W3C trace context: the upstream's parent span is our request's root span, in the
    client's trace."""
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    gateway.client.chat.completions.create(
        model="big",
        messages=ASK,
        extra_headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    sent = next(u for u in gateway.upstreams.values() if u.headers)
    _, upstream_trace, parent_span, flags = sent.headers[0][b"traceparent"].decode().split("-")
    assert (upstream_trace, flags) == (trace_id, "01")
    deadline = time.monotonic() + 5
    while not gateway.spans.get_finished_spans() and time.monotonic() < deadline:
        time.sleep(0.01)
    roots = [s for s in gateway.spans.get_finished_spans() if s.name.startswith("POST")]
    assert roots
    assert f"{roots[0].context.span_id:016x}" == parent_span
    assert f"{roots[0].context.trace_id:032x}" == trace_id


def test_completions_and_embeddings_are_proxied_too(gateway: Gateway) -> None:
    completion = gateway.client.completions.create(model="big", prompt="Say hello.")
    assert completion.choices[0].text == "".join(WORDS)
    assert completion.model == "big"
    assert completion.id.startswith("cmpl-")
    vectors = gateway.client.embeddings.create(model="vectors", input="hello")
    assert vectors.data[0].embedding == [0.6, 0.8]
    assert vectors.usage.prompt_tokens == 3
    with pytest.raises(openai.NotFoundError):  # an embedding model does not chat
        gateway.client.chat.completions.create(model="vectors", messages=ASK)
    with pytest.raises(openai.BadRequestError) as info:  # local models only, said so
        gateway.client.responses.create(model="big", input="Say hello.")
    assert info.value.param == "model"
    assert "/v1/chat/completions" in info.value.message
    events = {e.endpoint: e for e in gateway.usage()}
    assert events["embeddings"].input_tokens == 3
    assert events["completions"].output_tokens == USAGE["completion_tokens"]


def test_a_proxied_request_is_moderated_before_it_leaves(gateway: Gateway) -> None:
    from tests.api.test_moderation_checks import BOMB

    with pytest.raises(openai.BadRequestError) as err:
        gateway.client.chat.completions.create(
            model="big", messages=[{"role": "user", "content": BOMB}]
        )
    assert err.value.code == "content_policy_violation"
    assert all(not u.requests for u in gateway.upstreams.values())


RECIPE = ["Sure. ", "Here are ", "the steps to make ", "a pipe bomb ", "at home: "] + [
    f"step{i} " for i in range(60)
]


def test_a_proxied_answer_is_moderated_as_it_streams(gateway: Gateway) -> None:
    for upstream in gateway.upstreams.values():
        upstream.words = list(RECIPE)
    chunks = list(gateway.client.chat.completions.create(model="big", messages=ASK, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "pipe bomb" not in text
    assert "step59" not in text
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    answer = gateway.client.chat.completions.create(model="big", messages=ASK)
    assert answer.choices[0].finish_reason == "content_filter"
    assert "pipe bomb" not in (answer.choices[0].message.content or "")
    statuses = sorted(u.status for u in gateway.usage())
    assert statuses == ["content_filter", "content_filter"]


def test_the_proxy_lane_refuses_as_the_routes_do(gateway: Gateway) -> None:
    """Remote models' requests skip FastAPI (api/proxy_lane.py): same errors, same envelope."""
    url = f"{gateway.base_url}/v1/chat/completions"
    key = {"Authorization": f"Bearer {gateway.client.api_key}"}
    bad_type = httpx.post(url, headers=key, json={"model": "big", "messages": "hi"})
    assert bad_type.status_code == 400
    assert bad_type.json()["error"]["param"] == "messages"
    missing = httpx.post(url, headers=key, json={"model": "big"})
    assert missing.status_code == 400
    assert missing.json()["error"]["message"] == "Missing required parameter: 'messages'."
    unknown = httpx.post(url, headers=key, json={"model": "big", "messages": ASK, "nope": 1})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["param"] == "nope"
    no_key = httpx.post(url, json={"model": "big", "messages": ASK})
    assert no_key.status_code == 401
    assert no_key.json()["error"]["type"] == "invalid_request_error"
    as_json = key | {"Content-Type": "application/json"}
    not_json = httpx.post(url, headers=as_json, content=b"{not json")
    assert not_json.status_code == 400  # not the lane's: the routes answer it
    assert "parse the JSON body" in not_json.json()["error"]["message"]
    assert all(not u.requests for u in gateway.upstreams.values())
    ok = httpx.post(url, headers=key, json={"model": "big", "messages": ASK})
    assert ok.status_code == 200
    assert ok.headers["x-request-id"].startswith("req_")
    text = gateway.metrics_until('route="/v1/chat/completions"')
    assert 'route="/v1/chat/completions"' in text  # the lane names its route for metrics


def test_a_batch_runs_on_a_proxied_model_with_stable_ids(gateway: Gateway) -> None:
    from tests.batch.harness import chat_line, jsonl

    lines = [chat_line(f"line-{i}", model="big") for i in range(3)]
    source = gateway.client.files.create(file=jsonl(lines), purpose="batch")
    batch = gateway.client.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    deadline = time.monotonic() + 30
    while (batch := gateway.client.batches.retrieve(batch.id)).status != "completed":
        assert time.monotonic() < deadline, batch.status
        time.sleep(0.05)
    assert batch.output_file_id is not None
    out = [
        orjson.loads(x)
        for x in gateway.client.files.content(batch.output_file_id).text.splitlines()
    ]
    ids = sorted(line["response"]["body"]["id"] for line in out)
    assert all(line["response"]["status_code"] == 200 for line in out)
    assert all(batch.id in i for i in ids)  # the line's key, not a random id: a rerun after
    usage = sorted(u.request_id for u in gateway.usage())  # a crash meters the same event
    assert usage == ids
