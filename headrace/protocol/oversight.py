"""The admin API's oversight shapes: audit events, review items and key suspensions.

Lists are `{"object": "list", "data": [...], "has_more": ...}` as elsewhere; times are
Unix seconds.
"""

from __future__ import annotations

from typing import Any, Literal

from headrace.protocol.common import RequestModel, WireModel


class AuditTarget(WireModel):
    type: str
    id: str


class AuditSource(WireModel):
    ip: str | None
    user_agent: str | None
    request_id: str | None


class AuditEvent(WireModel):
    object: Literal["audit_event"] = "audit_event"
    id: int
    created_at: int
    actor: str  # an admin credential id, `cli:<os user>` or `system...`
    action: str  # e.g. `key.create`, `limits.set`, `review_item.approve`
    target: AuditTarget
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    source: AuditSource


class AuditEventList(WireModel):
    object: Literal["list"] = "list"
    data: list[AuditEvent]
    first_id: int | None
    last_id: int | None  # pass as `after` for the next page
    has_more: bool


class ReviewItem(WireModel):
    object: Literal["review_item"] = "review_item"
    id: str
    created_at: int
    request_id: str
    org_id: str
    project_id: str
    api_key_id: str | None
    model: str | None
    stage: str  # input | output
    categories: list[str]
    scores: dict[str, float]
    content: str | None  # null: not kept (retention 0 days) or its key is not configured
    status: str  # pending | approved | rejected
    reviewer: str | None
    decided_at: int | None
    note: str | None


class ReviewItemList(WireModel):
    object: Literal["list"] = "list"
    data: list[ReviewItem]
    first_id: str | None
    last_id: str | None
    has_more: bool


class ReviewDecision(RequestModel):
    note: str | None = None


class KeySignals(WireModel):
    """What the answering replica has measured of one key."""

    spike_ratio: float
    block_rate: float | None


class Suspension(WireModel):
    object: Literal["key_suspension"] = "key_suspension"
    id: str
    api_key_id: str
    reason: str  # token_spike | block_rate | manual
    detail: dict[str, Any]
    created_at: int
    until: int
    created_by: str
    lifted_at: int | None = None
    lifted_by: str | None = None


class SuspensionList(WireModel):
    object: Literal["list"] = "list"
    data: list[Suspension]
    signals: KeySignals | None = None  # with `key_id`: this replica's view of that key


class CreateSuspension(RequestModel):
    key_id: str
    duration_s: float
    note: str | None = None


class SuspensionLifted(WireModel):
    object: Literal["key_suspension.deleted"] = "key_suspension.deleted"
    id: str  # the key's id
    deleted: bool  # false: the key had no suspension in force
    lifted: list[Suspension]
