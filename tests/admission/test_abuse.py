"""Abuse signals against each key's own history, on a clock the tests drive, and the guard
that turns them into metrics and suspensions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headrace.admission.abuse import AbuseGuard, AbuseMonitor
from headrace.config import AbuseSettings
from headrace.storage import audit, suspensions
from headrace.storage.database import Database


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _settings(**overrides: object) -> AbuseSettings:
    base: dict[str, object] = {
        "spike_ratio": 5.0,
        "baseline_minutes": 10,
        "min_baseline_tokens_per_minute": 100,
        "block_rate": 0.5,
        "block_window": 10,
        "min_requests": 4,
        "suspension_s": 300.0,
    }
    return AbuseSettings.model_validate(base | overrides)


def test_a_steady_key_is_not_a_spike_but_a_burst_over_its_baseline_is() -> None:
    clock = Clock()
    monitor = AbuseMonitor(_settings(min_baseline_tokens_per_minute=1000), clock)
    for _ in range(12):  # twelve minutes of 1,000 tokens a minute: the key's normal
        assert monitor.observe_tokens("key_a", 1000) is None
        clock.t += 60
    assert 0.9 < monitor.spike_ratio("key_a") < 1.1
    assert monitor.observe_tokens("key_a", 3000) is None  # 4x: busy, not suspect
    signal = monitor.observe_tokens("key_a", 3000)  # 7x its own average minute
    assert signal is not None
    assert (signal.key_id, signal.reason, signal.threshold) == ("key_a", "token_spike", 5.0)
    assert signal.value >= 5.0


def test_a_new_key_is_measured_against_the_floor_not_against_nothing() -> None:
    clock = Clock()
    monitor = AbuseMonitor(_settings(), clock)
    assert monitor.observe_tokens("new", 400) is None  # 4x the 100-token floor
    assert monitor.observe_tokens("new", 200) is not None  # 6x


def test_the_window_slides_out_the_previous_minute() -> None:
    clock = Clock(1_800_000_000.0 - 1_800_000_000.0 % 60 + 59)  # the minute's last second
    monitor = AbuseMonitor(_settings(spike_ratio=50.0), clock)
    monitor.observe_tokens("k", 1000)
    assert monitor.spike_ratio("k") == 10.0
    clock.t += 31  # half a minute later: half of last minute is still in the window
    assert 4.0 < monitor.spike_ratio("k") < 6.0
    clock.t += 60
    assert monitor.spike_ratio("k") == 0.0


def test_one_signal_per_episode_then_again_after_the_quiet_period() -> None:
    clock = Clock()
    monitor = AbuseMonitor(_settings(), clock)
    assert monitor.observe_tokens("k", 1000) is not None
    assert monitor.observe_tokens("k", 1000) is None  # same episode
    clock.t += 301
    assert monitor.observe_tokens("k", 5000) is not None


def test_block_rate_needs_enough_decisions_and_counts_only_the_last_n() -> None:
    monitor = AbuseMonitor(_settings(), Clock())
    for _ in range(3):
        assert monitor.observe_moderation("k", blocked=True) is None  # too few to judge
    assert monitor.block_rate("k") is None
    signal = monitor.observe_moderation("k", blocked=True)
    assert signal is not None
    assert (signal.reason, signal.value) == ("block_rate", 1.0)
    other = AbuseMonitor(_settings(), Clock())
    for _ in range(10):
        other.observe_moderation("k", blocked=False)
    for _ in range(4):
        assert other.observe_moderation("k", blocked=True) is None
    assert other.block_rate("k") == 0.4  # 4 of the last 10
    assert other.observe_moderation("k", blocked=True) is not None  # 5 of 10


def test_keys_beyond_the_bound_forget_the_least_recently_seen() -> None:
    monitor = AbuseMonitor(_settings(max_keys=2), Clock())
    for key in ("a", "b", "c"):
        monitor.observe_tokens(key, 10)
    assert monitor.spike_ratio("a") == 0.0
    assert monitor.spike_ratio("c") > 0


class Gate:
    def __init__(self) -> None:
        self.held: dict[str, datetime] = {}
        self.released: list[str] = []

    def hold(self, key_id: str, until: datetime) -> None:
        self.held[key_id] = until

    def release(self, key_id: str) -> None:
        self.released.append(key_id)


class Counter:
    def __init__(self) -> None:
        self.signals: list[tuple[str, bool]] = []

    def signal(self, reason: str, suspended: bool) -> None:
        self.signals.append((reason, suspended))


async def test_guard_suspends_holds_stores_and_audits(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}")
    await db.migrate()
    gate, counter = Gate(), Counter()
    guard = AbuseGuard(_settings(enabled=True), db, gate=gate, counter=counter, clock=Clock())
    guard.observe_tokens("key_x", 10_000)
    assert "key_x" in gate.held  # refused here before the row is written
    assert 299 < (gate.held["key_x"] - datetime.now(UTC)).total_seconds() <= 300
    await guard.flush()
    assert gate.released == ["key_x"]
    assert counter.signals == [("token_spike", True)]
    async with db.session() as session:
        [row] = await suspensions.active(session, api_key_id="key_x")
        events = await audit.query(session, audit.Filter(action="key.suspend"), limit=5)
    assert (row.reason, row.created_by) == ("token_spike", "system:abuse")
    assert [e.target_id for e in events] == ["key_x"]
    await guard.close()
    await db.close()


async def test_guard_only_counts_when_suspension_is_off(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}")
    await db.migrate()
    gate, counter = Gate(), Counter()
    guard = AbuseGuard(_settings(), db, gate=gate, counter=counter, clock=Clock())
    for _ in range(4):
        guard.observe_moderation("key_y", blocked=True)
    await guard.flush()
    assert counter.signals == [("block_rate", False)]
    assert gate.held == {}
    async with db.session() as session:
        assert await suspensions.active(session) == []
    await db.close()


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.floats(0, 400, allow_nan=False), st.integers(0, 5_000)), max_size=60
    ),
    baseline=st.integers(1, 8),
)
def test_the_running_total_gives_the_ratio_a_full_recount_gives(
    steps: list[tuple[float, int]], baseline: int
) -> None:
    """The monitor keeps a running sum so that a request's check does not recount every
    minute of the baseline: it must agree with the recount, however time moves on."""
    clock = Clock()
    monitor = AbuseMonitor(
        _settings(baseline_minutes=baseline, min_baseline_tokens_per_minute=1), clock=clock
    )
    for advance, tokens in steps:
        clock.t += advance
        monitor.observe_tokens("key", tokens)
        history = monitor._keys["key"]
        minute, into = int(clock.t // 60), (clock.t % 60) / 60
        counts = dict(history.minutes)
        recent = counts.get(minute, 0) + counts.get(minute - 1, 0) * (1 - into)
        span = range(minute - 1 - baseline, minute - 1)
        expected = recent / max(sum(counts.get(m, 0) for m in span) / baseline, 1)
        assert monitor.spike_ratio("key") == pytest.approx(expected)
