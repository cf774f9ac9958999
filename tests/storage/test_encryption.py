"""ContentCipher: sealing round trips, tampering is caught, keys rotate; `reseal` re-seals
stored values with the newest key, in batches, and can be run again."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import select

from headrace.storage import review
from headrace.storage.database import Database
from headrace.storage.encryption import (
    PREFIX,
    SEALED_COLUMNS,
    ContentCipher,
    DecryptionError,
    key_id,
    new_key_text,
    parse_key,
    reseal,
)
from headrace.storage.schema import ReviewItem

OLD, NEW = new_key_text(), new_key_text()


def test_round_trip_hides_the_plaintext_and_names_the_key() -> None:
    cipher = ContentCipher.from_texts(NEW)
    sealed = cipher.seal("the secret plan ☂")
    assert sealed.startswith(f"{PREFIX}{key_id(parse_key(NEW))}:")
    assert "secret" not in sealed
    assert cipher.open(sealed) == "the secret plan ☂"
    assert cipher.seal("same") != cipher.seal("same")  # a fresh nonce each time


def test_tampered_or_truncated_values_fail_authentication() -> None:
    cipher = ContentCipher.from_texts(NEW)
    sealed = cipher.seal("pay alice 10")
    head, _, body = sealed.rpartition(":")
    raw = bytearray(base64.b64decode(body))
    raw[-1] ^= 1
    with pytest.raises(DecryptionError):
        cipher.open(f"{head}:{base64.b64encode(bytes(raw)).decode()}")
    with pytest.raises(DecryptionError):
        cipher.open(sealed[:-8])
    with pytest.raises(DecryptionError):
        cipher.open(f"{head}:not base64!")


def test_a_value_sealed_with_an_unknown_key_does_not_open() -> None:
    sealed = ContentCipher.from_texts(OLD).seal("x")
    with pytest.raises(DecryptionError, match=key_id(parse_key(OLD))):
        ContentCipher.from_texts(NEW).open(sealed)


def test_rotation_seals_with_the_new_key_and_opens_with_both() -> None:
    before = ContentCipher.from_texts(OLD).seal("old content")
    rotated = ContentCipher.from_texts(NEW, [OLD])
    assert rotated.open(before) == "old content"
    assert rotated.needs_reseal(before)
    after = rotated.seal("new content")
    assert not rotated.needs_reseal(after)
    assert rotated.current_key_id == key_id(parse_key(NEW))
    assert ContentCipher.from_texts(NEW).open(after) == "new content"


def test_without_keys_values_pass_through_and_plaintext_still_opens() -> None:
    plain = ContentCipher([])
    assert not plain.enabled
    assert plain.seal("hello") == "hello"
    assert plain.open("hello") == "hello"
    assert not plain.needs_reseal("hello")
    # Plaintext stored before encryption was turned on opens as it is, and wants sealing.
    assert ContentCipher.from_texts(NEW).open("hello") == "hello"
    assert ContentCipher.from_texts(NEW).needs_reseal("hello")
    # Old keys only: opens what they sealed, seals nothing new.
    opener = ContentCipher.from_texts(None, [OLD])
    assert opener.open(ContentCipher.from_texts(OLD).seal("x")) == "x"
    assert opener.seal("y") == "y"


def test_bad_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        parse_key(base64.urlsafe_b64encode(b"short").decode())
    with pytest.raises(ValueError, match="base64"):
        parse_key("!!!")


async def test_reseal_moves_every_value_to_the_new_key_in_batches(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    old = ContentCipher.from_texts(OLD)
    async with db.session.begin() as session:
        for i in range(7):
            cipher = old if i % 2 else ContentCipher([])  # some sealed, some plaintext
            await review.enqueue_review(session, cipher, _flagged(f"content {i}"))
    new = ContentCipher.from_texts(NEW, [OLD])
    [sealed] = [c for c in SEALED_COLUMNS if c.table == "review_items"]
    assert await reseal(db.session, new, sealed, batch=3) == 7
    assert await reseal(db.session, new, sealed, batch=3) == 0  # resumable: nothing left
    async with db.session() as session:
        stored = list(await session.scalars(select(ReviewItem.content)))
    assert all(s is not None and not new.needs_reseal(s) for s in stored)
    only_new = ContentCipher.from_texts(NEW)
    assert sorted(only_new.open(s) for s in stored if s) == [f"content {i}" for i in range(7)]
    await db.close()


def _flagged(content: str) -> review.Flagged:
    return review.Flagged(
        request_id="req_1",
        org_id="org_1",
        project_id="proj_1",
        stage="input",
        categories=["harassment"],
        scores={"harassment": 0.6},
        content=content,
    )
