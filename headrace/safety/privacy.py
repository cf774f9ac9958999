"""A project's privacy policy: what its PII mode is and what an injection flag does.

    policies = PrivacyPolicies(db, PrivacyPolicy.from_settings(settings.privacy), ttl_s=1.0)
    policy = await policies.for_project(project_id)   # cached; the defaults without a row
    guarded = guard_input(messages, policy)          # injection verdict, masked messages

Read by the data plane through this cache, never per request from the database; a change
(admin API, CLI) takes effect on every replica within `privacy.policy_cache_ttl_s`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from headrace.config import PrivacySettings
from headrace.errors import InvalidRequestError
from headrace.safety.injection import InjectionReport, score_text, with_classifier
from headrace.safety.pii import PII_KINDS, PiiKind
from headrace.safety.placeholders import Masker, mask_messages
from headrace.storage import privacy as policy_rows
from headrace.storage.database import Database
from headrace.storage.schema import PrivacyPolicyRow
from headrace.ttl_cache import TtlCache

PiiMode = Literal["log", "store", "mask"]
InjectionAction = Literal["flag", "block"]
PII_MODES: tuple[PiiMode, ...] = get_args(PiiMode)
INJECTION_ACTIONS: tuple[InjectionAction, ...] = get_args(InjectionAction)


@dataclass(frozen=True, slots=True)
class PrivacyPolicy:
    # log: logs and traces redacted (always); store: stored conversations too; mask: the
    # model sees placeholders, restored in its output.
    pii_mode: PiiMode = "log"
    pii_kinds: tuple[PiiKind, ...] | None = None  # None: every kind
    injection_threshold: float = 0.5
    injection_action: InjectionAction = "flag"

    @classmethod
    def from_settings(cls, settings: PrivacySettings) -> PrivacyPolicy:
        return cls(
            pii_mode=settings.pii_mode,
            injection_threshold=settings.injection_threshold,
            injection_action=settings.injection_action,
        )

    @classmethod
    def from_row(cls, row: PrivacyPolicyRow) -> PrivacyPolicy:
        return cls(
            pii_mode=cast(PiiMode, row.pii_mode),
            pii_kinds=None if row.pii_kinds is None else tuple(cast(list[PiiKind], row.pii_kinds)),
            injection_threshold=row.injection_threshold,
            injection_action=cast(InjectionAction, row.injection_action),
        )

    @property
    def kinds(self) -> frozenset[PiiKind] | None:
        return None if self.pii_kinds is None else frozenset(self.pii_kinds)

    def masker(self) -> Masker | None:
        """A request's masker in PII mode `mask` (its kinds), else None."""
        return Masker(self.kinds) if self.pii_mode == "mask" else None


def checked_policy(
    *,
    pii_mode: str,
    pii_kinds: Sequence[str] | None,
    injection_threshold: float,
    injection_action: str,
) -> PrivacyPolicy:
    """A policy from untrusted values, or 400 naming the first bad one."""
    if pii_mode not in PII_MODES:
        raise InvalidRequestError(
            f"'pii_mode' must be one of {', '.join(PII_MODES)}; got {pii_mode!r}.",
            param="pii_mode",
            code="invalid_value",
        )
    unknown = [k for k in pii_kinds or () if k not in PII_KINDS]
    if unknown:
        raise InvalidRequestError(
            f"Unknown PII kind(s): {', '.join(map(repr, unknown))}; known: {', '.join(PII_KINDS)}.",
            param="pii_kinds",
            code="invalid_value",
        )
    if (
        isinstance(injection_threshold, bool)
        or not math.isfinite(injection_threshold)
        or not 0 <= injection_threshold <= 1
    ):
        raise InvalidRequestError(
            f"'injection_threshold' must be between 0 and 1; got {injection_threshold!r}.",
            param="injection_threshold",
            code="invalid_value",
        )
    if injection_action not in INJECTION_ACTIONS:
        raise InvalidRequestError(
            f"'injection_action' must be one of {', '.join(INJECTION_ACTIONS)}; "
            f"got {injection_action!r}.",
            param="injection_action",
            code="invalid_value",
        )
    return PrivacyPolicy(
        pii_mode=pii_mode,
        pii_kinds=None if pii_kinds is None else tuple(cast(Sequence[PiiKind], pii_kinds)),
        injection_threshold=float(injection_threshold),
        injection_action=injection_action,
    )


class PrivacyPolicies:
    """Each project's policy, cached for `ttl_s`; the defaults for a project without one."""

    def __init__(
        self,
        db: Database,
        defaults: PrivacyPolicy,
        ttl_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.defaults = defaults
        self._db = db
        self._cache: TtlCache[PrivacyPolicy] = TtlCache(ttl_s, clock)

    async def for_project(self, project_id: str) -> PrivacyPolicy:
        return await self._cache.get(project_id, lambda: self._load(project_id))

    async def _load(self, project_id: str) -> PrivacyPolicy:
        async with self._db.session() as session:
            row = await policy_rows.get_policy(session, project_id)
        return self.defaults if row is None else PrivacyPolicy.from_row(row)


@dataclass(frozen=True, slots=True)
class GuardedInput:
    """What a project's policy made of a chat request's messages."""

    messages: list[dict[str, Any]]  # masked in PII mode `mask`, else as they came
    masker: Masker | None  # set in mode `mask`: it restores the output
    injection: InjectionReport | None  # the worst tool result's; None: no tool results
    verdict: Literal["", "flagged", "blocked"]
    suspect: int | None = None  # index of the message that scored highest


def tool_results(messages: list[dict[str, Any]]) -> dict[int, str]:
    """The texts that came from tools, by message index: what injection scoring reads (a
    content given as parts: its text parts, joined)."""
    return {i: _text(m.get("content")) for i, m in enumerate(messages) if m.get("role") == "tool"}


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return str(content or "")


def guard_input(
    messages: list[dict[str, Any]],
    policy: PrivacyPolicy,
    learned: Mapping[int, float] | None = None,
) -> GuardedInput:
    """The check-input stage for personal data and prompt injection, as a pure step: scores
    the tool results (never the user's own words; `learned` holds the classifier's
    probability per tool message, when it ran), then masks what mode `mask` hides."""
    report: InjectionReport | None = None
    suspect: int | None = None
    for i, text in tool_results(messages).items():
        scored = score_text(text)
        if learned is not None and i in learned:
            scored = with_classifier(scored, learned[i])
        if report is None or scored.score > report.score:
            report, suspect = scored, i
    verdict: Literal["", "flagged", "blocked"] = ""
    if report is not None and report.flagged(policy.injection_threshold):
        verdict = "blocked" if policy.injection_action == "block" else "flagged"
    masker = policy.masker()
    if masker is not None:
        messages = mask_messages(masker, messages)
    return GuardedInput(messages, masker, report, verdict, suspect)
