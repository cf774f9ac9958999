"""Holding a replica id: one live process at a time, taken over when its holder is gone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import update

from headrace.storage import replicas
from headrace.storage.database import Database
from headrace.storage.schema import ReplicaRow

LAPSE_MS = 20_000


@pytest.fixture
async def db(database_url: str) -> Database:
    database = Database(database_url)
    await database.migrate()
    return database


async def _claim(db: Database, instance: str, host: str, pid: int, now_ms: int) -> object:
    async with db.engine.begin() as conn:
        return await replicas.claim(
            conn,
            "r1",
            instance=instance,
            host=host,
            pid=pid,
            now_ms=now_ms,
            stale_after_ms=LAPSE_MS,
        )


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


async def test_a_live_holder_keeps_its_id_until_it_lapses(db: Database) -> None:
    alive = os.getppid()  # a process that exists, and is not us
    assert await _claim(db, "a", "host-1", alive, 1_000) is None
    assert await _claim(db, "a", "host-1", alive, 2_000) is None  # its own: still its
    other_host = await _claim(db, "b", "host-2", 7, 2_000)
    assert isinstance(other_host, replicas.Holder)
    assert other_host.instance == "a"
    same_host = await _claim(db, "b", "host-1", os.getpid(), 2_000)
    assert isinstance(same_host, replicas.Holder)
    assert same_host.pid == alive
    async with db.engine.begin() as conn:
        assert await replicas.heartbeat(conn, "r1", instance="a", now_ms=10_000)
    assert await _claim(db, "b", "host-2", 7, 10_000 + LAPSE_MS) is not None  # fresh beat
    assert await _claim(db, "b", "host-2", 7, 10_001 + LAPSE_MS) is None  # lapsed: taken
    async with db.engine.begin() as conn:
        assert not await replicas.heartbeat(conn, "r1", instance="a", now_ms=40_000)
    await db.close()


async def test_a_crashed_holder_on_this_host_is_taken_over_at_once(db: Database) -> None:
    assert await _claim(db, "a", "host-1", _dead_pid(), 1_000) is None
    assert await _claim(db, "b", "host-1", os.getpid(), 1_001) is None
    # A second app in the holder's own process: the holder is alive.
    assert await _claim(db, "c", "host-1", os.getpid(), 1_002) is not None
    # The same pid in a new process (a container restarted as pid 1): another life.
    async with db.engine.begin() as conn:
        await conn.execute(update(ReplicaRow).values(process_start=1))
    assert await _claim(db, "c", "host-1", os.getpid(), 1_003) is None
    async with db.engine.begin() as conn:
        await replicas.release(conn, "r1", instance="c")
    assert await _claim(db, "d", "host-2", 7, 1_004) is None  # released: free for anyone
    await db.close()
