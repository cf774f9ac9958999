"""Per-key abuse signals and automatic temporary suspension.

    signal = monitor.observe_tokens(key_id, tokens)       # every request that did work
    signal = monitor.observe_moderation(key_id, blocked)  # every moderation decision

Two signals, each against the key's own history, so a busy key is not suspect for being
busy: a token spike (tokens in the last minute over the key's trailing per-minute average)
and a high block rate (share of the key's last N moderated requests that were blocked).
`AbuseMonitor` is the arithmetic, no I/O, driven by a clock tests control; `AbuseGuard`
counts signals as metrics and, when enabled, suspends the key: refused at once on this
replica, written to the database (with an audit event) so every replica refuses it within
the key cache's TTL.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from headrace.config import AbuseSettings
from headrace.observability.logging import get_logger
from headrace.storage import audit, suspensions
from headrace.storage.database import Database

Reason = Literal["token_spike", "block_rate"]
REASONS: tuple[Reason, ...] = ("token_spike", "block_rate")
ABUSE_ACTOR = audit.Actor("system:abuse")
log = get_logger("headrace.abuse")


@dataclass(frozen=True, slots=True)
class Signal:
    key_id: str
    reason: Reason
    value: float  # the spike ratio or the block rate
    threshold: float


@dataclass(slots=True)
class _KeyHistory:
    # (minute number, tokens in it), oldest first; at most baseline + 2 minutes.
    minutes: deque[tuple[int, int]] = field(default_factory=deque)
    tokens: int = 0  # the sum over `minutes`: a request's check reads it, not 60 entries
    decisions: deque[bool] = field(default_factory=deque)  # True: blocked
    quiet_until: dict[str, float] = field(default_factory=dict)  # reason -> time


class AbuseMonitor:
    """The signals' arithmetic for every key seen, bounded to `max_keys` keys."""

    def __init__(self, settings: AbuseSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._clock = clock
        self._keys: OrderedDict[str, _KeyHistory] = OrderedDict()

    def observe_tokens(self, key_id: str, tokens: int) -> Signal | None:
        """Count a request's tokens; a Signal when the key's rate spikes."""
        now = self._clock()
        history = self._history(key_id)
        minute = int(now // 60)
        if history.minutes and history.minutes[-1][0] == minute:
            history.minutes[-1] = (minute, history.minutes[-1][1] + tokens)
        else:
            history.minutes.append((minute, tokens))
        history.tokens += tokens
        oldest = minute - self.settings.baseline_minutes - 1
        while history.minutes and history.minutes[0][0] < oldest:
            history.tokens -= history.minutes.popleft()[1]
        ratio = self._spike_ratio(history, now)
        return self._fire(key_id, history, "token_spike", ratio, self.settings.spike_ratio, now)

    def observe_moderation(self, key_id: str, blocked: bool) -> Signal | None:
        """Count one moderation decision; a Signal when the key's block rate is too high."""
        history = self._history(key_id)
        history.decisions.append(blocked)
        while len(history.decisions) > self.settings.block_window:
            history.decisions.popleft()
        rate = _block_rate(history, self.settings.min_requests)
        if rate is None:
            return None
        return self._fire(
            key_id, history, "block_rate", rate, self.settings.block_rate, self._clock()
        )

    def spike_ratio(self, key_id: str) -> float:
        history = self._keys.get(key_id)
        return 0.0 if history is None else self._spike_ratio(history, self._clock())

    def block_rate(self, key_id: str) -> float | None:
        """The share blocked of the key's last moderated requests; None: too few yet."""
        history = self._keys.get(key_id)
        return None if history is None else _block_rate(history, self.settings.min_requests)

    def _spike_ratio(self, history: _KeyHistory, now: float) -> float:
        """Tokens in the last 60 s (this minute, plus the part of the previous one still
        in the window) over the average minute of the `baseline_minutes` before those."""
        minute, into = int(now // 60), (now % 60) / 60
        first = minute - 1 - self.settings.baseline_minutes  # the baseline's first minute
        current = previous = 0
        for m, tokens in reversed(history.minutes):  # newest first: two entries at most
            if m == minute:
                current = tokens
            elif m == minute - 1:
                previous = tokens
            elif m < minute - 1:
                break
        if history.minutes and history.minutes[0][0] >= first:  # trimmed: the sum is it
            in_baseline = history.tokens - current - previous
        else:  # entries older than the baseline are still held (a key gone quiet)
            in_baseline = sum(t for m, t in history.minutes if first <= m < minute - 1)
        baseline = in_baseline / self.settings.baseline_minutes
        recent = current + previous * (1 - into)
        return recent / max(baseline, self.settings.min_baseline_tokens_per_minute)

    def _fire(
        self,
        key_id: str,
        history: _KeyHistory,
        reason: Reason,
        value: float,
        threshold: float,
        now: float,
    ) -> Signal | None:
        # Once per episode: quiet for a suspension's length after a signal.
        if value < threshold or now < history.quiet_until.get(reason, 0.0):
            return None
        history.quiet_until[reason] = now + self.settings.suspension_s
        return Signal(key_id, reason, round(value, 3), threshold)

    def _history(self, key_id: str) -> _KeyHistory:
        history = self._keys.get(key_id)
        if history is None:
            history = self._keys[key_id] = _KeyHistory()
            if len(self._keys) > self.settings.max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key_id)
        return history


def _block_rate(history: _KeyHistory, min_requests: int) -> float | None:
    if len(history.decisions) < min_requests:
        return None
    return sum(history.decisions) / len(history.decisions)


class KeyGate(Protocol):
    """The authentication path's side: refuse a key at once, or forget what it cached."""

    def hold(self, key_id: str, until: datetime) -> None: ...

    def release(self, key_id: str) -> None: ...


class SignalCounter(Protocol):
    def signal(self, reason: str, suspended: bool) -> None: ...


class AbuseGuard:
    """Signals to metrics and, when `settings.enabled`, to temporary suspensions.

    `observe_*` never await (the account stage calls them while a request ends): the
    database write runs as a task; `flush()` waits for those in flight."""

    def __init__(
        self,
        settings: AbuseSettings,
        db: Database,
        *,
        gate: KeyGate | None = None,
        counter: SignalCounter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.monitor = AbuseMonitor(settings, clock)
        self._db = db
        self._gate = gate
        self._counter = counter
        self._writes: set[asyncio.Task[None]] = set()

    def observe_tokens(self, key_id: str, tokens: int) -> None:
        self._act(self.monitor.observe_tokens(key_id, tokens))

    def observe_moderation(self, key_id: str, blocked: bool) -> None:
        self._act(self.monitor.observe_moderation(key_id, blocked))

    def _act(self, signal: Signal | None) -> None:
        if signal is None:
            return
        if self._counter is not None:
            self._counter.signal(signal.reason, self.settings.enabled)
        log.warning(
            "abuse_signal",
            key_id=signal.key_id,
            reason=signal.reason,
            value=signal.value,
            threshold=signal.threshold,
            suspend=self.settings.enabled,
        )
        if not self.settings.enabled:
            return
        # Wall time, not the monitor's clock: every replica compares it with its own.
        until = datetime.now(UTC) + timedelta(seconds=self.settings.suspension_s)
        if self._gate is not None:
            self._gate.hold(signal.key_id, until)  # this replica: from the next request
        task = asyncio.get_running_loop().create_task(self._persist(signal, until))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _persist(self, signal: Signal, until: datetime) -> None:
        try:
            async with self._db.session.begin() as session:
                row = await suspensions.suspend(
                    session,
                    signal.key_id,
                    reason=signal.reason,
                    until=until,
                    created_by=ABUSE_ACTOR.name,
                    detail={"value": signal.value, "threshold": signal.threshold},
                )
                await audit.record(
                    session,
                    ABUSE_ACTOR,
                    "key.suspend",
                    audit.Target("api_key", signal.key_id),
                    after=suspension_view(row.reason, row.until, row.detail),
                )
        except Exception:
            # The local hold still refuses the key here until it ends.
            log.exception("abuse_suspension_not_stored", key_id=signal.key_id)
            return
        if self._gate is not None:
            self._gate.release(signal.key_id)  # the stored row speaks for it from now on

    async def flush(self) -> None:
        """Wait for the suspensions being written."""
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    async def close(self) -> None:
        await self.flush()


def suspension_view(reason: str, until: datetime, detail: dict[str, object]) -> dict[str, object]:
    return {"reason": reason, "until": until, "detail": detail}
