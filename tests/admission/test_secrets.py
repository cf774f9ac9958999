"""Key material: format, lookup prefix, peppered hash, pepper file."""

from __future__ import annotations

import stat
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from headrace.admission.secrets import (
    API_KEY_PREFIX,
    hash_key,
    load_or_create_pepper,
    lookup_prefix,
    new_key,
    verify_key,
)


def test_new_key_has_prefix_and_lookup_part() -> None:
    key, prefix = new_key(API_KEY_PREFIX)
    assert key.startswith("sk-hr-")
    assert len(key) == len("sk-hr-") + 44
    assert lookup_prefix(key, API_KEY_PREFIX) == prefix
    assert new_key(API_KEY_PREFIX)[0] != key


def test_hash_depends_on_pepper_and_verifies() -> None:
    key, _ = new_key(API_KEY_PREFIX)
    stored = hash_key(key, "pepper-a")
    assert stored != hash_key(key, "pepper-b")
    assert key not in stored
    assert verify_key(key, stored, "pepper-a")
    assert not verify_key(key, stored, "pepper-b")
    assert not verify_key(key + "x", stored, "pepper-a")


@given(st.text(max_size=80))
def test_malformed_keys_have_no_lookup_prefix(text: str) -> None:
    key, _ = new_key(API_KEY_PREFIX)
    if text != key:
        prefix = lookup_prefix(text, API_KEY_PREFIX)
        assert prefix is None or (text.startswith(API_KEY_PREFIX) and len(text) == len(key))


def test_other_environment_keys_are_rejected() -> None:
    key, _ = new_key("hr-admin-")
    assert lookup_prefix(key, API_KEY_PREFIX) is None


def test_pepper_is_created_once_and_private(tmp_path: Path) -> None:
    first = load_or_create_pepper(tmp_path)
    assert load_or_create_pepper(tmp_path) == first
    mode = stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode)
    assert mode == 0o600
