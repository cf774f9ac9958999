"""The human review queue: flagged-but-not-blocked content, and each item's verdict.

    item = await review.enqueue_review(session, cipher, Flagged(...))   # moderation's flag
    await review.decide(session, item_id, "approved", reviewer="adm_...", note="fine")

Content is sealed with the content cipher (plaintext when no key is configured), and not
stored at all for a project whose retention is 0 days.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from headrace.storage.encryption import ContentCipher
from headrace.storage.schema import RetentionRow, ReviewItem
from headrace.storage.tenancy import new_id, now

Stage = Literal["input", "output"]
Status = Literal["pending", "approved", "rejected"]
Verdict = Literal["approved", "rejected"]
STATUSES: tuple[Status, ...] = ("pending", "approved", "rejected")


@dataclass(frozen=True, slots=True)
class Flagged:
    """What moderation hands over when it flags without blocking."""

    request_id: str
    org_id: str
    project_id: str
    stage: Stage
    categories: Sequence[str]
    scores: Mapping[str, float]
    content: str
    api_key_id: str | None = None
    model: str | None = None


class AlreadyDecided(Exception):
    """The item has its verdict; a verdict is given once."""


async def enqueue_review(
    session: AsyncSession, cipher: ContentCipher, flagged: Flagged
) -> ReviewItem:
    """A pending review item for `flagged`, in `session`'s transaction."""
    retention = await session.get(RetentionRow, flagged.project_id)
    keep_content = retention is None or retention.days > 0
    item = ReviewItem(
        id=new_id("rev"),
        created_at=now(),
        request_id=flagged.request_id,
        org_id=flagged.org_id,
        project_id=flagged.project_id,
        api_key_id=flagged.api_key_id,
        model=flagged.model,
        stage=flagged.stage,
        categories=list(flagged.categories),
        scores={k: float(v) for k, v in flagged.scores.items()},
        content=cipher.seal(flagged.content) if keep_content else None,
        status="pending",
    )
    session.add(item)
    await session.flush()
    return item


async def get(session: AsyncSession, item_id: str) -> ReviewItem | None:
    return await session.get(ReviewItem, item_id)


async def list_items(
    session: AsyncSession,
    *,
    status: Status | None = None,
    project_id: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> list[ReviewItem]:
    """Items oldest first (the queue's order), from after the item `after` (a cursor)."""
    stmt = select(ReviewItem)
    if status is not None:
        stmt = stmt.where(ReviewItem.status == status)
    if project_id is not None:
        stmt = stmt.where(ReviewItem.project_id == project_id)
    if after is not None:
        cursor = await session.get(ReviewItem, after)
        if cursor is not None:
            stmt = stmt.where(
                (ReviewItem.created_at > cursor.created_at)
                | ((ReviewItem.created_at == cursor.created_at) & (ReviewItem.id > cursor.id))
            )
    stmt = stmt.order_by(ReviewItem.created_at, ReviewItem.id).limit(limit)
    return list(await session.scalars(stmt))


async def decide(
    session: AsyncSession, item: ReviewItem, verdict: Verdict, *, reviewer: str, note: str | None
) -> ReviewItem:
    """Record the verdict on a pending item; `AlreadyDecided` when it has one."""
    if item.status != "pending":
        raise AlreadyDecided(item.id)
    item.status = verdict
    item.reviewer = reviewer
    item.note = note
    item.decided_at = now()
    await session.flush()
    return item
