"""Moderation as the data plane runs it: each project's cached policy, and checks that
score text off the event loop and decide by that policy.

    policy = await checks.policy(project_id)          # cached for `policy_cache_ttl_s`
    decision = await checks.check(policy, "input", texts)
    output = checks.output_check(policy, on_decision)  # None when output is not checked

Never logs or stores the text it reads; decisions carry category names and rule names only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from headrace.config import SafetySettings
from headrace.safety.injection_model import InjectionClassifier
from headrace.safety.moderation import CATEGORIES, Moderator, Scores
from headrace.safety.output_guard import OutputCheck
from headrace.safety.policy import Decision, SafetyPolicy, Stage, policy_from_dict
from headrace.storage import safety as policy_rows
from headrace.storage.database import Database
from headrace.ttl_cache import TtlCache


class SafetyPolicies:
    """Each project's policy, cached for `ttl_s`; the default for a project without one."""

    def __init__(
        self,
        db: Database,
        ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._cache: TtlCache[SafetyPolicy] = TtlCache(ttl_s, clock)

    async def for_project(self, project_id: str) -> SafetyPolicy:
        return await self._cache.get(project_id, lambda: self._load(project_id))

    async def _load(self, project_id: str) -> SafetyPolicy:
        async with self._db.session() as session:
            row = await policy_rows.get_policy(session, project_id)
        if row is None:
            return SafetyPolicy.default()
        return policy_from_dict({"enabled": row.enabled, "categories": row.categories})


class SafetyChecks:
    """The moderator and the policies, for the input and output checks."""

    def __init__(
        self,
        moderator: Moderator,
        policies: SafetyPolicies,
        settings: SafetySettings,
        injection: InjectionClassifier | None = None,
    ) -> None:
        self.moderator = moderator
        self.policies = policies
        self.settings = settings
        self.injection = injection  # the learned half of the injection score

    async def injection_probabilities(self, texts: dict[int, str]) -> dict[int, float]:
        """The classifier's P(injection) per tool result (off the event loop); none when
        there are no tool results or no classifier."""
        if not texts or self.injection is None:
            return {}
        probs = await asyncio.to_thread(self.injection.probabilities, list(texts.values()))
        return dict(zip(texts, probs, strict=True))

    async def policy(self, project_id: str) -> SafetyPolicy:
        """The project's policy; a disabled one when moderation is off server-wide."""
        if not self.settings.enabled:
            return _DISABLED
        return await self.policies.for_project(project_id)

    async def check(self, policy: SafetyPolicy, stage: Stage, texts: Sequence[str]) -> Decision:
        """Score `texts` as one (each category's worst text) and decide by `policy`."""
        scored = await self.moderator.ascore([t for t in texts if t.strip()])
        return policy.decide(stage, worst(scored), self.moderator.thresholds)

    def output_check(
        self,
        policy: SafetyPolicy,
        on_decision: Callable[[Decision, str, float], Awaitable[None]],
    ) -> OutputCheck | None:
        """How to check a request's output under `policy`, or None when nothing is;
        `on_decision` sees every check's decision, window and duration (to record it)."""
        if not policy.checks("output"):
            return None

        async def check(window: str) -> Decision:
            started = time.perf_counter()
            decision = await self.check(policy, "output", [window])
            await on_decision(decision, window, time.perf_counter() - started)
            return decision

        return OutputCheck(
            check,
            hold=policy.blocks("output"),
            every_chars=self.settings.output_check_every_chars,
            window_chars=self.settings.output_window_chars,
            max_hold_s=self.settings.output_max_hold_s,
        )


def worst(scored: Sequence[Scores]) -> Scores:
    """Per category the highest score of any text; every rule that matched any."""
    values = {c: max((s.values[c] for s in scored), default=0.0) for c in CATEGORIES}
    rules = tuple(dict.fromkeys(r for s in scored for r in s.rules))
    return Scores(values, rules)


_DISABLED = SafetyPolicy(SafetyPolicy.default().categories, enabled=False)  # safety off
