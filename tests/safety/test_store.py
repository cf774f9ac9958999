"""Safety policies in the database (SQLite and PostgreSQL) and the data plane's cache."""

from __future__ import annotations

import pytest

from headrace.control import safety as safety_service
from headrace.control import tenants
from headrace.errors import NotFoundError
from headrace.safety.checks import SafetyPolicies
from headrace.safety.policy import CategoryPolicy, SafetyPolicy, policy_from_dict
from headrace.storage.database import Database


async def _project(db: Database) -> str:
    org = await tenants.create_org(db, "acme")
    return (await tenants.create_project(db, org.id, "shop")).id


async def test_a_policy_round_trips_and_resets(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    pid = await _project(db)
    found = await safety_service.get_policy(db, pid)
    assert found.is_default
    assert found.policy == SafetyPolicy.default()
    policy = policy_from_dict(
        {"enabled": False, "categories": {"hate": {"input": "block", "threshold": 0.4}}}
    )
    await safety_service.set_policy(db, pid, policy)
    found = await safety_service.get_policy(db, pid)
    assert not found.is_default
    assert found.policy == policy
    assert found.policy.categories["hate"] == CategoryPolicy("block", "flag", 0.4)
    await safety_service.reset_policy(db, pid)
    assert (await safety_service.get_policy(db, pid)).is_default
    with pytest.raises(NotFoundError):
        await safety_service.set_policy(db, "proj_missing", policy)
    with pytest.raises(NotFoundError):
        await safety_service.get_policy(db, "proj_missing")
    await db.close()


async def test_the_cache_serves_the_default_then_a_change_after_its_ttl(
    database_url: str,
) -> None:
    db = Database(database_url)
    await db.migrate()
    pid = await _project(db)
    now = [0.0]
    policies = SafetyPolicies(db, ttl_s=1.0, clock=lambda: now[0])
    assert await policies.for_project(pid) == SafetyPolicy.default()
    strict = policy_from_dict({"categories": {"violence": {"output": "block"}}})
    await safety_service.set_policy(db, pid, strict)
    assert await policies.for_project(pid) == SafetyPolicy.default()  # still cached
    now[0] = 1.5
    assert await policies.for_project(pid) == strict
    await db.close()
