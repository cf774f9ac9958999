"""Accounting runs exactly once per request, whatever way the request ends (streams:
tests/api/test_streaming.py)."""

from __future__ import annotations

import asyncio

import pytest

from headrace.api.accounting import accounted, once
from headrace.metering.usage import Status


async def test_a_completion_is_accounted_once_however_it_ends() -> None:
    seen: list[Status] = []

    async def work(outcome: str) -> object:
        if outcome == "error":
            raise RuntimeError("engine died")
        if outcome == "cancelled":
            await asyncio.sleep(3600)
        return "done"

    assert await accounted(work("ok"), seen.append) == "done"  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        await accounted(work("error"), seen.append)  # type: ignore[arg-type]
    task = asyncio.ensure_future(accounted(work("cancelled"), seen.append))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["ok", "error", "cancelled"]


def test_once_runs_the_first_ending_only() -> None:
    seen: list[Status] = []
    account = once(seen.append)
    account("ok")
    account("cancelled")
    assert seen == ["ok"]
