"""`/admin/v1/review-items`: the human review queue of flagged-but-not-blocked content."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from headrace.api.state import Admin, Auditor, State
from headrace.control import review as review_service
from headrace.protocol.oversight import ReviewDecision, ReviewItem, ReviewItemList
from headrace.storage.review import Verdict

router = APIRouter(prefix="/admin/v1", tags=["admin"])


@router.get("/review-items")
async def list_review_items(
    state: State,
    _: Admin,
    status: str | None = "pending",
    project_id: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> ReviewItemList:
    """The queue oldest first (`status=pending` by default; `after=<last_id>` pages on)."""
    rows, has_more = await review_service.list_items(
        state.db, state.cipher, status=status, project_id=project_id, after=after, limit=limit
    )
    data = [wire_item(r) for r in rows]
    return ReviewItemList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=has_more,
    )


@router.get("/review-items/{item_id}")
async def get_review_item(item_id: str, state: State, _: Admin) -> ReviewItem:
    return wire_item(await review_service.get_item(state.db, state.cipher, item_id))


@router.post("/review-items/{item_id}/approve")
async def approve_review_item(
    item_id: str, state: State, actor: Auditor, body: ReviewDecision | None = None
) -> ReviewItem:
    return await _decide(state, item_id, "approved", body, actor)


@router.post("/review-items/{item_id}/reject")
async def reject_review_item(
    item_id: str, state: State, actor: Auditor, body: ReviewDecision | None = None
) -> ReviewItem:
    return await _decide(state, item_id, "rejected", body, actor)


async def _decide(
    state: State, item_id: str, verdict: Verdict, body: ReviewDecision | None, actor: Auditor
) -> ReviewItem:
    note = body.note if body is not None else None
    decided = await review_service.decide(
        state.db, state.cipher, item_id, verdict, note=note, actor=actor
    )
    return wire_item(decided)


def wire_item(v: review_service.ReviewView) -> ReviewItem:
    return ReviewItem(
        id=v.id,
        created_at=unix(v.created_at),
        request_id=v.request_id,
        org_id=v.org_id,
        project_id=v.project_id,
        api_key_id=v.api_key_id,
        model=v.model,
        stage=v.stage,
        categories=v.categories,
        scores=v.scores,
        content=v.content,
        status=v.status,
        reviewer=v.reviewer,
        decided_at=unix(v.decided_at) if v.decided_at else None,
        note=v.note,
    )


def unix(value: datetime) -> int:
    # SQLite hands back naive datetimes; they were stored as UTC.
    return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())
