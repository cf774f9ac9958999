"""The account stage's guarantee: a request's `account(status)` runs exactly once, however
the request ends: done (`ok`), failed (`error`) or dropped by the client (`cancelled`).

    @once
    def account(status): ...                                   # release + record
    completion = await accounted(run.complete(...), account)  # JSON responses
    EventStream(run.stream(...), account, ...)                # SSE responses (api/sse.py)

`account` must not await: it may run while the request is being cancelled. It releases the
rate-limit reservation and records the usage event, both of which only queue work. Before
the work starts, `begun` writes the request's started row (the ledger's outbox), so a crash
cannot lose a request that did work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from headrace.metering.ledger import UsageLedger
from headrace.metering.usage import Status, UsageEvent

Account = Callable[[Status], None]
T = TypeVar("T")


async def begun(ledger: UsageLedger, started: UsageEvent, account: Account) -> None:
    """Commit the request's started row before its work; a client that hangs up meanwhile
    still gets its request accounted for (no work: the row is discarded)."""
    try:
        await ledger.begin(started)
    except BaseException:
        account("cancelled")
        raise


async def accounted(work: Awaitable[T], account: Account) -> T:
    """`await work`, then account for it."""
    status: Status = "cancelled"  # a disconnect cancels this await
    try:
        result = await work
        status = "ok"
        return result
    except Exception:
        status = "error"
        raise
    finally:
        account(status)


async def accounted_failure(work: Awaitable[None], account: Account) -> None:
    """`await work`, accounting for the request only if it fails: success goes on."""
    try:
        await work
    except Exception:
        account("error")
        raise
    except BaseException:  # a disconnect cancels this await
        account("cancelled")
        raise


def once(account: Account) -> Account:
    """`account`, run on the first call only: the later ones are the same ending seen
    from another place (the stream's end and the response's end)."""
    return _Once(account)


class _Once:
    """A callable rather than a `functools.wraps` closure: one is made per request, and
    copying the wrapped function's attributes cost more than the rest of it."""

    __slots__ = ("_account",)

    def __init__(self, account: Account) -> None:
        self._account: Account | None = account  # None once it has run

    def __call__(self, status: Status) -> None:
        account, self._account = self._account, None
        if account is not None:
            account(status)
