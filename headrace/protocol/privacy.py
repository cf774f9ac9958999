"""The admin API's privacy-policy wire format (`/admin/v1/projects/{id}/privacy-policy`)."""

from __future__ import annotations

from typing import Literal

from headrace.protocol.common import RequestModel, WireModel


class PrivacyPolicyBody(RequestModel):
    """A project's whole policy; an absent field takes the server's default."""

    pii_mode: str | None = None  # log | store | mask
    pii_kinds: list[str] | None = None  # null: every kind
    injection_threshold: float | None = None  # 0 to 1
    injection_action: str | None = None  # flag | block


class PrivacyPolicy(WireModel):
    object: Literal["privacy_policy"] = "privacy_policy"
    project_id: str
    pii_mode: str
    pii_kinds: list[str] | None
    injection_threshold: float
    injection_action: str
    is_default: bool  # no policy of the project's own: the server's defaults
