"""The human review queue for operators: listing flagged items and giving verdicts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from headrace.errors import ConflictError, InvalidRequestError, NotFoundError
from headrace.storage import audit, review
from headrace.storage.database import Database
from headrace.storage.encryption import ContentCipher, DecryptionError
from headrace.storage.schema import ReviewItem

MAX_PAGE = 1000
MAX_NOTE = 2000
ACTIONS = {"approved": "review_item.approve", "rejected": "review_item.reject"}


@dataclass(frozen=True, slots=True)
class ReviewView:
    id: str
    created_at: datetime
    request_id: str
    org_id: str
    project_id: str
    api_key_id: str | None
    model: str | None
    stage: str
    categories: list[str]
    scores: dict[str, float]
    content: str | None  # None: not kept (retention 0) or sealed with a key not configured
    status: str
    reviewer: str | None
    decided_at: datetime | None
    note: str | None


async def enqueue(db: Database, cipher: ContentCipher, flagged: review.Flagged) -> str:
    """Queue a flagged item in a transaction of its own; its id."""
    async with db.session.begin() as session:
        item = await review.enqueue_review(session, cipher, flagged)
        return item.id


async def list_items(
    db: Database,
    cipher: ContentCipher,
    *,
    status: str | None = "pending",
    project_id: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> tuple[list[ReviewView], bool]:
    """A page of items, oldest first, and whether more follow."""
    if status is not None and status not in review.STATUSES:
        raise InvalidRequestError(
            f"'status' must be one of {', '.join(review.STATUSES)}.", param="status"
        )
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequestError(f"'limit' must be 1 to {MAX_PAGE}.", param="limit")
    async with db.session() as session:
        rows = await review.list_items(
            session,
            status=status,  # checked against STATUSES above
            project_id=project_id,
            after=after,
            limit=limit + 1,
        )
    return [view(r, cipher) for r in rows[:limit]], len(rows) > limit


async def get_item(db: Database, cipher: ContentCipher, item_id: str) -> ReviewView:
    async with db.session() as session:
        return view(await _found(session, item_id), cipher)


async def decide(
    db: Database,
    cipher: ContentCipher,
    item_id: str,
    verdict: review.Verdict,
    *,
    note: str | None,
    actor: audit.Actor,
) -> ReviewView:
    """Approve or reject a pending item; the verdict and its audit event in one transaction."""
    if note is not None and len(note) > MAX_NOTE:
        raise InvalidRequestError(f"'note' must be at most {MAX_NOTE} characters.", param="note")
    async with db.session.begin() as session:
        item = await _found(session, item_id)
        try:
            await review.decide(session, item, verdict, reviewer=actor.name, note=note)
        except review.AlreadyDecided as exc:
            raise ConflictError(f"Review item {item_id!r} is already {item.status}.") from exc
        await audit.record(
            session,
            actor,
            ACTIONS[verdict],
            audit.Target("review_item", item_id),
            before={"status": "pending"},
            after={"status": verdict, "reviewer": actor.name, "note": note},
        )
        return view(item, cipher)


async def _found(session: AsyncSession, item_id: str) -> ReviewItem:
    item = await review.get(session, item_id)
    if item is None:
        raise NotFoundError(f"No review item with id {item_id!r}.", param="item_id")
    return item


def view(item: ReviewItem, cipher: ContentCipher) -> ReviewView:
    content = None
    if item.content is not None:
        try:
            content = cipher.open(item.content)
        except DecryptionError:
            content = None  # sealed with a key no longer configured
    return ReviewView(
        item.id,
        item.created_at,
        item.request_id,
        item.org_id,
        item.project_id,
        item.api_key_id,
        item.model,
        item.stage,
        list(item.categories),
        dict(item.scores),
        content,
        item.status,
        item.reviewer,
        item.decided_at,
        item.note,
    )
