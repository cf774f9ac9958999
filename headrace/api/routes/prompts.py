"""`/admin/v1/prompts...` (the prompt registry) and `/admin/v1/projects/{id}/retention`.

Admin keys only. Prompt versions are immutable: a change is a new version, which serves
references without a version once it is promoted.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

from headrace.api.state import Admin, State
from headrace.control import prompts as registry
from headrace.control import retention
from headrace.control.prompts import PromptInfo, PromptVersion
from headrace.protocol.common import RequestModel, WireModel

router = APIRouter(prefix="/admin/v1", tags=["admin"])


class CreatePrompt(RequestModel):
    name: str
    instructions: str


class CreateVersion(RequestModel):
    instructions: str


class Promote(RequestModel):
    version: int = Field(ge=1)


class RetentionBody(RequestModel):
    days: int | None = Field(ge=0)  # null: keep until deleted


class PromptVersionOut(WireModel):
    object: str = "prompt.version"
    id: str
    name: str
    version: int
    instructions: str
    variables: list[str]
    created_at: int
    current: bool


class PromptOut(WireModel):
    object: str = "prompt"
    id: str
    name: str
    current_version: int
    latest_version: int
    created_at: int


class PromptList(WireModel):
    object: str = "list"
    data: list[PromptOut]


class PromptVersionList(WireModel):
    object: str = "list"
    data: list[PromptVersionOut]


class Retention(WireModel):
    object: str = "project.retention"
    project_id: str
    days: int | None


@router.post("/prompts")
async def create_prompt(body: CreatePrompt, state: State, _: Admin) -> PromptVersionOut:
    return _version(await registry.create(state.db, body.name, body.instructions))


@router.get("/prompts")
async def list_prompts(state: State, _: Admin) -> PromptList:
    return PromptList(data=[_prompt(p) for p in await registry.list_prompts(state.db)])


@router.get("/prompts/{ref}")
async def show_prompt(ref: str, state: State, _: Admin) -> PromptVersionList:
    """Every version of the prompt (by id or name), oldest first."""
    return PromptVersionList(data=[_version(v) for v in await registry.show(state.db, ref)])


@router.post("/prompts/{ref}/versions")
async def create_version(ref: str, body: CreateVersion, state: State, _: Admin) -> PromptVersionOut:
    return _version(await registry.add_version(state.db, ref, body.instructions))


@router.post("/prompts/{ref}/promote")
async def promote(ref: str, body: Promote, state: State, _: Admin) -> PromptVersionOut:
    return _version(await registry.promote(state.db, ref, body.version))


@router.get("/projects/{project_id}/retention")
async def get_retention(project_id: str, state: State, _: Admin) -> Retention:
    days = await retention.get_retention(state.db, project_id)
    return Retention(project_id=project_id, days=days)


@router.put("/projects/{project_id}/retention")
async def set_retention(project_id: str, body: RetentionBody, state: State, _: Admin) -> Retention:
    await retention.set_retention(state.db, project_id, body.days)
    return Retention(project_id=project_id, days=body.days)


def _version(v: PromptVersion) -> PromptVersionOut:
    return PromptVersionOut(
        id=v.prompt_id,
        name=v.name,
        version=v.version,
        instructions=v.instructions,
        variables=v.variables,
        created_at=v.created_at,
        current=v.current,
    )


def _prompt(p: PromptInfo) -> PromptOut:
    return PromptOut(
        id=p.id,
        name=p.name,
        current_version=p.current_version,
        latest_version=p.latest_version,
        created_at=p.created_at,
    )
