"""`/admin/v1/projects/{project_id}/privacy-policy`: a project's PII mode and injection
action, for operators (admin keys only). See docs/safety.md."""

from __future__ import annotations

from fastapi import APIRouter

from headrace.api.state import Admin, Auditor, State
from headrace.control import privacy as privacy_service
from headrace.protocol.privacy import PrivacyPolicy, PrivacyPolicyBody
from headrace.safety.privacy import checked_policy

router = APIRouter(prefix="/admin/v1", tags=["admin"])


@router.get("/projects/{project_id}/privacy-policy")
async def get_privacy_policy(project_id: str, state: State, _: Admin) -> PrivacyPolicy:
    return _wire(await privacy_service.get_policy(state.db, project_id, state.privacy.defaults))


@router.put("/projects/{project_id}/privacy-policy")
async def set_privacy_policy(
    project_id: str, body: PrivacyPolicyBody, state: State, actor: Auditor
) -> PrivacyPolicy:
    """Replace the project's policy; every replica applies it within
    `privacy.policy_cache_ttl_s`."""
    defaults = state.privacy.defaults
    policy = checked_policy(
        pii_mode=body.pii_mode if body.pii_mode is not None else defaults.pii_mode,
        pii_kinds=body.pii_kinds,
        injection_threshold=(
            body.injection_threshold
            if body.injection_threshold is not None
            else defaults.injection_threshold
        ),
        injection_action=(
            body.injection_action
            if body.injection_action is not None
            else defaults.injection_action
        ),
    )
    return _wire(await privacy_service.set_policy(state.db, project_id, policy, actor=actor))


@router.delete("/projects/{project_id}/privacy-policy")
async def reset_privacy_policy(project_id: str, state: State, actor: Auditor) -> PrivacyPolicy:
    """Drop the project's own policy: the server's defaults apply again."""
    defaults = state.privacy.defaults
    return _wire(await privacy_service.reset_policy(state.db, project_id, defaults, actor=actor))


def _wire(found: privacy_service.ProjectPolicy) -> PrivacyPolicy:
    p = found.policy
    return PrivacyPolicy(
        project_id=found.project_id,
        pii_mode=p.pii_mode,
        pii_kinds=None if p.pii_kinds is None else list(p.pii_kinds),
        injection_threshold=p.injection_threshold,
        injection_action=p.injection_action,
        is_default=found.is_default,
    )
