"""Background work every interval: a failing step does not end the loop."""

from __future__ import annotations

import asyncio

from headrace.periodic import Periodic


async def test_a_failing_step_is_followed_by_the_next() -> None:
    steps = 0
    third = asyncio.Event()

    async def step() -> None:
        nonlocal steps
        steps += 1
        if steps == 3:
            third.set()
        if steps == 1:
            raise RuntimeError("database away")

    every = Periodic(step, interval_s=0.0, failed="step_failed")
    every.start()
    await asyncio.wait_for(third.wait(), 5)
    await every.close()
    assert steps >= 3
