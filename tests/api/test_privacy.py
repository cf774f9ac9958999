"""Privacy through the HTTP API: the policy admin API, PII redaction in logs and traces,
mask mode with restoration, prompt-injection flags and blocks, tool-call validation."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from headrace.admission.secrets import load_or_create_pepper
from headrace.api.app import create_app
from headrace.config import Settings
from headrace.control import tenants
from headrace.control.keys import bootstrap, create_key
from headrace.engine.interface import (
    EngineStats,
    Finished,
    GenerationEvent,
    GenerationRequest,
    TextDelta,
)
from headrace.engine.tokenizer import Tokenizer
from headrace.observability.logging import log_processors
from headrace.observability.metrics import INJECTION_FLAGS, Metrics
from headrace.observability.telemetry import Telemetry
from headrace.observability.tracing import tracer_provider
from headrace.storage.database import Database
from tests.conftest import serving
from tests.fakes import INJECTION, fake_registry, with_tool_result

MODEL = "headrace-tiny-chat"
EMAIL = "alice.liddell@example.com"
CARD = "4111 1111 1111 1111"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


class ScriptedEngine:
    """Answers with `reply`, one delta per piece, and keeps every prompt it was given."""

    def __init__(self) -> None:
        self.reply: list[str] = ["ok"]
        self.prompts: list[tuple[int, ...]] = []

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        self.prompts.append(request.prompt_token_ids)
        for i, piece in enumerate(self.reply):
            yield TextDelta(text=piece, token_ids=(100 + i,))
        yield Finished("stop", len(request.prompt_token_ids), len(self.reply))

    def abort(self, request_id: str) -> None:
        return None

    def stats(self) -> EngineStats:
        return EngineStats()

    def close(self) -> None:
        return None


@dataclass
class Env:
    base_url: str
    admin: httpx.Client
    engine: ScriptedEngine
    tokenizer: Tokenizer
    telemetry: Telemetry
    spans: InMemorySpanExporter
    log: io.StringIO
    keys: dict[str, str] = field(default_factory=dict)  # project name -> API key
    projects: dict[str, str] = field(default_factory=dict)  # project name -> id

    def client(self, project: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.base_url}/v1", api_key=self.keys[project], max_retries=0
        )

    def last_prompt(self) -> str:
        return self.tokenizer.decode(list(self.engine.prompts[-1]))

    def set_policy(self, project: str, **policy: Any) -> dict[str, Any]:
        r = self.admin.put(f"/projects/{self.projects[project]}/privacy-policy", json=policy)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


async def _setup(settings: Settings) -> tuple[str, dict[str, str], dict[str, str]]:
    db = Database(settings.effective_database_url)
    await db.migrate()
    pepper = load_or_create_pepper(settings.data_dir)
    start = await bootstrap(db, pepper)
    assert start is not None
    keys = {}
    for project in ("plain", "masked", "guarded"):
        keys[project] = (await create_key(db, pepper, project=project, name="t")).secret
    projects = {p.name: p.id for p in await tenants.list_projects(db)}
    await db.close()
    return start.admin_secret, keys, projects


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("privacy"), privacy={"policy_cache_ttl_s": 0}
    )
    admin_key, keys, projects = asyncio.run(_setup(settings))
    log = io.StringIO()
    spans = InMemorySpanExporter()
    # The production chain of processors, writing where the test can read it.
    logger = structlog.wrap_logger(structlog.PrintLogger(file=log), processors=log_processors())
    telemetry = Telemetry(Metrics(), tracer_provider(settings.tracing, spans), log=logger)
    engine = ScriptedEngine()
    registry = fake_registry(engine)  # type: ignore[arg-type]
    app = create_app(settings, registry, telemetry=telemetry)
    with serving(app) as base_url:
        admin = httpx.Client(
            base_url=f"{base_url}/admin/v1", headers={"Authorization": f"Bearer {admin_key}"}
        )
        yield Env(
            base_url,
            admin,
            engine,
            registry.chat(MODEL).tokenizer,
            telemetry,
            spans,
            log,
            keys,
            projects,
        )


# --- the policy admin API -------------------------------------------------------------


def test_a_project_without_a_policy_shows_the_defaults(env: Env) -> None:
    r = env.admin.get(f"/projects/{env.projects['plain']}/privacy-policy")
    assert r.status_code == 200
    assert r.json() == {
        "object": "privacy_policy",
        "project_id": env.projects["plain"],
        "pii_mode": "log",
        "pii_kinds": None,
        "injection_threshold": 0.5,
        "injection_action": "flag",
        "is_default": True,
    }


def test_a_policy_is_set_read_back_and_reset(env: Env) -> None:
    pid = env.projects["plain"]
    body = env.set_policy("plain", pii_mode="store", pii_kinds=["email", "iban"])
    assert body["pii_mode"] == "store"
    assert body["pii_kinds"] == ["email", "iban"]
    assert body["injection_action"] == "flag"  # left out: the default
    assert body["is_default"] is False
    assert env.admin.get(f"/projects/{pid}/privacy-policy").json() == body
    reset = env.admin.delete(f"/projects/{pid}/privacy-policy")
    assert reset.status_code == 200
    assert reset.json()["is_default"] is True
    assert env.admin.get(f"/projects/{pid}/privacy-policy").json()["pii_mode"] == "log"


@pytest.mark.parametrize(
    ("policy", "param"),
    [
        ({"pii_mode": "shred"}, "pii_mode"),
        ({"pii_kinds": ["email", "horoscope"]}, "pii_kinds"),
        ({"injection_threshold": 1.5}, "injection_threshold"),
        ({"injection_action": "ignore"}, "injection_action"),
        ({"injection_threshold": "high"}, "injection_threshold"),
        ({"unknown_setting": 1}, "unknown_setting"),
    ],
)
def test_bad_policies_are_refused_by_name(env: Env, policy: dict[str, Any], param: str) -> None:
    r = env.admin.put(f"/projects/{env.projects['plain']}/privacy-policy", json=policy)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert param in (error["param"] or "")


def test_an_unknown_project_is_404_and_a_project_key_is_not_an_admin(env: Env) -> None:
    assert env.admin.get("/projects/proj_nope/privacy-policy").status_code == 404
    r = env.admin.put("/projects/proj_nope/privacy-policy", json={"pii_mode": "mask"})
    assert r.status_code == 404
    r = httpx.get(
        f"{env.base_url}/admin/v1/projects/{env.projects['plain']}/privacy-policy",
        headers={"Authorization": f"Bearer {env.keys['plain']}"},
    )
    assert r.status_code in (401, 403)


def test_policy_changes_are_in_the_audit_log(env: Env) -> None:
    env.set_policy("guarded", injection_action="flag")
    pid = env.projects["guarded"]
    r = env.admin.get("/audit-events", params={"action": "privacy_policy.set", "target_id": pid})
    assert r.status_code == 200, r.text
    [event, *_] = r.json()["data"]
    assert event["target"]["id"] == pid
    assert event["after"]["injection_action"] == "flag"


# --- redaction in logs and traces -------------------------------------------------------


def _wait_for_line(env: Env, request_id: str) -> None:
    """The access line is written once the response has ended, just after the client saw it."""
    deadline = time.monotonic() + 10
    while request_id not in env.log.getvalue():
        assert time.monotonic() < deadline, f"no access line for {request_id}"
        time.sleep(0.01)


def test_no_email_reaches_the_logs_or_the_traces(env: Env) -> None:
    env.engine.reply = ["Noted."]
    client = env.client("plain")
    client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": f"My email is {EMAIL}, card {CARD}."}],
        user=EMAIL,
        extra_headers={"x-request-id": "req-privacy-1", "x-user-email": EMAIL},
    )
    # The URL path is logged as it came: a caller can put anything there.
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(EMAIL, extra_headers={"x-request-id": "req-privacy-2"})
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": EMAIL}],
            extra_body={"no_such_parameter": EMAIL},
            extra_headers={"x-request-id": "req-privacy-3"},
        )
    for request_id in ("req-privacy-1", "req-privacy-2", "req-privacy-3"):
        _wait_for_line(env, request_id)
    text = env.log.getvalue()
    assert "req-privacy-2" in text
    assert "[EMAIL]" in text  # the path of the 404, redacted
    for secret in (EMAIL, "alice.liddell", CARD):
        assert secret not in text
    env.telemetry.provider.force_flush()  # type: ignore[union-attr]
    exported = json.dumps([s.to_json() for s in env.spans.get_finished_spans()])
    assert exported
    assert EMAIL not in exported


# --- mask mode --------------------------------------------------------------------------


def test_mask_mode_hides_pii_from_the_model_and_restores_it(env: Env) -> None:
    env.set_policy("masked", pii_mode="mask")
    env.engine.reply = ["I will write to <EMA", "IL_1> and charge <CREDIT_CARD_1>", "."]
    out = env.client("masked").chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": f"The user's address is {EMAIL}."},
            {"role": "user", "content": f"Mail {EMAIL} and use card {CARD}."},
        ],
    )
    prompt = env.last_prompt()
    assert EMAIL not in prompt
    assert CARD not in prompt
    assert prompt.count("<EMAIL_1>") == 2  # one value, one placeholder
    assert "<CREDIT_CARD_1>" in prompt
    assert out.choices[0].message.content == f"I will write to {EMAIL} and charge {CARD}."


def test_mask_mode_restores_placeholders_split_across_stream_chunks(env: Env) -> None:
    env.set_policy("masked", pii_mode="mask")
    env.engine.reply = ["Sent to <", "EMAIL", "_1", "> <b>done</b>", " <EMAIL_"]
    stream = env.client("masked").chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": f"Mail {EMAIL}"}], stream=True
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(pieces) == f"Sent to {EMAIL} <b>done</b> <EMAIL_"
    assert not any("<EMAIL_1>" in p or "EMAIL_1" in p for p in pieces)


def test_mask_mode_restores_tool_call_arguments(env: Env) -> None:
    env.set_policy("masked", pii_mode="mask")
    tool = {
        "type": "function",
        "function": {
            "name": "send_mail",
            "parameters": {
                "type": "object",
                "properties": {"to": {"type": "string"}},
                "required": ["to"],
            },
        },
    }
    env.engine.reply = [
        '<tool_call>\n{"name": "send_mail", "arguments": {"to": "<EMAIL_1>"}}',
        "\n</tool_call>",
    ]
    out = env.client("masked").chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": f"Mail {EMAIL}"}], tools=[tool]
    )
    [call] = out.choices[0].message.tool_calls or []
    assert json.loads(call.function.arguments) == {"to": EMAIL}


def test_mask_mode_covers_the_responses_api(env: Env) -> None:
    env.set_policy("masked", pii_mode="mask")
    env.engine.reply = ["Writing to <EMAIL", "_1> now."]
    done = env.client("masked").responses.create(
        model=MODEL, instructions=f"Reply to {EMAIL}.", input=f"Mail {EMAIL}", store=False
    )
    prompt = env.last_prompt()
    assert EMAIL not in prompt
    assert prompt.count("<EMAIL_1>") == 2
    assert done.output_text == f"Writing to {EMAIL} now."
    events = env.client("masked").responses.create(
        model=MODEL, input=f"Mail {EMAIL}", store=False, stream=True
    )
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == f"Writing to {EMAIL} now."


def test_the_default_mode_sends_the_prompt_as_it_is(env: Env) -> None:
    env.engine.reply = ["ok"]
    env.client("plain").chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": f"Mail {EMAIL}"}]
    )
    assert EMAIL in env.last_prompt()


# --- prompt injection -------------------------------------------------------------------


def test_an_injected_tool_result_is_flagged_in_a_header_a_metric_and_the_trace(
    env: Env,
) -> None:
    env.engine.reply = ["It is sunny."]
    before = env.telemetry.metrics.registry.get_sample_value(INJECTION_FLAGS, {"action": "flagged"})
    raw = env.client("plain").chat.completions.with_raw_response.create(
        model=MODEL, messages=with_tool_result(INJECTION), tools=[WEATHER_TOOL]
    )
    assert float(raw.headers["x-headrace-injection-score"]) >= 0.5
    assert "instruction_override" in raw.headers["x-headrace-injection-rules"]
    assert raw.parse().choices[0].message.content == "It is sunny."
    _wait_for_line(env, raw.headers["x-request-id"])  # the metric is written with it
    after = env.telemetry.metrics.registry.get_sample_value(INJECTION_FLAGS, {"action": "flagged"})
    assert after == (before or 0) + 1
    env.telemetry.provider.force_flush()  # type: ignore[union-attr]
    roots = [
        s
        for s in env.spans.get_finished_spans()
        if s.attributes and "headrace.injection" in s.attributes
    ]
    assert roots
    assert roots[-1].attributes["headrace.injection"] == "flagged"  # type: ignore[index]


def test_a_clean_tool_result_scores_low_and_the_users_words_are_never_scored(
    env: Env,
) -> None:
    raw = env.client("plain").chat.completions.with_raw_response.create(
        model=MODEL, messages=with_tool_result("Sunny, 21 degrees."), tools=[WEATHER_TOOL]
    )
    # No rule matches; the classifier's probability is all there is, and it is low.
    assert float(raw.headers["x-headrace-injection-score"]) < 0.2
    raw = env.client("plain").chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": INJECTION}]
    )
    assert "x-headrace-injection-score" not in raw.headers


def test_a_project_that_blocks_gets_a_400_content_policy_violation(env: Env) -> None:
    env.set_policy("guarded", injection_action="block", injection_threshold=0.5)
    with pytest.raises(openai.BadRequestError) as caught:
        env.client("guarded").chat.completions.create(
            model=MODEL, messages=with_tool_result(INJECTION), tools=[WEATHER_TOOL]
        )
    assert caught.value.code == "content_policy_violation"
    assert caught.value.param == "messages[2].content"
    ok = env.client("guarded").chat.completions.create(
        model=MODEL, messages=with_tool_result("Sunny."), tools=[WEATHER_TOOL]
    )
    assert ok.choices[0].finish_reason == "stop"


# --- tool-call validation ---------------------------------------------------------------


def _call(arguments: dict[str, Any], name: str = "get_weather") -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def test_a_call_that_fits_the_schema_is_returned_as_a_call(env: Env) -> None:
    env.engine.reply = [_call({"city": "Paris"})]
    out = env.client("plain").chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER_TOOL]
    )
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert json.loads(call.function.arguments) == {"city": "Paris"}


@pytest.mark.parametrize(
    ("arguments", "name"),
    [({"city": 42}, "get_weather"), ({"town": "Paris"}, "get_weather"), ({}, "launch_rockets")],
)
def test_a_call_its_schema_refuses_is_returned_as_text(
    env: Env, arguments: dict[str, Any], name: str
) -> None:
    env.engine.reply = [_call(arguments, name)]
    out = env.client("plain").chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER_TOOL]
    )
    choice = out.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    assert choice.message.content == _call(arguments, name)


def test_a_streamed_call_its_schema_refuses_is_streamed_as_text(env: Env) -> None:
    env.engine.reply = [
        '<tool_call>\n{"name": "get_weather", ',
        '"arguments": {"city": 7}}\n</tool_call>',
    ]
    stream = env.client("plain").chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    chunks = [c for c in stream if c.choices]
    assert not any(c.choices[0].delta.tool_calls for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(env.engine.reply)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_tool_with_an_invalid_schema_is_a_400(env: Env) -> None:
    bad = {"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}
    with pytest.raises(openai.BadRequestError) as caught:
        env.client("plain").chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], tools=[bad]
        )
    assert caught.value.param == "tools[0].function.parameters"


# --- store mode -------------------------------------------------------------------------


def test_store_mode_redacts_stored_conversations_only(env: Env) -> None:
    env.set_policy("plain", pii_mode="store")
    try:
        http = httpx.Client(
            base_url=f"{env.base_url}/v1",
            headers={"Authorization": f"Bearer {env.keys['plain']}"},
        )
        item = {"type": "message", "role": "user", "content": f"I am {EMAIL}"}
        created = http.post("/conversations", json={"items": [item]})
        assert created.status_code == 200, created.text
        cid = created.json()["id"]
        added = http.post(f"/conversations/{cid}/items", json={"items": [item]})
        assert added.status_code == 200, added.text
        stored = http.get(f"/conversations/{cid}/items").text
        assert EMAIL not in stored
        assert "I am [EMAIL]" in stored
    finally:
        env.admin.delete(f"/projects/{env.projects['plain']}/privacy-policy")


def test_store_mode_redacts_stored_responses_but_not_the_answer(env: Env) -> None:
    env.set_policy("plain", pii_mode="store")
    env.engine.reply = ["Hello ", EMAIL]
    try:
        client = env.client("plain")
        response = client.responses.create(model=MODEL, input=f"I am {EMAIL}", store=True)
        assert response.output_text == f"Hello {EMAIL}"  # the caller's own answer, as is
        kept = client.responses.retrieve(response.id)
        assert EMAIL not in kept.model_dump_json()
        inputs = client.responses.input_items.list(response.id)
        assert EMAIL not in inputs.model_dump_json()
    finally:
        env.admin.delete(f"/projects/{env.projects['plain']}/privacy-policy")


def test_mask_mode_covers_legacy_completions(env: Env) -> None:
    env.set_policy("masked", pii_mode="mask")
    env.engine.reply = ["Sent to <EMA", "IL_1>."]
    out = env.client("masked").completions.create(
        model=MODEL, prompt=f"Mail {EMAIL} now.", echo=True
    )
    assert EMAIL not in env.last_prompt()
    assert "<EMAIL_1>" in env.last_prompt()
    # The echo is the caller's own prompt; the answer comes back restored.
    assert out.choices[0].text == f"Mail {EMAIL} now.Sent to {EMAIL}."
    stream = env.client("masked").completions.create(
        model=MODEL, prompt=[f"Mail {EMAIL}"], stream=True
    )
    assert "".join(c.choices[0].text for c in stream if c.choices) == f"Sent to {EMAIL}."
