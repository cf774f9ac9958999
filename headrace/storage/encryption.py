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

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "enc:v1:"
NONCE_BYTES = 12


class DecryptionError(Exception):
    """A sealed value whose key is not configured, or that was tampered with."""


def key_id(key: bytes) -> str:
    """A short public name of a key: a hash prefix, never the key."""
    return hashlib.sha256(b"headrace-key-id:" + key).hexdigest()[:8]


def parse_key(text: str) -> bytes:
    """A 256-bit key from its URL-safe base64 text (`headrace keys encryption-key` prints one)."""
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except ValueError as exc:
        raise ValueError("encryption key must be URL-safe base64") from exc
    if len(key) != 32:
        raise ValueError(f"encryption key must be 32 bytes, got {len(key)}")
    return key


def new_key_text() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


class ContentCipher:
    """Seals with the first key; opens with any of them. No keys: a pass-through."""

    def __init__(self, keys: list[bytes]) -> None:
        self._keys = {key_id(k): AESGCM(k) for k in keys}
        self._current = key_id(keys[0]) if keys else None

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
        raw = base64.b64decode(body)
        try:
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], self._aad()).decode()
        except Exception as exc:  # cryptography raises InvalidTag
            raise DecryptionError(f"sealed value failed authentication (key {kid})") from exc

    def needs_reseal(self, stored: str) -> bool:
        """True for plaintext or a value sealed with an older key: rotation re-seals these."""
        if self._current is None:
            return False
        return not stored.startswith(f"{PREFIX}{self._current}:")

    @staticmethod
    def _aad() -> bytes:
        return b"headrace-content-v1"
