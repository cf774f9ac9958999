"""The moderation side of the check-input and check-output stages, at the HTTP edge.

    await moderate_input(state, caller, model, admission, run, texts, param="messages")
    # may 400 content_policy_violation; sets `run.output_check` for the output stage
    async for index, ev in run.checked(merged_events(engine, requests), engine, requests):
        ...

Every decision is recorded on the request's record (the `safety_decisions_total` metric and
the trace's `headrace.safety.*` attributes), fed to the abuse monitor, and a flag (not a
block) queues the flagged text for human review when `safety.review_flagged` is on. The
text itself is never logged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from headrace.admission.auth import Principal
from headrace.admission.limiter import Admission
from headrace.api.generation_response import Meter
from headrace.api.state import AppState
from headrace.config import ModelSettings, Settings
from headrace.control import review
from headrace.engine.embedder import Embedder
from headrace.errors import ContentPolicyError
from headrace.observability.logging import get_logger
from headrace.observability.request import SafetyVerdict
from headrace.routing.registry import ChatModel, EmbeddingModel, ModelRegistry, RemoteModel
from headrace.safety.checks import SafetyChecks, SafetyPolicies
from headrace.safety.injection_model import InjectionClassifier
from headrace.safety.moderation import ENCODER_PATH, MODEL_NAME, Embed, LazyEncoder, Moderator
from headrace.safety.policy import Decision
from headrace.storage.database import Database
from headrace.storage.review import Flagged

log = get_logger("headrace.safety")


async def moderate_input(
    state: AppState,
    caller: Principal,
    model: ChatModel | RemoteModel,
    admission: Admission,
    meter: Meter,
    texts: Sequence[str],
    *,
    param: str,
) -> None:
    """Check `texts` (the request's input) by the project's policy: a block releases the
    admission, records a `content_filter` usage event (no tokens generated, nothing billed)
    and raises 400; otherwise arms `meter` with the output check."""
    try:
        policy = await state.safety.policy(caller.project_id)
        decision = None
        if policy.checks("input"):
            decision = await state.safety.check(policy, "input", texts)
            await _note(state, caller, meter, decision, "\n\n".join(texts))
    except BaseException:
        admission.release(0)  # nothing ran: the whole reservation goes back
        raise
    if decision is not None and decision.action == "block":
        admission.release(0)
        usage = meter.usage(caller, model, "content_filter")
        state.ledger.record(dataclasses.replace(usage, input_cost_nanousd=0, output_cost_nanousd=0))
        raise ContentPolicyError(
            "Your request was rejected by this project's safety policy "
            f"({', '.join(decision.blocked)}).",
            param=param,
        )
    flagged_once = False

    async def on_output(decision: Decision, window: str, took_s: float) -> None:
        nonlocal flagged_once
        now = meter.record.now_s()  # the check-output stage: a span per check, beside decode
        meter.record.add_stage("check_output", now - took_s, now)
        if decision.action == "block":
            meter.filtered = True
        # One review item per request's output: a long flagged answer is checked many times.
        review_it = decision.action == "flag" and not flagged_once
        flagged_once = flagged_once or review_it
        await _note(state, caller, meter, decision, window if review_it else None)

    meter.output_check = state.safety.output_check(policy, on_output)
    meter.record.mark("moderate_input")


async def _note(
    state: AppState, caller: Principal, meter: Meter, decision: Decision, content: str | None
) -> None:
    meter.record.safety.append(
        SafetyVerdict(decision.stage, decision.action, decision.categories, decision.blocked)
    )
    if decision.stage == "input" or decision.action == "block":
        state.abuse.observe_moderation(caller.key_id, decision.action == "block")
    if decision.action != "flag" or content is None or not state.settings.safety.review_flagged:
        return
    flagged = Flagged(
        request_id=meter.id,
        org_id=caller.org_id,
        project_id=caller.project_id,
        stage=decision.stage,
        categories=list(decision.categories),
        scores=dict(decision.scores),
        content=content,
        api_key_id=caller.key_id,
        model=meter.model,
    )
    try:
        await review.enqueue(state.db, state.cipher, flagged)
    except Exception as exc:  # a review queue down must not fail the request
        log.warning("review_enqueue_failed", error=type(exc).__name__)


def build_safety(settings: Settings, db: Database, registry: ModelRegistry) -> SafetyChecks:
    """The moderator (its encoder shared with a served embedding model of the same
    checkpoint, else loaded on first use) and the policy cache. A worker never moderates:
    the gateway in front of it does."""
    shared = next(
        (
            m.embedder
            for m in registry.all()
            if isinstance(m, EmbeddingModel) and m.settings.path == ENCODER_PATH
        ),
        None,
    )

    def load() -> Embed:
        if shared is not None:
            return shared.embed
        path = ModelSettings(name=MODEL_NAME, kind="embedding", path=ENCODER_PATH)
        return Embedder(path.resolved_path()).embed

    options = settings.safety
    if settings.worker.enabled:
        options = options.model_copy(update={"enabled": False})
    encoder = LazyEncoder(load)
    return SafetyChecks(
        Moderator.load(encoder),
        SafetyPolicies(db, ttl_s=options.policy_cache_ttl_s),
        options,
        InjectionClassifier.load(encoder),
    )


def message_texts(messages: Iterable[Mapping[str, Any]]) -> list[str]:
    """The text of every message (string content, or the text parts of a content array)."""
    out: list[str] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out.extend(
                part["text"]
                for part in content
                if isinstance(part, Mapping) and isinstance(part.get("text"), str)
            )
    return out
