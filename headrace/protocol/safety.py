"""The admin API's safety-policy wire format (`/admin/v1/projects/{id}/safety-policy`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from headrace.protocol.common import NestedModel, RequestModel, WireModel

Action = Literal["off", "flag", "block"]


class CategoryPolicyBody(NestedModel):
    """One category; an absent field keeps the default policy's value."""

    input: Action | None = None
    output: Action | None = None
    # null or absent: the moderation model's own threshold for the category.
    threshold: float | None = Field(default=None, gt=0, le=1)


class SafetyPolicyBody(RequestModel):
    """A project's whole policy; categories left out take the default policy's."""

    enabled: bool = True
    categories: dict[str, CategoryPolicyBody] = Field(default_factory=dict)


class CategoryPolicy(WireModel):
    input: Action
    output: Action
    threshold: float | None


class SafetyPolicy(WireModel):
    object: Literal["safety_policy"] = "safety_policy"
    project_id: str
    enabled: bool
    categories: dict[str, CategoryPolicy]
    is_default: bool  # no policy of the project's own: the default applies
