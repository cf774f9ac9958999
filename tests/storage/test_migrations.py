"""The schema comes from Alembic migrations, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import inspect

from headrace.storage.database import Database
from headrace.storage.schema import Base


async def test_migrations_create_every_table_and_are_idempotent(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    await db.migrate()  # a second start changes nothing
    async with db.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables
    assert await db.ping()
    await db.close()


async def test_ping_fails_on_an_unreachable_store() -> None:
    db = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    assert not await db.ping()
    await db.close()


async def test_migrations_match_the_schema_module(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    db = Database(database_url)
    await db.migrate()
    async with db.engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
        )
    assert diff == [], "schema.py changed without a migration"
    await db.close()


async def test_limits_set_before_per_model_limits_stay_limits_for_all_models(
    database_url: str,
) -> None:
    import asyncio

    from alembic import command
    from sqlalchemy import text

    from headrace.storage.database import _alembic_config

    await asyncio.to_thread(command.upgrade, _alembic_config(database_url), "0004")
    db = Database(database_url)
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO limits (scope, scope_id, requests_per_minute, updated_at) "
                "VALUES ('key', 'key_1', 60, CURRENT_TIMESTAMP)"
            )
        )
    await db.migrate()
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT scope_id, model, requests_per_minute FROM limits"))
        ).all()
    assert [tuple(r) for r in rows] == [("key_1", "", 60)]
    await db.close()
