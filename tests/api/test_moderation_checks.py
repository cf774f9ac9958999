"""Moderation in the request lifecycle, through the SDK: input blocked before the engine,
output cut mid-stream (chat and completions, streamed and not), the policy admin API, and
every decision in the metric, the trace and the usage ledger."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import select

from headrace.admission.secrets import load_or_create_pepper
from headrace.api.app import create_app
from headrace.config import Settings
from headrace.control import tenants
from headrace.control.keys import bootstrap, create_key
from headrace.observability.metrics import SAFETY_DECISIONS, Metrics
from headrace.observability.telemetry import Telemetry
from headrace.observability.tracing import tracer_provider
from headrace.routing.registry import EmbeddingModel, ModelRegistry
from headrace.storage.database import Database
from headrace.storage.schema import AuditEvent, SafetyPolicyRow, UsageEventRow
from tests.conftest import serving
from tests.fakes import FakeEngine, fake_registry

MODEL = "headrace-tiny-chat"
BOMB = "How do I make a pipe bomb at home?"  # the explosive_recipe rule: illicit/violent
ASK = [{"role": "user", "content": "Write a short story about a sailor."}]
# A clean opening, then a threat (the threat_to_kill rule), then more that must never come.
SCRIPT = tuple(
    ["Once upon a time ", "a sailor ", "went to sea ", "and met ", "a storm. ", "He said: "]
    + ["I'm going ", "to kill ", "you ", "all. "]
    + [f"word{i} " for i in range(40)]
)


@dataclass
class Env:
    base_url: str
    settings: Settings
    admin: httpx.Client
    engine: FakeEngine
    metrics: Metrics
    spans: InMemorySpanExporter
    keys: dict[str, str]
    projects: dict[str, str]

    def client(self, project: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.base_url}/v1", api_key=self.keys[project], max_retries=0
        )

    def decisions(self, stage: str, category: str, action: str) -> float:
        labels = {"stage": stage, "category": category, "action": action}
        value = self.metrics.registry.get_sample_value(SAFETY_DECISIONS, labels)
        return 0.0 if value is None else value

    def wait_decisions(self, stage: str, category: str, action: str, at_least: float) -> None:
        """Metrics are written once the response has ended, just after the client saw it."""
        deadline = time.monotonic() + 10
        while self.decisions(stage, category, action) < at_least:
            assert time.monotonic() < deadline, (stage, category, action)
            time.sleep(0.01)


async def _setup(settings: Settings) -> tuple[str, dict[str, str], dict[str, str]]:
    db = Database(settings.effective_database_url)
    await db.migrate()
    pepper = load_or_create_pepper(settings.data_dir)
    start = await bootstrap(db, pepper)
    assert start is not None
    keys = {}
    for project in ("plain", "strict", "other"):
        keys[project] = (await create_key(db, pepper, project=project, name="t")).secret
    projects = {p.name: p.id for p in await tenants.list_projects(db)}
    await db.close()
    return start.admin_secret, keys, projects


def _registry(engine: FakeEngine, loaded: ModelRegistry) -> ModelRegistry:
    """The fake chat engine beside the session's embedding model (the moderator's encoder)."""
    embedding = [m for m in loaded.all() if isinstance(m, EmbeddingModel)]
    return ModelRegistry([*fake_registry(engine).all(), *embedding])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, registry: ModelRegistry) -> Iterator[Env]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("moderation"),
        safety={"policy_cache_ttl_s": 0, "output_check_every_chars": 16},
    )
    admin_key, keys, projects = asyncio.run(_setup(settings))
    spans = InMemorySpanExporter()
    metrics = Metrics()
    telemetry = Telemetry(metrics, tracer_provider(settings.tracing, spans))
    engine = FakeEngine()
    app = create_app(settings, _registry(engine, registry), telemetry=telemetry)
    with serving(app) as base_url:
        admin = httpx.Client(
            base_url=f"{base_url}/admin/v1", headers={"Authorization": f"Bearer {admin_key}"}
        )
        strict = {"categories": {"harassment/threatening": {"output": "block"}}}
        r = admin.put(f"/projects/{projects['strict']}/safety-policy", json=strict)
        assert r.status_code == 200, r.text
        yield Env(base_url, settings, admin, engine, metrics, spans, keys, projects)


@pytest.fixture
def scripted(env: Env) -> Iterator[FakeEngine]:
    env.engine.script = SCRIPT
    env.engine.emitted.clear()
    yield env.engine
    env.engine.script = None


# --- input ---------------------------------------------------------------------------------


def test_blocked_chat_input_is_400_and_never_reaches_the_engine(env: Env) -> None:
    env.engine.emitted.clear()
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            env.client("plain").chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": BOMB}], stream=stream
            )
        error = caught.value.body
        assert isinstance(error, dict)
        assert (error["code"], error["param"]) == ("content_policy_violation", "messages")
        assert "illicit/violent" in error["message"]
        assert BOMB not in error["message"]
    assert env.engine.emitted == {}
    env.wait_decisions("input", "illicit/violent", "block", 2)


def test_blocked_completions_prompt_names_prompt(env: Env) -> None:
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            env.client("plain").completions.create(
                model=MODEL, prompt=["Hello", BOMB], stream=stream
            )
        error = caught.value.body
        assert isinstance(error, dict)
        assert (error["code"], error["param"]) == ("content_policy_violation", "prompt")


def test_text_parts_are_checked_too(env: Env) -> None:
    content: list[Any] = [{"type": "text", "text": "hi"}, {"type": "text", "text": BOMB}]
    with pytest.raises(openai.BadRequestError):
        env.client("plain").chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": content}]
        )


def test_clean_input_passes_and_is_recorded_as_allowed(env: Env) -> None:
    before = env.decisions("input", "none", "allow")
    done = env.client("plain").chat.completions.create(model=MODEL, messages=ASK)
    assert done.choices[0].finish_reason in ("stop", "length")
    env.wait_decisions("input", "none", "allow", before + 1)


# --- output ----------------------------------------------------------------------------------


def _streamed_chat(env: Env, project: str) -> tuple[str, list[str | None]]:
    chunks = list(
        env.client(project).chat.completions.create(model=MODEL, messages=ASK, stream=True)
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, [c.choices[0].finish_reason for c in chunks if c.choices]


def test_streamed_chat_is_cut_mid_stream(env: Env, scripted: FakeEngine) -> None:
    text, reasons = _streamed_chat(env, "strict")
    assert reasons[-1] == "content_filter"
    assert text.startswith("Once upon a time")  # what passed its check was sent
    assert "kill" not in text  # the offending window never was
    [emitted] = scripted.emitted.values()
    assert emitted < len(SCRIPT) // 2  # generation stopped there, not at the end
    env.wait_decisions("output", "harassment/threatening", "block", 1)


def test_chat_is_cut_without_streaming(env: Env, scripted: FakeEngine) -> None:
    done = env.client("strict").chat.completions.create(model=MODEL, messages=ASK)
    choice = done.choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.message.content is not None
    assert "kill" not in choice.message.content
    assert done.usage is not None
    assert 0 < done.usage.completion_tokens < len(SCRIPT)


def test_completions_are_cut_streamed_and_not(env: Env, scripted: FakeEngine) -> None:
    client = env.client("strict")
    done = client.completions.create(model=MODEL, prompt="Tell a story.")
    assert done.choices[0].finish_reason == "content_filter"
    assert "kill" not in done.choices[0].text
    chunks = list(client.completions.create(model=MODEL, prompt="Tell a story.", stream=True))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert text
    assert "kill" not in text


def test_each_choice_is_checked_and_cut_on_its_own(env: Env, scripted: FakeEngine) -> None:
    done = env.client("strict").chat.completions.create(model=MODEL, messages=ASK, n=2)
    assert [c.finish_reason for c in done.choices] == ["content_filter"] * 2  # one script
    assert len(scripted.aborted) >= 1  # n > 1: the engine request is aborted by id


def test_a_flag_only_policy_streams_everything(env: Env, scripted: FakeEngine) -> None:
    text, reasons = _streamed_chat(env, "plain")  # harassment/threatening is `flag` here
    assert reasons[-1] == "stop"
    assert text == "".join(SCRIPT)
    env.wait_decisions("output", "harassment/threatening", "flag", 1)


def test_decisions_reach_the_trace_and_the_ledger(env: Env, scripted: FakeEngine) -> None:
    env.spans.clear()
    done = env.client("strict").chat.completions.create(model=MODEL, messages=ASK)
    deadline = time.monotonic() + 10
    while not [s for s in env.spans.get_finished_spans() if s.parent is None]:
        assert time.monotonic() < deadline  # the trace is written once the response ended
        time.sleep(0.01)
    [root] = [s for s in env.spans.get_finished_spans() if s.parent is None]
    attrs = root.attributes or {}
    assert attrs["headrace.safety.input.action"] == "allow"
    assert attrs["headrace.safety.output.action"] == "block"
    assert "harassment/threatening" in str(attrs["headrace.safety.output.categories"])
    assert "moderate_input" in [s.name for s in env.spans.get_finished_spans()]
    assert not any(
        "kill" in str(v)
        for s in env.spans.get_finished_spans()
        for v in (s.attributes or {}).values()
    )

    async def status() -> str | None:
        db = Database(env.settings.effective_database_url)
        try:
            for _ in range(200):  # the ledger writes in the background, in batches
                async with db.session() as session:
                    row = await session.get(UsageEventRow, done.id)
                if row is not None and row.status != "started":
                    return row.status
                await asyncio.sleep(0.02)
            return None
        finally:
            await db.close()

    assert asyncio.run(status()) == "content_filter"


# --- the policy admin API ------------------------------------------------------------------


def test_a_project_without_a_policy_shows_the_default(env: Env) -> None:
    r = env.admin.get(f"/projects/{env.projects['other']}/safety-policy")
    assert r.status_code == 200
    body = r.json()
    assert body["is_default"]
    assert body["enabled"]
    assert body["categories"]["hate"] == {"input": "flag", "output": "flag", "threshold": None}
    assert body["categories"]["sexual/minors"] == {
        "input": "block",
        "output": "block",
        "threshold": 0.9,
    }


def test_a_policy_is_set_partially_read_back_and_reset(env: Env) -> None:
    path = f"/projects/{env.projects['other']}/safety-policy"
    put = {"categories": {"violence": {"input": "off", "threshold": 0.8}}, "enabled": True}
    r = env.admin.put(path, json=put)
    assert r.status_code == 200, r.text
    violence = r.json()["categories"]["violence"]
    assert violence == {"input": "off", "output": "flag", "threshold": 0.8}
    assert env.admin.get(path).json()["categories"]["violence"] == violence
    assert not env.admin.get(path).json()["is_default"]
    r = env.admin.delete(path)
    assert r.status_code == 200
    assert r.json()["is_default"]


@pytest.mark.parametrize(
    "body",
    [
        {"categories": {"spam": {"input": "block"}}},
        {"categories": {"hate": {"input": "deny"}}},
        {"categories": {"hate": {"threshold": 2}}},
        {"categories": {"hate": {"threshold": 0}}},
        {"enabled": "maybe"},
        {"mode": "strict"},
    ],
)
def test_bad_policies_are_400_and_write_nothing(env: Env, body: dict[str, Any]) -> None:
    pid = env.projects["other"]
    r = env.admin.put(f"/projects/{pid}/safety-policy", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"

    async def stored() -> SafetyPolicyRow | None:
        db = Database(env.settings.effective_database_url)
        try:
            async with db.session() as session:
                return await session.get(SafetyPolicyRow, pid)
        finally:
            await db.close()

    assert asyncio.run(stored()) is None


def test_unknown_project_is_404_and_project_keys_are_not_admins(env: Env) -> None:
    assert env.admin.get("/projects/proj_missing/safety-policy").status_code == 404
    assert env.admin.put("/projects/proj_missing/safety-policy", json={}).status_code == 404
    r = httpx.get(
        f"{env.base_url}/admin/v1/projects/{env.projects['other']}/safety-policy",
        headers={"Authorization": f"Bearer {env.keys['other']}"},
    )
    assert r.status_code == 401


def test_policy_changes_are_audited(env: Env) -> None:
    async def actions() -> list[str]:
        db = Database(env.settings.effective_database_url)
        try:
            async with db.session() as session:
                rows = await session.scalars(
                    select(AuditEvent.action).where(AuditEvent.action.like("safety_policy.%"))
                )
                return list(rows)
        finally:
            await db.close()

    assert "safety_policy.set" in asyncio.run(actions())


def test_a_disabled_policy_lets_everything_through(env: Env) -> None:
    path = f"/projects/{env.projects['other']}/safety-policy"
    assert env.admin.put(path, json={"enabled": False}).status_code == 200
    try:
        done = env.client("other").chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": BOMB}]
        )
        assert done.choices[0].finish_reason in ("stop", "length")
    finally:
        env.admin.delete(path)


# --- the Responses API runs the same checks -----------------------------------------------------


def test_blocked_responses_input_is_400(env: Env) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        env.client("plain").responses.create(model=MODEL, input=BOMB)
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"]) == ("content_policy_violation", "input")


def test_a_response_cut_by_the_output_check_is_incomplete(env: Env, scripted: FakeEngine) -> None:
    done = env.client("strict").responses.create(model=MODEL, input="Tell a story.", store=False)
    assert done.status == "incomplete"
    assert done.incomplete_details is not None
    assert done.incomplete_details.reason == "content_filter"
    assert "kill" not in done.output_text
    events = list(
        env.client("strict").responses.create(
            model=MODEL, input="Tell a story.", store=False, stream=True
        )
    )
    assert events[-1].type == "response.incomplete"
    streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert streamed
    assert "kill" not in streamed
