"""`/admin/v1/projects/{project_id}/safety-policy`: a project's moderation policy, for
operators (admin keys only). See docs/safety.md."""

from __future__ import annotations

from fastapi import APIRouter

from headrace.api.state import Admin, Auditor, State
from headrace.control import safety as safety_service
from headrace.errors import InvalidRequestError
from headrace.protocol.safety import CategoryPolicy, SafetyPolicy, SafetyPolicyBody
from headrace.safety.policy import policy_from_dict

router = APIRouter(prefix="/admin/v1", tags=["admin"])


@router.get("/projects/{project_id}/safety-policy")
async def get_safety_policy(project_id: str, state: State, _: Admin) -> SafetyPolicy:
    return _wire(await safety_service.get_policy(state.db, project_id))


@router.put("/projects/{project_id}/safety-policy")
async def set_safety_policy(
    project_id: str, body: SafetyPolicyBody, state: State, actor: Auditor
) -> SafetyPolicy:
    """Replace the project's policy (categories left out take the default's); every
    replica applies it within `safety.policy_cache_ttl_s`. Checked whole before anything
    is written."""
    given = {
        name: {field: getattr(value, field) for field in value.model_fields_set}
        for name, value in body.categories.items()
    }
    try:
        policy = policy_from_dict({"enabled": body.enabled, "categories": given})
    except ValueError as exc:
        raise InvalidRequestError(f"Invalid safety policy: {exc}.", param="categories") from exc
    return _wire(await safety_service.set_policy(state.db, project_id, policy, actor=actor))


@router.delete("/projects/{project_id}/safety-policy")
async def reset_safety_policy(project_id: str, state: State, actor: Auditor) -> SafetyPolicy:
    """Drop the project's own policy: the default applies again."""
    return _wire(await safety_service.reset_policy(state.db, project_id, actor=actor))


def _wire(found: safety_service.ProjectPolicy) -> SafetyPolicy:
    p = found.policy
    return SafetyPolicy(
        project_id=found.project_id,
        enabled=p.enabled,
        categories={
            name: CategoryPolicy(input=c.input, output=c.output, threshold=c.threshold)
            for name, c in p.categories.items()
        },
        is_default=found.is_default,
    )
