"""The check-input stage for personal data and prompt injection, at the HTTP edge.

    guarded = await check_input(state, caller, record, messages)  # may 400
    prompt = build_chat_prompt(..., guarded.messages, ...)          # masked in mode `mask`
    headers |= injection_headers(guarded)

The policy comes from the project's cached privacy policy (`safety/privacy.py`); the
verdict goes on the request's record, so the metric and the trace carry it.
"""

from __future__ import annotations

from typing import Any

from headrace.admission.auth import Principal
from headrace.api.state import AppState
from headrace.errors import InvalidRequestError
from headrace.observability.request import RequestRecord
from headrace.safety.placeholders import Masker
from headrace.safety.privacy import GuardedInput, guard_input, tool_results

INJECTION_SCORE_HEADER = "x-headrace-injection-score"
INJECTION_RULES_HEADER = "x-headrace-injection-rules"


async def check_input(
    state: AppState, caller: Principal, record: RequestRecord, messages: list[dict[str, Any]]
) -> GuardedInput:
    """Score the tool results, mask personal data (mode `mask`); 400
    `content_policy_violation` when the project blocks what scored over its threshold."""
    policy = await state.privacy.for_project(caller.project_id)
    learned = await state.safety.injection_probabilities(tool_results(messages))
    guarded = guard_input(messages, policy, learned)
    if guarded.injection is not None:
        record.injection_score = guarded.injection.score
    record.injection = guarded.verdict
    if guarded.verdict == "blocked" and guarded.injection is not None:
        raise InvalidRequestError(
            "A tool result in this request looks like a prompt injection "
            f"({', '.join(guarded.injection.rules)}); this project blocks such requests.",
            param=f"messages[{guarded.suspect}].content",
            code="content_policy_violation",
        )
    return guarded


async def pii_masker(state: AppState, caller: Principal) -> Masker | None:
    """The request's masker when the caller's project is in PII mode `mask`: for prompts
    that are not messages (the legacy completions), which `check_input` does not see."""
    return (await state.privacy.for_project(caller.project_id)).masker()


def injection_headers(guarded: GuardedInput) -> dict[str, str]:
    """The score of a request that had tool results, and the rules that raised it."""
    report = guarded.injection
    if report is None:
        return {}
    headers = {INJECTION_SCORE_HEADER: f"{report.score:.4g}"}
    if report.rules:
        headers[INJECTION_RULES_HEADER] = ",".join(report.rules)
    return headers
