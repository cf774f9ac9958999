"""The admin API's wire format (`/admin/v1/...`): organisations, projects, keys, limits,
rollouts.

Shaped like OpenAI's own admin API where it has one (`organization.project`,
`organization.project.api_key`, lists with `object: "list"`); times are Unix seconds.
"""

from __future__ import annotations

from typing import Literal

from headrace.protocol.common import RequestModel, WireModel


class LimitsBody(RequestModel):
    """A scope's limits; null or absent: no limit of that kind. Positive integers only,
    but budgets: positive USD amounts, for all models only."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent_requests: int | None = None
    tokens_per_day: int | None = None
    spend_per_day_usd: float | None = None
    spend_per_month_usd: float | None = None


class CreateOrganization(RequestModel):
    name: str


class CreateProject(RequestModel):
    org_id: str
    name: str
    tier: str = "standard"


class ModifyProject(RequestModel):
    tier: str


class CreateKey(RequestModel):
    project_id: str
    name: str
    expires_at: int | None = None  # Unix seconds
    allowed_models: list[str] | None = None
    limits: LimitsBody | None = None


class Organization(WireModel):
    object: Literal["organization"] = "organization"
    id: str
    name: str
    created_at: int


class Project(WireModel):
    object: Literal["organization.project"] = "organization.project"
    id: str
    org_id: str
    name: str
    created_at: int
    tier: str = "standard"


class ApiKey(WireModel):
    object: Literal["organization.project.api_key"] = "organization.project.api_key"
    id: str
    name: str
    project_id: str
    redacted_value: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None = None
    allowed_models: list[str] | None
    value: str | None = None  # the secret: only in the response that created the key


class Limits(WireModel):
    object: Literal["limits"] = "limits"
    scope: Literal["org", "project", "key"]
    scope_id: str
    model: str | None  # None: these limits apply to every model
    requests_per_minute: int | None
    tokens_per_minute: int | None
    max_concurrent_requests: int | None
    tokens_per_day: int | None
    spend_per_day_usd: float | None = None
    spend_per_month_usd: float | None = None


class OrganizationList(WireModel):
    object: Literal["list"] = "list"
    data: list[Organization]


class ProjectList(WireModel):
    object: Literal["list"] = "list"
    data: list[Project]


class ApiKeyList(WireModel):
    object: Literal["list"] = "list"
    data: list[ApiKey]


class RolloutBody(RequestModel):
    """A model's traffic split between the versions of its deployments, e.g. `{"v1": 95,
    "v2": 5}` for a 5% canary: versions its deployments run, weights >= 0, one positive."""

    weights: dict[str, float]


class Rollout(WireModel):
    object: Literal["model.rollout"] = "model.rollout"
    model: str
    weights: dict[str, float]  # empty: no rollout, every deployment serves
    versions: list[str]  # the versions the model's deployments run
    updated_at: int | None  # Unix seconds; None without a rollout
