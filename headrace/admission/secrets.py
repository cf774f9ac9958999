"""API-key material: generation, peppered hashing and constant-time verification.

A key is `sk-hr-` + 12 lookup characters + 32 secret characters (base62). The lookup part
is stored in clear to find the row; only an HMAC-SHA256 of the whole key under a server-side
pepper is stored, so a stolen database does not yield usable keys.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import string
from hashlib import sha256
from pathlib import Path

_ALPHABET = string.ascii_letters + string.digits
_ALPHABET_SET = frozenset(_ALPHABET)
LOOKUP_CHARS = 12
SECRET_CHARS = 32
API_KEY_PREFIX = "sk-hr-"
ADMIN_KEY_PREFIX = "hr-admin-"


def new_key(kind_prefix: str) -> tuple[str, str]:
    """A new key and its lookup prefix (what is stored in clear to find it)."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(LOOKUP_CHARS + SECRET_CHARS))
    return kind_prefix + body, body[:LOOKUP_CHARS]


def lookup_prefix(key: str, kind_prefix: str) -> str | None:
    """The lookup part of a well-formed key, or None for anything malformed."""
    if not key.startswith(kind_prefix):
        return None
    body = key[len(kind_prefix) :]
    if len(body) != LOOKUP_CHARS + SECRET_CHARS or not _ALPHABET_SET.issuperset(body):
        return None
    return body[:LOOKUP_CHARS]


def hash_key(key: str, pepper: str) -> str:
    return hmac.new(pepper.encode(), key.encode(), sha256).hexdigest()


def verify_key(key: str, stored_hash: str, pepper: str) -> bool:
    return hmac.compare_digest(hash_key(key, pepper), stored_hash)


def load_or_create_pepper(data_dir: Path) -> str:
    """The pepper kept in `<data_dir>/secrets.json` (mode 0600), created on first use."""
    path = data_dir / "secrets.json"
    if path.exists():
        return str(json.loads(path.read_text())["key_pepper"])
    data_dir.mkdir(parents=True, exist_ok=True)
    pepper = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return str(json.loads(path.read_text())["key_pepper"])
    with os.fdopen(fd, "w") as fh:
        json.dump({"key_pepper": pepper}, fh)
    return pepper
