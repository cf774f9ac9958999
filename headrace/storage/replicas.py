"""Which gateway process holds a replica id: the usage ledger's outbox rows are closed, on
restart, by the replica id that wrote them, so two live gateways must never share one.

A holder keeps its row fresh (`heartbeat`); a process may take an id whose holder is gone:
its heartbeat is stale, or it ran on this host and its process no longer exists (a restart
after a crash, which must not wait for the heartbeat to go stale). A process is its pid and
its start time, so a reused pid (a container restarted as pid 1) is not mistaken for the
holder, and a second app in the holder's own process is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.storage.schema import ReplicaRow


@dataclass(frozen=True, slots=True)
class Holder:
    instance: str
    host: str
    pid: int
    heartbeat_ms: int
    process_start: int = 0  # the holder process's start time (0: not known)


def process_start(pid: int) -> int:
    """When process `pid` started (clock ticks since boot, Linux); 0 if it does not exist
    or this system does not say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # The command name (field 2) may hold spaces: count fields after its ")".
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def _alive(pid: int, started: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    now_started = process_start(pid)
    return not (started and now_started and now_started != started)  # else: pid reused


def gone(holder: Holder, *, host: str, now_ms: int, stale_after_ms: int) -> bool:
    """Whether `holder` can be taken over by a process on `host`."""
    if now_ms - holder.heartbeat_ms > stale_after_ms:
        return True
    return holder.host == host and not _alive(holder.pid, holder.process_start)


async def claim(
    conn: AsyncConnection,
    replica: str,
    *,
    instance: str,
    host: str,
    pid: int,
    now_ms: int,
    stale_after_ms: int,
) -> Holder | None:
    """Take `replica` for `instance`; None when taken, else the live holder that has it."""
    r = ReplicaRow
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    values = {
        "instance": instance,
        "host": host,
        "pid": pid,
        "process_start": process_start(pid),
        "heartbeat_ms": now_ms,
    }
    await conn.execute(
        insert(r).values(id=replica, **values).on_conflict_do_nothing(index_elements=["id"])
    )
    row = (await conn.execute(select(r).where(r.id == replica))).one()
    holder = Holder(row.instance, row.host, row.pid, row.heartbeat_ms, row.process_start)
    if holder.instance == instance:
        return None
    if not gone(holder, host=host, now_ms=now_ms, stale_after_ms=stale_after_ms):
        return holder
    # Compare and swap: of two processes taking over at once, one wins.
    taken = await conn.execute(
        update(r).where(r.id == replica, r.instance == holder.instance).values(**values)
    )
    if taken.rowcount == 1:
        return None
    row = (await conn.execute(select(r).where(r.id == replica))).one()
    return Holder(row.instance, row.host, row.pid, row.heartbeat_ms, row.process_start)


async def heartbeat(conn: AsyncConnection, replica: str, *, instance: str, now_ms: int) -> bool:
    """Refresh the claim; False when another process has taken the id since."""
    r = ReplicaRow
    result = await conn.execute(
        update(r).where(r.id == replica, r.instance == instance).values(heartbeat_ms=now_ms)
    )
    return bool(result.rowcount)


async def release(conn: AsyncConnection, replica: str, *, instance: str) -> None:
    r = ReplicaRow
    await conn.execute(delete(r).where(r.id == replica, r.instance == instance))
