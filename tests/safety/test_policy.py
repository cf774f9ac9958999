"""The policy's decisions and its validation."""

from __future__ import annotations

import pytest

from headrace.safety.moderation import CATEGORIES, Scores
from headrace.safety.policy import (
    BLOCKED_BY_DEFAULT,
    DEFAULT_BLOCK_THRESHOLD,
    CategoryPolicy,
    SafetyPolicy,
    policy_from_dict,
    policy_to_dict,
)

THRESHOLDS = dict.fromkeys(CATEGORIES, 0.5)


def scores(values: dict[str, float]) -> Scores:
    return Scores({c: values.get(c, 0.0) for c in CATEGORIES}, ("a_rule",))


def test_default_flags_everything_and_blocks_the_three() -> None:
    policy = SafetyPolicy.default()
    assert {c for c, p in policy.categories.items() if p.input == "block"} == BLOCKED_BY_DEFAULT
    assert {"sexual/minors", "self-harm/instructions", "illicit/violent"} == BLOCKED_BY_DEFAULT
    assert all(
        p.input == p.output == "flag"
        for c, p in policy.categories.items()
        if c not in BLOCKED_BY_DEFAULT
    )
    assert policy.checks("input")
    assert policy.blocks("output")


def test_nothing_over_threshold_is_allowed() -> None:
    decision = SafetyPolicy.default().decide("input", scores({"harassment": 0.49}), THRESHOLDS)
    assert (decision.action, decision.categories, decision.blocked) == ("allow", (), ())


def test_flag_category_over_threshold_flags() -> None:
    decision = SafetyPolicy.default().decide("output", scores({"harassment": 0.7}), THRESHOLDS)
    assert (decision.action, decision.categories) == ("flag", ("harassment",))
    assert decision.scores == {"harassment": 0.7}
    assert decision.rules == ("a_rule",)


def test_a_blocked_category_needs_its_own_threshold() -> None:
    policy = SafetyPolicy.default()
    weak = scores({"illicit": 0.8, "illicit/violent": 0.8})
    decision = policy.decide("input", weak, THRESHOLDS)
    assert decision.action == "flag"  # over the model's 0.5, under the block's 0.9
    assert decision.categories == ("illicit",)
    strong = scores({"illicit": 0.99, "illicit/violent": 0.99})
    decision = policy.decide("input", strong, THRESHOLDS)
    assert (decision.action, decision.blocked) == ("block", ("illicit/violent",))
    assert decision.categories == ("illicit", "illicit/violent")
    assert DEFAULT_BLOCK_THRESHOLD == 0.9


def test_off_is_not_checked_and_stages_are_separate() -> None:
    categories = dict(SafetyPolicy.default().categories)
    categories["violence"] = CategoryPolicy(input="off", output="block", threshold=0.3)
    policy = SafetyPolicy(categories)
    assert policy.decide("input", scores({"violence": 0.9}), THRESHOLDS).action == "allow"
    assert policy.decide("output", scores({"violence": 0.35}), THRESHOLDS).action == "block"


def test_disabled_policy_checks_nothing() -> None:
    policy = SafetyPolicy(SafetyPolicy.default().categories, enabled=False)
    assert not policy.checks("input")
    assert not policy.blocks("output")


def test_all_off_checks_nothing() -> None:
    policy = SafetyPolicy(dict.fromkeys(CATEGORIES, CategoryPolicy("off", "off")))
    assert not policy.checks("input")
    assert not policy.checks("output")


def test_round_trip_and_partial_updates_keep_defaults() -> None:
    policy = policy_from_dict({"categories": {"hate": {"input": "block"}}})
    assert policy.categories["hate"] == CategoryPolicy("block", "flag", None)
    assert policy.categories["sexual/minors"] == SafetyPolicy.default().categories["sexual/minors"]
    assert policy_from_dict(policy_to_dict(policy)) == policy


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"enabled": "yes"}, "enabled"),
        ({"categories": []}, "categories"),
        ({"categories": {"spam": {}}}, "unknown category 'spam'"),
        ({"categories": {"hate": "block"}}, "categories.hate"),
        ({"categories": {"hate": {"inputs": "block"}}}, "categories.hate.inputs"),
        ({"categories": {"hate": {"input": "deny"}}}, "categories.hate.input"),
        ({"categories": {"hate": {"threshold": 0}}}, "categories.hate.threshold"),
        ({"categories": {"hate": {"threshold": 1.5}}}, "categories.hate.threshold"),
        ({"categories": {"hate": {"threshold": True}}}, "categories.hate.threshold"),
    ],
)
def test_bad_policies_name_the_field(data: dict[str, object], where: str) -> None:
    with pytest.raises(ValueError, match=where.replace(".", r"\.")):
        policy_from_dict(data)
