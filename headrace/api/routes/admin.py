"""`/admin/v1/...`: organisations, projects, API keys and limits, for operators.

Admin keys only (`hr-admin-...`). Every write checks all of its input before it touches
the database and runs in one transaction, so a refused request creates nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter

from headrace.admission.limits import Limits as LimitValues
from headrace.api.state import Admin, Auditor, State
from headrace.control import keys as key_service
from headrace.control import limits as limit_service
from headrace.control import tenants
from headrace.errors import InvalidRequestError
from headrace.protocol.admin import (
    ApiKey,
    ApiKeyList,
    CreateKey,
    CreateOrganization,
    CreateProject,
    Limits,
    LimitsBody,
    ModifyProject,
    Organization,
    OrganizationList,
    Project,
    ProjectList,
)

router = APIRouter(prefix="/admin/v1", tags=["admin"])
ScopeName = Literal["org", "project", "key"]


@router.post("/organizations")
async def create_organization(
    body: CreateOrganization, state: State, actor: Auditor
) -> Organization:
    return _org(await tenants.create_org(state.db, body.name, actor=actor))


@router.get("/organizations")
async def list_organizations(state: State, _: Admin) -> OrganizationList:
    return OrganizationList(data=[_org(o) for o in await tenants.list_orgs(state.db)])


@router.post("/projects")
async def create_project(body: CreateProject, state: State, actor: Auditor) -> Project:
    created = await tenants.create_project(
        state.db, body.org_id, body.name, tier=body.tier, actor=actor
    )
    return _project(created)


@router.post("/projects/{project_id}")
async def modify_project(
    project_id: str, body: ModifyProject, state: State, actor: Auditor
) -> Project:
    """Change a project's tier (which deployments it may use)."""
    return _project(await tenants.set_project_tier(state.db, project_id, body.tier, actor=actor))


@router.get("/projects")
async def list_projects(state: State, _: Admin, org_id: str | None = None) -> ProjectList:
    rows = await tenants.list_projects(state.db, org_id)
    return ProjectList(data=[_project(p) for p in rows])


@router.post("/keys")
async def create_key(body: CreateKey, state: State, actor: Auditor) -> ApiKey:
    served = {m.settings.name for m in state.registry.all()}
    unknown = [m for m in body.allowed_models or [] if m not in served]
    if unknown:
        raise InvalidRequestError(
            f"Unknown model(s) in allowed_models: {', '.join(unknown)}.", param="allowed_models"
        )
    created = await key_service.create_project_key(
        state.db,
        state.admin_auth.pepper,
        project_id=body.project_id,
        name=body.name,
        expires_at=_time(body.expires_at, "expires_at"),
        allowed_models=body.allowed_models,
        limits=_limits(body.limits) if body.limits is not None else None,
        actor=actor,
    )
    return ApiKey(
        id=created.id,
        name=created.name,
        project_id=created.project_id,
        redacted_value=f"{created.secret[:18]}...",
        created_at=_unix(created.created_at),
        expires_at=_unix(created.expires_at) if created.expires_at else None,
        allowed_models=body.allowed_models,
        value=created.secret,
    )


@router.get("/keys")
async def list_keys(state: State, _: Admin, project_id: str | None = None) -> ApiKeyList:
    rows = await key_service.list_keys(state.db, project_id=project_id)
    return ApiKeyList(data=[_key(k) for k in rows])


@router.post("/keys/{key_id}/revoke")
async def revoke_key(key_id: str, state: State, actor: Auditor) -> ApiKey:
    await key_service.revoke_key(state.db, key_id, actor=actor)
    [info] = await key_service.list_keys(state.db, key_id=key_id)
    return _key(info)


@router.get("/limits/{scope}/{scope_id}")
async def get_limits(
    scope: ScopeName, scope_id: str, state: State, _: Admin, model: str = ""
) -> Limits:
    """The scope's limits for every model (`model` unset) or for one model."""
    found = await limit_service.get_limits(state.db, scope, scope_id)
    mine = [s for s in found if s.model == model]
    return _wire_limits(
        mine[0] if mine else limit_service.ScopeLimits(scope, scope_id, LimitValues(), model)
    )


@router.put("/limits/{scope}/{scope_id}")
async def set_limits(
    scope: ScopeName, scope_id: str, body: LimitsBody, state: State, actor: Auditor, model: str = ""
) -> Limits:
    """Replace the scope's limits for every model (`model` unset) or for one model; every
    replica applies them within `limits.cache_ttl_s`."""
    return _wire_limits(
        await limit_service.set_limits(
            state.db, scope, scope_id, _limits(body), model=model, actor=actor
        )
    )


def _limits(body: LimitsBody) -> LimitValues:
    return LimitValues(
        body.requests_per_minute,
        body.tokens_per_minute,
        body.max_concurrent_requests,
        body.tokens_per_day,
        body.spend_per_day_usd,
        body.spend_per_month_usd,
    )


def _wire_limits(s: limit_service.ScopeLimits) -> Limits:
    return Limits(
        scope=s.scope,
        scope_id=s.scope_id,
        model=s.model or None,
        requests_per_minute=s.limits.requests_per_minute,
        tokens_per_minute=s.limits.tokens_per_minute,
        max_concurrent_requests=s.limits.max_concurrent_requests,
        tokens_per_day=s.limits.tokens_per_day,
        spend_per_day_usd=s.limits.spend_per_day_usd,
        spend_per_month_usd=s.limits.spend_per_month_usd,
    )


def _org(o: tenants.OrgInfo) -> Organization:
    return Organization(id=o.id, name=o.name, created_at=_unix(o.created_at))


def _project(p: tenants.ProjectInfo) -> Project:
    return Project(
        id=p.id, org_id=p.org_id, name=p.name, created_at=_unix(p.created_at), tier=p.tier
    )


def _key(k: key_service.KeyInfo) -> ApiKey:
    return ApiKey(
        id=k.id,
        name=k.name,
        project_id=k.project_id,
        redacted_value=k.redacted,
        created_at=_unix(k.created_at),
        expires_at=_unix(k.expires_at) if k.expires_at else None,
        revoked_at=_unix(k.revoked_at) if k.revoked_at else None,
        allowed_models=k.allowed_models,
    )


def _time(seconds: int | None, param: str) -> datetime | None:
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidRequestError(f"'{param}' is not a valid Unix time.", param=param) from exc


def _unix(value: datetime) -> int:
    # SQLite hands back naive datetimes; they were stored as UTC.
    return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())
