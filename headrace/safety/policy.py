"""A project's moderation policy and the decisions it makes: pure values, no I/O.

    policy = SafetyPolicy.default()
    decision = policy.decide("input", scores, model_thresholds)
    decision.action        # "allow" | "flag" | "block"
    decision.categories    # what was over its threshold and not `off`

Per category and per stage (`input`: the prompt, `output`: the generated text), an action:
`off` (not checked), `flag` (recorded, the request goes on) or `block` (input: 400
`content_policy_violation`; output: the choice ends with `finish_reason: content_filter`).
A category's threshold, when set, replaces the model's own for that project.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from headrace.safety.moderation import CATEGORIES, Scores

Action = Literal["off", "flag", "block"]
Stage = Literal["input", "output"]
Verdict = Literal["allow", "flag", "block"]
ACTIONS: tuple[Action, ...] = ("off", "flag", "block")
STAGES: tuple[Stage, ...] = ("input", "output")
# Blocked by default: content no deployment should pass through, where a false alarm
# (a refused request) costs less than a miss.
BLOCKED_BY_DEFAULT = frozenset({"sexual/minors", "self-harm/instructions", "illicit/violent"})
# Those blocks need this much confidence unless a project sets its own threshold: the
# classifier's own thresholds are tuned for flagging (docs/safety.md, "Policy").
DEFAULT_BLOCK_THRESHOLD = 0.9


@dataclass(frozen=True, slots=True)
class CategoryPolicy:
    input: Action = "flag"
    output: Action = "flag"
    threshold: float | None = None  # None: the model's threshold for the category

    def action(self, stage: Stage) -> Action:
        return self.input if stage == "input" else self.output


@dataclass(frozen=True, slots=True)
class SafetyPolicy:
    """Every category's policy; `enabled` False skips moderation altogether."""

    categories: Mapping[str, CategoryPolicy]
    enabled: bool = True

    @classmethod
    def default(cls) -> SafetyPolicy:
        return cls(
            {
                c: CategoryPolicy("block", "block", DEFAULT_BLOCK_THRESHOLD)
                if c in BLOCKED_BY_DEFAULT
                else CategoryPolicy()
                for c in CATEGORIES
            }
        )

    def checks(self, stage: Stage) -> bool:
        """Whether anything is moderated at `stage`."""
        return self.enabled and any(p.action(stage) != "off" for p in self.categories.values())

    def blocks(self, stage: Stage) -> bool:
        """Whether anything can be blocked at `stage` (output text is then held back
        until checked)."""
        return self.enabled and any(p.action(stage) == "block" for p in self.categories.values())

    def decide(self, stage: Stage, scores: Scores, thresholds: Mapping[str, float]) -> Decision:
        """What this policy does with `scores` at `stage`."""
        flagged: list[str] = []
        blocked: list[str] = []
        for category in CATEGORIES:
            policy = self.categories[category]
            action = policy.action(stage)
            if action == "off":
                continue
            threshold = thresholds[category] if policy.threshold is None else policy.threshold
            if scores.values[category] >= threshold:
                flagged.append(category)
                if action == "block":
                    blocked.append(category)
        verdict: Verdict = "block" if blocked else "flag" if flagged else "allow"
        named = {c: scores.values[c] for c in flagged}
        return Decision(stage, verdict, tuple(flagged), tuple(blocked), scores.rules, named)


@dataclass(frozen=True, slots=True)
class Decision:
    """One check's outcome: recorded (metric, usage status, trace), never its content."""

    stage: Stage
    action: Verdict
    categories: tuple[str, ...] = ()  # over threshold (flagged or blocked)
    blocked: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()  # the rules that matched, by name
    scores: Mapping[str, float] = field(default_factory=dict)  # of `categories` only


def policy_from_dict(data: Mapping[str, object]) -> SafetyPolicy:
    """A policy from its stored or wire form: `{"enabled": bool, "categories": {name:
    {"input", "output", "threshold"}}}`; categories left out keep their default. Raises
    ValueError naming the first bad field."""
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValueError("enabled: must be true or false")
    given = data.get("categories", {})
    if not isinstance(given, Mapping):
        raise ValueError("categories: must be an object")
    defaults = SafetyPolicy.default().categories
    unknown = sorted(set(given) - set(CATEGORIES))
    if unknown:
        raise ValueError(f"categories: unknown category {unknown[0]!r}")
    out = dict(defaults)
    for name, value in given.items():
        if not isinstance(value, Mapping):
            raise ValueError(f"categories.{name}: must be an object")
        extra = sorted(set(value) - {"input", "output", "threshold"})
        if extra:
            raise ValueError(f"categories.{name}.{extra[0]}: unknown field")
        base = defaults[name]
        out[name] = CategoryPolicy(
            _action(value.get("input", base.input), f"categories.{name}.input"),
            _action(value.get("output", base.output), f"categories.{name}.output"),
            _threshold(value.get("threshold", base.threshold), f"categories.{name}.threshold"),
        )
    return SafetyPolicy(out, enabled)


def policy_to_dict(policy: SafetyPolicy) -> dict[str, object]:
    return {"enabled": policy.enabled, "categories": categories_to_dict(policy)}


def categories_to_dict(policy: SafetyPolicy) -> dict[str, dict[str, object]]:
    return {
        c: {"input": p.input, "output": p.output, "threshold": p.threshold}
        for c, p in policy.categories.items()
    }


def _action(value: object, where: str) -> Action:
    for action in ACTIONS:
        if value == action:
            return action
    raise ValueError(f"{where}: must be one of off, flag, block")


def _threshold(value: object, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"{where}: must be a number above 0 and at most 1, or null")
    return float(value)
