"""Rollouts in the database: checked whole before they are written, audited, and read by
every replica's router through a short-lived cache (two tables on one database stand for
two gateway replicas)."""

from __future__ import annotations

import math

import pytest

from headrace.config import ModelSettings
from headrace.control import audit as audit_service
from headrace.control import rollouts as rollout_service
from headrace.errors import InvalidRequestError, NotFoundError
from headrace.routing.rollouts import RolloutTable, canonical
from headrace.storage.audit import Actor, Filter
from headrace.storage.database import Database

MODELS = [
    ModelSettings(
        name="big",
        deployments=[
            {"name": "a", "url": "http://a/v1", "version": "v1"},
            {"name": "b", "url": "http://b/v1", "version": "v2"},
        ],
    ),
    ModelSettings(name="local", path="headrace-tiny-chat"),
]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_change_reaches_every_replica_within_the_ttl(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    clock = Clock()
    here, there = RolloutTable(db, ttl_s=1.0, clock=clock), RolloutTable(db, ttl_s=1.0, clock=clock)
    assert await here.current() == {} == await there.current()
    await rollout_service.set_rollout(db, MODELS, "big", {"v1": 95, "v2": 5})
    here.invalidate()  # the replica that made the change
    assert await here.current() == {"big": (("v1", 95.0), ("v2", 5.0))}
    assert await there.current() == {}  # still cached
    clock.now = 1.0
    assert await there.current() == {"big": (("v1", 95.0), ("v2", 5.0))}
    await rollout_service.clear_rollout(db, MODELS, "big")  # the rollback
    clock.now = 2.0
    assert await there.current() == {}
    await db.close()


async def test_an_unreadable_database_keeps_the_last_table() -> None:
    db = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    table = RolloutTable(db, ttl_s=0.0)
    assert await table.current() == {}  # not an error: requests are still routed
    await db.close()


async def test_set_show_clear_are_audited(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    actor = Actor("cli:ops")
    found = await rollout_service.set_rollout(db, MODELS, "big", {"v2": 10, "v1": 90}, actor=actor)
    assert found.weights == {"v1": 90.0, "v2": 10.0}
    assert found.versions == ("v1", "v2")
    shown = await rollout_service.get_rollout(db, MODELS, "big")
    assert shown.weights == found.weights
    assert shown.updated_at is not None
    cleared = await rollout_service.clear_rollout(db, MODELS, "big", actor=actor)
    assert cleared.weights == {}
    assert (await rollout_service.get_rollout(db, MODELS, "big")).weights == {}
    events = (await audit_service.page(db, Filter(target_type="rollout"))).events
    assert [(e.action, e.actor, e.target_id) for e in events] == [
        ("rollout.set", "cli:ops", "big"),
        ("rollout.clear", "cli:ops", "big"),
    ]
    assert events[0].after == {"weights": {"v1": 90.0, "v2": 10.0}}
    assert events[1].before == {"weights": {"v1": 90.0, "v2": 10.0}}
    await db.close()


@pytest.mark.parametrize(
    "weights",
    [
        {"v3": 1.0},  # no deployment runs v3
        {"v1": -1.0, "v2": 2.0},
        {"v1": math.inf},
        {"v1": math.nan},
        {"v1": 0.0, "v2": 0.0},
        {},
    ],
)
def test_bad_weights_are_refused(weights: dict[str, float]) -> None:
    with pytest.raises(InvalidRequestError) as err:
        rollout_service.checked_weights(weights, ("v1", "v2"))
    assert err.value.param == "weights"


def test_only_models_on_deployments_have_rollouts() -> None:
    assert rollout_service.model_versions(MODELS, "big") == ("v1", "v2")
    with pytest.raises(NotFoundError):
        rollout_service.model_versions(MODELS, "nope")
    with pytest.raises(InvalidRequestError):
        rollout_service.model_versions(MODELS, "local")


def test_every_replica_orders_the_weights_alike() -> None:
    assert (
        canonical({"v2": 5, "v1": 95})
        == canonical({"v1": 95, "v2": 5})
        == (
            ("v1", 95.0),
            ("v2", 5.0),
        )
    )
