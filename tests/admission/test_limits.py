"""Plans, headers, 429s and durations: the limit values, without a store."""

from __future__ import annotations

import math

import pytest

from headrace.admission.bucket import Rate
from headrace.admission.limits import (
    Decision,
    Limits,
    Reading,
    ScopedLimits,
    duration,
    headers,
    plan,
    refunds,
    refusal,
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0172, "18ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.9991, "1m0s"),
        (360, "6m0s"),
        (61.25, "1m1.25s"),
        (3723, "1h2m3s"),
    ],
)
def test_duration_is_openai_style(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def _scoped() -> list[ScopedLimits]:
    return [
        ScopedLimits("key", "key_1", Limits(requests_per_minute=2, tokens_per_minute=1000)),
        ScopedLimits("project", "proj_1", Limits(max_concurrent_requests=3)),
        ScopedLimits("org", "org_1", Limits(tokens_per_day=10_000, requests_per_minute=100)),
    ]


def test_plan_has_one_charge_per_limit_and_a_seat_per_concurrency_limit() -> None:
    p = plan(_scoped(), tokens=120, lease_id="l1")
    assert [(c.key, c.cost) for c in p.charges] == [
        ("key:key_1:rpm", 1.0),
        ("key:key_1:tpm", 120.0),
        ("org:org_1:rpm", 1.0),
        ("org:org_1:tpd", 120.0),
    ]
    assert [(s.key, s.limit) for s in p.seats] == [("project:proj_1:seats", 3)]
    assert plan([ScopedLimits("key", "k", Limits())], tokens=5, lease_id="x").is_empty()


def test_refunds_give_back_unused_tokens_never_requests() -> None:
    p = plan(_scoped(), tokens=120, lease_id="l1")
    assert [(c.key, a) for c, a in refunds(p, used_tokens=20)] == [
        ("key:key_1:tpm", 100.0),
        ("org:org_1:tpd", 100.0),
    ]
    assert refunds(p, used_tokens=500) == ()


def test_headers_report_the_tightest_bucket() -> None:
    p = plan(_scoped(), tokens=120, lease_id="l1")
    readings = [
        Reading(p.charges[0], 1.0, 30.0),  # key rpm: 1 of 2 left
        Reading(p.charges[1], 880.0, 7.2),
        Reading(p.charges[2], 99.0, 0.6),
        Reading(p.charges[3], 9880.0, 1036.8),  # daily: not in the per-minute headers
    ]
    assert headers(readings) == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "30s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "880",
        "x-ratelimit-reset-tokens": "7.2s",
    }


def test_refusal_is_a_429_with_retry_after() -> None:
    p = plan(_scoped(), tokens=120, lease_id="l1")
    err = refusal(p, Decision(False, (), 29.2, refused_charge=0))
    assert err.status_code == 429
    assert err.code == "rate_limit_exceeded"
    assert err.headers["retry-after"] == "30"
    assert "requests per min (RPM): Limit 2" in err.message
    assert "29.2s" in err.message


def test_a_request_bigger_than_the_bucket_says_so_without_retry_after() -> None:
    p = plan(_scoped(), tokens=5000, lease_id="l1")
    err = refusal(p, Decision(False, (), math.inf, refused_charge=1))
    assert "Request too large" in err.message
    assert "retry-after" not in err.headers


def test_concurrency_refusal() -> None:
    p = plan(_scoped(), tokens=1, lease_id="l1")
    err = refusal(p, Decision(False, (), 1.0, refused_seat=0))
    assert "concurrent requests" in err.message
    assert err.headers["retry-after"] == "1"


def test_rate_shapes() -> None:
    assert Rate.per_minute(120) == Rate(120.0, 2.0)


def test_per_model_limits_have_buckets_of_their_own() -> None:
    p = plan(
        [
            ScopedLimits("org", "o", Limits(requests_per_minute=5)),
            ScopedLimits("org", "o", Limits(requests_per_minute=1), model="big"),
        ],
        tokens=1,
        lease_id="l",
    )
    assert [c.key for c in p.charges] == ["org:o:rpm", "org:o:model=big:rpm"]
