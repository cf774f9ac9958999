"""The audit log: one event per admin action in the action's own transaction, secrets
stripped, filters and paging, and a database that refuses to rewrite history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from headrace.admission.limits import Limits
from headrace.control import keys, limits, tenants
from headrace.errors import InvalidRequestError
from headrace.storage import audit
from headrace.storage.database import Database
from headrace.storage.schema import ApiKey, AuditEvent
from headrace.storage.tenancy import now

ALICE = audit.Actor("adm_alice", source_ip="10.0.0.7", user_agent="curl/8", request_id="req_1")


def test_scrub_redacts_secret_fields_at_any_depth() -> None:
    scrubbed = audit.scrub(
        {
            "name": "web",
            "key_hash": "abc",
            "nested": [{"secret": "sk-hr-x", "limits": {"tokens_per_minute": 5}}],
            "encryption_key": "k",
            "when": now(),
        }
    )
    assert isinstance(scrubbed, dict)
    assert scrubbed["key_hash"] == scrubbed["encryption_key"] == audit.REDACTED
    assert scrubbed["nested"] == [{"secret": audit.REDACTED, "limits": {"tokens_per_minute": 5}}]
    assert scrubbed["name"] == "web"
    assert isinstance(scrubbed["when"], str)


async def test_a_created_key_is_audited_without_its_secret_or_hash(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    created = await keys.create_key(
        db, "pepper", name="ci", limits=Limits(requests_per_minute=5), actor=ALICE
    )
    await keys.revoke_key(db, created.id, actor=ALICE)
    async with db.session() as session:
        key_hash = await session.scalar(select(ApiKey.key_hash).where(ApiKey.id == created.id))
        events = await audit.query(session, audit.Filter(target_id=created.id), limit=10)
        dump = await session.execute(text("SELECT * FROM audit_events"))
        everything = str(dump.all())
    assert [e.action for e in events] == ["key.create", "key.revoke"]
    create = events[0]
    assert (create.actor, create.source_ip, create.user_agent, create.request_id) == (
        "adm_alice",
        "10.0.0.7",
        "curl/8",
        "req_1",
    )
    assert create.after is not None
    assert create.after["limits"]["requests_per_minute"] == 5  # type: ignore[index]
    assert events[1].before == {"revoked_at": None}
    assert key_hash
    assert key_hash not in everything
    assert created.secret not in everything
    assert created.secret[6:18] not in everything  # not even the lookup prefix
    await db.close()


async def test_a_refused_action_leaves_no_event(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    org = await tenants.create_org(db, "acme", actor=ALICE)
    with pytest.raises(InvalidRequestError):
        await limits.set_limits(db, "org", org.id, Limits(requests_per_minute=0), actor=ALICE)
    await limits.set_limits(db, "org", org.id, Limits(requests_per_minute=9), actor=ALICE)
    await limits.set_limits(db, "org", org.id, Limits(requests_per_minute=3), actor=ALICE)
    async with db.session() as session:
        events = await audit.query(session, audit.Filter(action="limits.set"), limit=10)
    assert len(events) == 2
    assert events[0].before is None
    assert events[1].before is not None
    assert events[1].before["requests_per_minute"] == 9
    assert events[1].after is not None
    assert events[1].after["requests_per_minute"] == 3
    await db.close()


async def test_filters_time_range_and_paging(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    bob = audit.Actor("cli:bob")
    for i in range(5):
        await tenants.create_org(db, f"org{i}", actor=ALICE if i % 2 else bob)
    async with db.session() as session:
        mine = await audit.query(session, audit.Filter(actor="cli:bob"), limit=10)
        first = await audit.query(session, audit.Filter(), limit=2)
        rest = await audit.query(session, audit.Filter(after_id=first[-1].id), limit=10)
        streamed = [e.id async for e in audit.stream(session, audit.Filter(), batch=2)]
        future = await audit.query(
            session, audit.Filter(since=now() + timedelta(minutes=1)), limit=10
        )
        past = await audit.query(
            session, audit.Filter(until=now() - timedelta(minutes=1)), limit=10
        )
    assert len(mine) == 3
    assert [e.id for e in first + rest] == streamed
    assert len(streamed) == 5
    assert future == past == []
    await db.close()


async def test_the_database_refuses_to_update_or_delete_events(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    await tenants.create_org(db, "acme", actor=ALICE)
    for statement in (update(AuditEvent).values(actor="someone else"), delete(AuditEvent)):
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.session.begin() as session:
                await session.execute(statement)
    async with db.session() as session:
        assert await session.scalar(select(AuditEvent.actor)) == "adm_alice"
    await db.close()
