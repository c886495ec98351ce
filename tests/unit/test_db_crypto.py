"""Fernet handling for secrets at rest, and the audit log's masking: pure, no database."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tradewind.config import Settings
from tradewind.db import audit
from tradewind.db.crypto import (
    FERNET_KEY_FILE,
    decrypt_text,
    encrypt_text,
    ensure_fernet_key,
    fernet_from_keys,
    generate_key,
    get_fernet,
)
from tradewind.errors import ConfigError, TradewindError


def test_ensure_fernet_key_creates_a_private_file_once(tmp_path: Path) -> None:
    # given a home without a key
    home = tmp_path / "home"
    # when the key is ensured twice
    first = ensure_fernet_key(home)
    second = ensure_fernet_key(home)
    # expect one key, stored readable by the owner only
    path = home / FERNET_KEY_FILE
    assert first == second == path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    fernet_from_keys(first)  # a valid key


def test_get_fernet_prefers_the_configured_key(tmp_path: Path) -> None:
    configured = generate_key()
    ensure_fernet_key(tmp_path)
    settings = Settings(home=tmp_path, core={"fernet_key": configured})
    token, _ = encrypt_text(get_fernet(settings), "x")
    # readable with the configured key, not with the file's
    assert fernet_from_keys(configured).decrypt(token.encode()) == b"x"  # type: ignore[union-attr]
    with pytest.raises(TradewindError):
        decrypt_text(get_fernet(Settings(home=tmp_path)), token, True, what="variable 'v'")


def test_get_fernet_without_any_key(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    # no key: plain text, nothing created
    assert get_fernet(settings) is None
    assert not (tmp_path / FERNET_KEY_FILE).exists()
    # with create: the key file appears and is used from then on
    created = get_fernet(settings, create=True)
    assert created is not None and (tmp_path / FERNET_KEY_FILE).exists()
    token, encrypted = encrypt_text(created, "secret")
    assert encrypted and decrypt_text(get_fernet(settings), token, True, what="v") == "secret"


def test_encrypt_without_a_key_stores_plain_text() -> None:
    assert encrypt_text(None, "plain") == ("plain", False)
    assert encrypt_text(None, None) == (None, False)
    assert decrypt_text(None, "plain", False, what="v") == "plain"


def test_encrypted_text_needs_a_key_and_says_so() -> None:
    token, _ = encrypt_text(fernet_from_keys(generate_key()), "s")
    with pytest.raises(TradewindError, match=r"variable 'v' is encrypted but no Fernet key"):
        decrypt_text(None, token, True, what="variable 'v'")


def test_key_rotation_reads_old_tokens_and_writes_with_the_first_key() -> None:
    old, new = generate_key(), generate_key()
    token, _ = encrypt_text(fernet_from_keys(old), "value")
    both = fernet_from_keys(f"{new}, {old}")
    assert decrypt_text(both, token, True, what="v") == "value"
    fresh, _ = encrypt_text(both, "value")
    assert decrypt_text(fernet_from_keys(new), fresh, True, what="v") == "value"


def test_invalid_keys_are_config_errors_without_echoing_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        fernet_from_keys("not-a-key")
    assert "not-a-key" not in str(info.value)


def test_audit_changes_keep_only_changed_fields_and_mask_secrets() -> None:
    before = {"val": "old-secret", "description": "d", "same": 1}
    after = {"val": "new-secret", "description": "e", "same": 1}
    result = audit.changes(before, after, secret_fields=("val",))
    assert result == {
        "before": {"val": "***", "description": "d"},
        "after": {"val": "***", "description": "e"},
    }
    created = audit.changes(
        None, {"extra": {"token": "t", "region": "eu"}, "host": "h"}, secret_fields=("extra",)
    )
    assert created == {
        "before": None,
        "after": {"extra": {"token": "***", "region": "***"}, "host": "h"},
    }
    assert "secret" not in repr(result)
