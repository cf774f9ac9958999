"""Stored content sealed with AES-GCM when an encryption key is configured.

A sealed value names the key that sealed it (`enc:v1:<key id>:<base64 nonce+ciphertext>`), so
keys rotate without a stop: seal with the newest key, open with whichever one a value names,
re-seal old rows at leisure. Values without the prefix are plaintext from before encryption was
turned on and open as they are.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import column, select, table, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

PREFIX = "enc:v1:"
BYTES_PREFIX = b"hrenc:v1:"  # `seal_bytes`: the same versioning, for binary content
NONCE_BYTES = 12


class DecryptionError(Exception):
    """A sealed value whose key is not configured, or that was tampered with."""


def key_id(key: bytes) -> str:
    """A short public name of a key: a hash prefix, never the key."""
    return hashlib.sha256(b"headrace-key-id:" + key).hexdigest()[:8]


def parse_key(text: str) -> bytes:
    """A 256-bit key from its URL-safe base64 text (`headrace encryption new-key` prints one)."""
    try:
        padded = text.strip() + "=" * (-len(text.strip()) % 4)
        key = base64.b64decode(padded, altchars=b"-_", validate=True)
    except ValueError as exc:
        raise ValueError("encryption key must be URL-safe base64") from exc
    if len(key) != 32:
        raise ValueError(f"encryption key must be 32 bytes, got {len(key)}")
    return key


def new_key_text() -> str:
    """A fresh random key as the text `parse_key` reads."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


class ContentCipher:
    """Seals with the first key; opens with any of them. No keys: a pass-through."""

    def __init__(self, keys: list[bytes], *, sealing: bool = True) -> None:
        self._keys = {key_id(k): AESGCM(k) for k in keys}
        self._current = key_id(keys[0]) if keys and sealing else None

    @classmethod
    def from_texts(cls, current: str | None, old: Sequence[str] = ()) -> ContentCipher:
        """The cipher of the configured keys: seal with `current`, also open with `old`.
        Old keys without a current one only open (a pass-through for new values)."""
        if current is None:
            return cls([parse_key(k) for k in old], sealing=False)
        return cls([parse_key(current), *(parse_key(k) for k in old)])

    @property
    def current_key_id(self) -> str | None:
        return self._current

    @property
    def enabled(self) -> bool:
        return self._current is not None

    def seal(self, plaintext: str) -> str:
        if self._current is None:
            return plaintext
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self._current].encrypt(nonce, plaintext.encode(), self._aad())
        body = base64.b64encode(nonce + sealed).decode()
        return f"{PREFIX}{self._current}:{body}"

    def open(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored
        kid, _, body = stored[len(PREFIX) :].partition(":")
        aead = self._keys.get(kid)
        if aead is None:
            raise DecryptionError(f"no configured encryption key has id {kid}")
        try:
            raw = base64.b64decode(body, validate=True)
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], self._aad()).decode()
        except Exception as exc:  # cryptography raises InvalidTag
            raise DecryptionError(f"sealed value failed authentication (key {kid})") from exc

    def seal_bytes(self, data: bytes) -> bytes:
        """`seal` for bytes: `hrenc:v1:<key id>:<nonce><ciphertext>`, binary, no base64."""
        if self._current is None:
            return data
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self._current].encrypt(nonce, data, self._aad())
        return b"%s%s:%s%s" % (BYTES_PREFIX, self._current.encode(), nonce, sealed)

    def open_bytes(self, stored: bytes) -> bytes:
        """What `seal_bytes` sealed; bytes without the prefix open as they are."""
        if not stored.startswith(BYTES_PREFIX):
            return stored
        kid, _, raw = stored[len(BYTES_PREFIX) :].partition(b":")
        aead = self._keys.get(kid.decode("ascii", "replace"))
        if aead is None:
            raise DecryptionError(f"no configured encryption key has id {kid!r}")
        try:
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], self._aad())
        except Exception as exc:  # cryptography raises InvalidTag
            raise DecryptionError(f"sealed bytes failed authentication (key {kid!r})") from exc

    def needs_reseal(self, stored: str) -> bool:
        """True for plaintext or a value sealed with an older key: rotation re-seals these."""
        if self._current is None:
            return False
        return not stored.startswith(f"{PREFIX}{self._current}:")

    @staticmethod
    def _aad() -> bytes:
        return b"headrace-content-v1"


@dataclass(frozen=True, slots=True)
class SealedColumn:
    """A text column holding sealed values, and the unique column that pages through it."""

    table: str
    key: str
    column: str


# Every column that stores content through a ContentCipher: rotation re-seals these.
SEALED_COLUMNS = (
    SealedColumn("review_items", "id", "content"),
    SealedColumn("conversation_items", "seq", "content"),
    SealedColumn("responses", "id", "body"),
    SealedColumn("response_items", "seq", "content"),
)


async def reseal(
    sessions: async_sessionmaker[AsyncSession],
    cipher: ContentCipher,
    sealed: SealedColumn,
    *,
    batch: int = 500,
    after: object = None,
) -> int:
    """Re-seal with the newest key every value of `sealed` that is plaintext or sealed with
    an older key, `batch` rows per transaction; returns how many changed. Resumable: a
    second run skips what the first finished, and a row changed meanwhile is left as it
    is (the update matches the old value)."""
    if not cipher.enabled:
        return 0
    t = table(sealed.table, column(sealed.key), column(sealed.column))
    key, value = t.c[sealed.key], t.c[sealed.column]
    changed = 0
    while True:
        async with sessions.begin() as session:
            stmt = select(key, value).where(value.is_not(None)).order_by(key).limit(batch)
            if after is not None:
                stmt = stmt.where(key > after)
            rows = (await session.execute(stmt)).all()
            for row_key, stored in rows:
                if not cipher.needs_reseal(stored):
                    continue
                fresh = cipher.seal(cipher.open(stored))
                await session.execute(
                    update(t).where(key == row_key, value == stored).values({value: fresh})
                )
                changed += 1
        if len(rows) < batch:
            return changed
        after = rows[-1][0]
