"""The account stage's guarantee: a request's `account(status)` runs exactly once, however
the request ends: done (`ok`), failed (`error`) or dropped by the client (`cancelled`).

    @once
    def account(status): ...                                             # release + record
    completion = await accounted(run.complete(...), account)            # JSON responses
    AccountedStream(settled(run.stream(...), account), account, ...)    # SSE responses

`account` must not await: it may run while the request is being cancelled. It releases the
rate-limit reservation and records the usage event, both of which only queue work. Before
the work starts, `begun` writes the request's started row (the ledger's outbox), so a crash
cannot lose a request that did work.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

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


async def settled(chunks: AsyncIterator[bytes], account: Account) -> AsyncIterator[bytes]:
    """The stream, then account for it once it has ended."""
    status: Status = "cancelled"  # a disconnect closes this generator at a `yield`
    try:
        async for chunk in chunks:
            yield chunk
        status = "ok"
    except Exception:
        status = "error"
        raise
    finally:
        account(status)


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


class AccountedStream(StreamingResponse):
    """A streaming response that accounts even when its body never started: a client that
    hangs up before the first byte leaves `settled`'s generator unstarted, so its `finally`
    would never run and the request's seat would wait for its lease to lapse."""

    def __init__(self, content: AsyncIterator[bytes], account: Account, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._account = account

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        spec = scope.get("asgi", {}).get("spec_version", "2.0")
        try:
            if tuple(map(int, spec.split("."))) >= (2, 4):  # a send to a gone client raises
                await super().__call__(scope, receive, send)
            else:  # uvicorn: the client's leaving is a message to listen for
                await self._until_disconnect(receive, send)
        finally:
            self._account("cancelled")  # a no-op (`once`) when the stream accounted itself

    async def _until_disconnect(self, receive: Receive, send: Send) -> None:
        """The body, cut short when the client goes away. Starlette does this with an anyio
        task group around the body and a listener, cancel scopes and all, on every stream;
        here the listener is one plain task that cancels the body's."""
        body = asyncio.current_task()
        assert body is not None
        gone = False

        async def listen() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass  # a replayed request body, or nothing the stream cares about
            gone = True
            body.cancel()

        listener = asyncio.create_task(listen())
        try:
            await self.stream_response(send)
        except asyncio.CancelledError:
            if not gone or body.uncancel() > 0:
                raise  # cancelled from outside (shutdown), not by the client leaving
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        if self.background is not None:
            await self.background()
