"""Repository for the prompt registry: named prompts with immutable, numbered versions.

A version is inserted once and never updated; `promote` only moves a prompt's
`current_version`, the one a reference without a version gets.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from headrace.storage.database import Database
from headrace.storage.schema import PromptRow, PromptVersionRow


@dataclass(frozen=True, slots=True)
class PromptVersion:
    prompt_id: str
    name: str
    version: int
    instructions: str
    variables: list[str]
    created_at: int
    current: bool


@dataclass(frozen=True, slots=True)
class PromptInfo:
    id: str
    name: str
    current_version: int
    latest_version: int
    created_at: int


async def create_prompt(
    db: Database, prompt_id: str, name: str, instructions: str, variables: list[str], now: int
) -> PromptVersion:
    """A new prompt whose version 1 (current) is `instructions`."""
    async with db.session.begin() as session:
        session.add(PromptRow(id=prompt_id, name=name, current_version=1, created_at=now))
        await session.flush()
        session.add(
            PromptVersionRow(
                prompt_id=prompt_id,
                version=1,
                instructions=instructions,
                variables=variables,
                created_at=now,
            )
        )
    return PromptVersion(prompt_id, name, 1, instructions, variables, now, current=True)


async def add_version(
    db: Database, ref: str, instructions: str, variables: list[str], now: int
) -> PromptVersion | None:
    """The next version of prompt `ref` (id or name); it is not current until promoted."""
    async with db.session.begin() as session:
        prompt = await _prompt(session, ref)
        if prompt is None:
            return None
        latest = await session.scalar(
            select(func.max(PromptVersionRow.version)).where(
                PromptVersionRow.prompt_id == prompt.id
            )
        )
        version = int(latest or 0) + 1
        session.add(
            PromptVersionRow(
                prompt_id=prompt.id,
                version=version,
                instructions=instructions,
                variables=variables,
                created_at=now,
            )
        )
    return PromptVersion(prompt.id, prompt.name, version, instructions, variables, now, False)


async def promote(db: Database, ref: str, version: int) -> PromptVersion | None:
    """Make `version` the current one; None if the prompt or the version does not exist."""
    async with db.session.begin() as session:
        prompt = await _prompt(session, ref)
        if prompt is None:
            return None
        row = await session.get(PromptVersionRow, (prompt.id, version))
        if row is None:
            return None
        prompt.current_version = version
        return _version(prompt, row)


async def get_version(db: Database, ref: str, version: int | None = None) -> PromptVersion | None:
    """Version `version` of prompt `ref` (id or name), or its current version."""
    async with db.session() as session:
        prompt = await _prompt(session, ref)
        if prompt is None:
            return None
        row = await session.get(
            PromptVersionRow, (prompt.id, prompt.current_version if version is None else version)
        )
        return None if row is None else _version(prompt, row)


async def list_versions(db: Database, ref: str) -> list[PromptVersion] | None:
    async with db.session() as session:
        prompt = await _prompt(session, ref)
        if prompt is None:
            return None
        rows = await session.scalars(
            select(PromptVersionRow)
            .where(PromptVersionRow.prompt_id == prompt.id)
            .order_by(PromptVersionRow.version)
        )
        return [_version(prompt, r) for r in rows]


async def list_prompts(db: Database) -> list[PromptInfo]:
    latest = (
        select(PromptVersionRow.prompt_id, func.max(PromptVersionRow.version).label("latest"))
        .group_by(PromptVersionRow.prompt_id)
        .subquery()
    )
    async with db.session() as session:
        rows = await session.execute(
            select(PromptRow, latest.c.latest)
            .join(latest, latest.c.prompt_id == PromptRow.id)
            .order_by(PromptRow.name)
        )
        return [
            PromptInfo(p.id, p.name, p.current_version, int(n), p.created_at) for p, n in rows.all()
        ]


async def _prompt(session: AsyncSession, ref: str) -> PromptRow | None:
    return await session.scalar(
        select(PromptRow).where(or_(PromptRow.id == ref, PromptRow.name == ref))
    )


def _version(prompt: PromptRow, row: PromptVersionRow) -> PromptVersion:
    return PromptVersion(
        prompt.id,
        prompt.name,
        row.version,
        row.instructions,
        list(row.variables),
        row.created_at,
        current=row.version == prompt.current_version,
    )
