"""Privacy policies in the database (SQLite and PostgreSQL) and the data plane's cache."""

from __future__ import annotations

import pytest

from headrace.control import privacy as privacy_service
from headrace.control import tenants
from headrace.errors import InvalidRequestError, NotFoundError
from headrace.safety.privacy import PrivacyPolicies, PrivacyPolicy, checked_policy
from headrace.storage.database import Database

DEFAULTS = PrivacyPolicy()


async def _project(db: Database) -> str:
    org = await tenants.create_org(db, "acme")
    return (await tenants.create_project(db, org.id, "shop")).id


async def test_a_policy_round_trips_and_resets(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    pid = await _project(db)
    found = await privacy_service.get_policy(db, pid, DEFAULTS)
    assert found.is_default
    assert found.policy == DEFAULTS
    policy = PrivacyPolicy("mask", ("email", "iban"), 0.3, "block")
    await privacy_service.set_policy(db, pid, policy)
    found = await privacy_service.get_policy(db, pid, DEFAULTS)
    assert not found.is_default
    assert found.policy == policy
    await privacy_service.set_policy(db, pid, PrivacyPolicy("store"))  # replaces it whole
    assert (await privacy_service.get_policy(db, pid, DEFAULTS)).policy == PrivacyPolicy("store")
    await privacy_service.reset_policy(db, pid, DEFAULTS)
    assert (await privacy_service.get_policy(db, pid, DEFAULTS)).is_default
    with pytest.raises(NotFoundError):
        await privacy_service.set_policy(db, "proj_missing", policy)
    await db.close()


async def test_the_cache_serves_the_defaults_then_a_change_after_its_ttl(
    database_url: str,
) -> None:
    db = Database(database_url)
    await db.migrate()
    pid = await _project(db)
    now = [0.0]
    policies = PrivacyPolicies(db, DEFAULTS, ttl_s=1.0, clock=lambda: now[0])
    assert await policies.for_project(pid) == DEFAULTS
    await privacy_service.set_policy(db, pid, PrivacyPolicy("mask"))
    assert (await policies.for_project(pid)).pii_mode == "log"  # still cached
    now[0] = 1.5
    assert (await policies.for_project(pid)).pii_mode == "mask"
    await db.close()


def test_checked_policy_refuses_bad_values_by_name() -> None:
    ok = checked_policy(
        pii_mode="mask", pii_kinds=["email"], injection_threshold=0, injection_action="block"
    )
    assert ok == PrivacyPolicy("mask", ("email",), 0.0, "block")
    bad: list[tuple[dict[str, object], str]] = [
        ({"pii_mode": "nope"}, "pii_mode"),
        ({"pii_kinds": ["email", "dna"]}, "pii_kinds"),
        ({"injection_threshold": float("nan")}, "injection_threshold"),
        ({"injection_threshold": -0.1}, "injection_threshold"),
        ({"injection_action": "shout"}, "injection_action"),
    ]
    base: dict[str, object] = {
        "pii_mode": "log",
        "pii_kinds": None,
        "injection_threshold": 0.5,
        "injection_action": "flag",
    }
    for change, param in bad:
        with pytest.raises(InvalidRequestError) as caught:
            checked_policy(**(base | change))  # type: ignore[arg-type]
        assert caught.value.param == param
