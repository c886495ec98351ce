"""Fernet encryption of secrets at rest (connection passwords and extras, variable values).

The key comes from ``[core] fernet_key`` (one key, or several comma-separated: the first
encrypts, every one decrypts, which is how keys are rotated). When none is configured,
:func:`ensure_fernet_key` creates one on first start in ``$TRADEWIND_HOME/fernet.key``
(readable by its owner only), and :func:`get_fernet` uses that file. With neither, values are
stored in plain text and flagged ``is_encrypted = false``.

Example::

    ensure_fernet_key(settings.home)       # standalone / db migrate do this on first start
    fernet = get_fernet(settings)          # MultiFernet, or None when there is no key at all
    token, encrypted = encrypt_text(fernet, "s3cret")
    decrypt_text(fernet, token, encrypted, what="variable 'api_key'")  # 's3cret'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from tradewind.errors import ConfigError, TradewindError

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

    from tradewind.config import Settings

__all__ = [
    "FERNET_KEY_FILE",
    "decrypt_text",
    "encrypt_text",
    "ensure_fernet_key",
    "fernet_from_keys",
    "generate_key",
    "get_fernet",
]

#: Name of the generated key file inside ``$TRADEWIND_HOME``.
FERNET_KEY_FILE = "fernet.key"


def generate_key() -> str:
    """A new random Fernet key (url-safe base64 text)."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode("ascii")


def ensure_fernet_key(home: Path) -> str:
    """The key in ``home/fernet.key``, creating the file (mode 0600) when it does not exist.

    Creation is atomic (``O_EXCL``): two processes starting at once end up with the same key.
    """
    path = Path(home) / FERNET_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = generate_key()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process won the race; read its key below
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(key + "\n")
    return _read_key_file(path)


def _read_key_file(path: Path) -> str:
    key = path.read_text(encoding="ascii").strip()
    if not key:
        raise ConfigError(
            "core.fernet_key", "<empty>", f"a Fernet key in {path}", source=f"key file {path}"
        )
    return key


def fernet_from_keys(keys: str) -> MultiFernet:
    """A MultiFernet over comma-separated ``keys`` (the first one encrypts).

    Raises :class:`ConfigError` when a key is not a valid Fernet key.
    """
    from cryptography.fernet import Fernet, MultiFernet

    fernets = []
    for part in keys.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            fernets.append(Fernet(part.encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            raise ConfigError(
                "core.fernet_key", "***", "Fernet keys: 32 bytes, url-safe base64-encoded"
            ) from None
    if not fernets:
        raise ConfigError("core.fernet_key", "", "at least one Fernet key")
    return MultiFernet(fernets)


def get_fernet(settings: Settings, *, create: bool = False) -> MultiFernet | None:
    """The encryption to use: ``core.fernet_key`` if set, else ``$TRADEWIND_HOME/fernet.key``.

    With ``create`` the key file is generated when neither exists; otherwise None is returned
    then, and secrets are stored in plain text.
    """
    configured = settings.core.fernet_key
    if configured:
        return fernet_from_keys(configured)
    path = Path(settings.home) / FERNET_KEY_FILE
    if create:
        return fernet_from_keys(ensure_fernet_key(Path(settings.home)))
    if path.exists():
        return fernet_from_keys(_read_key_file(path))
    return None


def encrypt_text(fernet: MultiFernet | None, value: str | None) -> tuple[str | None, bool]:
    """``(stored text, is_encrypted)`` for ``value``: a Fernet token when there is a key."""
    if value is None:
        return None, False
    if fernet is None:
        return value, False
    return fernet.encrypt(value.encode("utf-8")).decode("ascii"), True


def decrypt_text(
    fernet: MultiFernet | None, stored: str | None, is_encrypted: bool, *, what: str
) -> str | None:
    """The plain text of a stored value; ``what`` names it in errors ("variable 'x'").

    Raises :class:`TradewindError` when the value is encrypted and there is no key, or the key
    does not decrypt it (a changed or lost key).
    """
    if stored is None or not is_encrypted:
        return stored
    if fernet is None:
        raise TradewindError(
            f"{what} is encrypted but no Fernet key is configured: set [core] fernet_key or "
            f"restore $TRADEWIND_HOME/{FERNET_KEY_FILE}"
        )
    from cryptography.fernet import InvalidToken

    try:
        return fernet.decrypt(stored.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise TradewindError(
            f"{what} cannot be decrypted with the configured Fernet key(s); it was encrypted "
            "with another key (add the old key after the new one in [core] fernet_key)"
        ) from None
