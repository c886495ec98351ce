"""Where connections and variables come from, and which secrets logs must hide.

Lookups walk an ordered chain and the first hit wins:

1. environment variables: ``TRADEWIND_CONN_<CONN_ID>`` (a connection URI or a JSON object) and
   ``TRADEWIND_VAR_<KEY>``, with the id or key upper-cased;
2. the same with the ``AIRFLOW_CONN_`` / ``AIRFLOW_VAR_`` prefixes, so environments set up for
   Airflow keep working unchanged;
3. backends added with :func:`register_backend`, in the order they were registered (the engine
   registers its metadata-database backend; task runtimes register one that asks the server).

A backend is any object with ``get_connection(conn_id) -> Connection | None`` and
``get_variable(key) -> str | None`` (see :class:`SecretsBackend`).

Masking: :func:`mask_secret` adds values to a process-wide set and :func:`redact` replaces each
of them in a text with ``***``. Every connection looked up here has its password (and extra
fields with secret-sounding names) masked; so has every variable whose key sounds secret
(contains password, secret, token, api_key, private_key …).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

from tradewind.errors import ConnectionNotFound, TradewindError, VariableNotFound
from tradewind.sdk.connection import Connection, is_sensitive_key

__all__ = [
    "CONN_ENV_PREFIXES",
    "MIN_MASKED_LENGTH",
    "VAR_ENV_PREFIXES",
    "EnvironmentBackend",
    "SecretsBackend",
    "clear_masked_secrets",
    "get_connection",
    "get_variable",
    "is_sensitive_key",
    "mask_secret",
    "masked_secrets",
    "redact",
    "register_backend",
    "registered_backends",
    "unregister_backend",
]

#: Environment prefixes for connections, in lookup order.
CONN_ENV_PREFIXES = ("TRADEWIND_CONN_", "AIRFLOW_CONN_")
#: Environment prefixes for variables, in lookup order.
VAR_ENV_PREFIXES = ("TRADEWIND_VAR_", "AIRFLOW_VAR_")
#: Shorter values are not masked: hiding every "abc" in a log would make it unreadable while
#: protecting nothing a guess would not find.
MIN_MASKED_LENGTH = 4
_REDACTED = "***"


@runtime_checkable
class SecretsBackend(Protocol):
    """A source of connections and variables; return None for "not here, ask the next one"."""

    def get_connection(self, conn_id: str) -> Connection | None:
        """The connection with this id, or None."""
        ...

    def get_variable(self, key: str) -> str | None:
        """The variable's raw string value, or None."""
        ...


class EnvironmentBackend:
    """Reads ``TRADEWIND_CONN_*`` / ``TRADEWIND_VAR_*`` (then ``AIRFLOW_*``) variables.

    ``environ`` defaults to ``os.environ`` read at lookup time; tests pass a dict.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    def _env(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def get_connection(self, conn_id: str) -> Connection | None:
        """Parse ``TRADEWIND_CONN_<CONN_ID>`` as JSON (when it starts with ``{``) or a URI."""
        env = self._env()
        for prefix in CONN_ENV_PREFIXES:
            name = prefix + conn_id.upper()
            value = env.get(name)
            if value is None:
                continue
            text = value.strip()
            try:
                if text.startswith("{"):
                    return Connection.from_json(conn_id, text)
                return Connection.from_uri(conn_id, text)
            except (TradewindError, ValueError, TypeError) as exc:
                raise TradewindError(
                    f"environment variable {name} does not hold a valid connection: {exc}"
                ) from None
        return None

    def get_variable(self, key: str) -> str | None:
        """``TRADEWIND_VAR_<KEY>``, or None."""
        env = self._env()
        for prefix in VAR_ENV_PREFIXES:
            value = env.get(prefix + key.upper())
            if value is not None:
                return value
        return None


_env_backend = EnvironmentBackend()
_backends: list[SecretsBackend] = []
_backends_lock = threading.Lock()


def register_backend(backend: SecretsBackend) -> None:
    """Add a backend at the end of the chain (after the environment and earlier backends)."""
    if not isinstance(backend, SecretsBackend):
        raise TypeError(
            f"{backend!r} is not a secrets backend: it needs get_connection(conn_id) "
            "and get_variable(key)"
        )
    with _backends_lock:
        if backend not in _backends:
            _backends.append(backend)


def unregister_backend(backend: SecretsBackend) -> None:
    """Remove a backend added with :func:`register_backend` (no error if absent)."""
    with _backends_lock:
        if backend in _backends:
            _backends.remove(backend)


def registered_backends() -> list[SecretsBackend]:
    """The registered backends, in lookup order (the environment is always consulted first)."""
    with _backends_lock:
        return list(_backends)


def _chain() -> list[SecretsBackend]:
    return [_env_backend, *registered_backends()]


def get_connection(conn_id: str) -> Connection:
    """The connection ``conn_id`` from the first source that has it.

    Its password and secret-looking extra values are registered with :func:`mask_secret`.
    Raises :class:`ConnectionNotFound` when no source has it.
    """
    for backend in _chain():
        conn = backend.get_connection(conn_id)
        if conn is not None:
            mask_secret(conn.password)
            try:
                extra = conn.extra_dejson
            except TradewindError:
                extra = {}
            for key, value in extra.items():
                if is_sensitive_key(key):
                    mask_secret(value)
            return conn
    raise ConnectionNotFound(conn_id)


def get_variable(key: str) -> str:
    """The raw value of variable ``key`` from the first source that has it.

    A value whose key sounds secret is registered with :func:`mask_secret`. Raises
    :class:`VariableNotFound` when no source has it.
    """
    for backend in _chain():
        value = backend.get_variable(key)
        if value is not None:
            if is_sensitive_key(key):
                mask_secret(value)
            return value
    raise VariableNotFound(key)


# --- masking ----------------------------------------------------------------------------------

_masked: set[str] = set()
_masked_lock = threading.Lock()
_pattern: re.Pattern[str] | None = None


def mask_secret(value: Any) -> None:
    """Hide ``value`` in every later :func:`redact` call.

    Strings are added as they are and in their percent-encoded form (as they appear in URIs);
    dicts and lists are walked and every string inside them is added (dict values, not keys).
    None, empty and short values (under :data:`MIN_MASKED_LENGTH` characters) are ignored.
    """
    found: list[str] = []
    _collect(value, found)
    if not found:
        return
    global _pattern
    with _masked_lock:
        before = len(_masked)
        _masked.update(found)
        if len(_masked) != before:
            _pattern = None


def _collect(value: Any, out: list[str]) -> None:
    if value is None:
        return
    if isinstance(value, str):
        if len(value) >= MIN_MASKED_LENGTH:
            out.append(value)
            encoded = quote(value, safe="")
            if encoded != value:
                out.append(encoded)
            dumped = json.dumps(value)[1:-1]
            if dumped != value:
                out.append(dumped)
        return
    if isinstance(value, Mapping):
        for item in value.values():
            _collect(item, out)
        return
    if isinstance(value, Iterable) and not isinstance(value, bytes | bytearray):
        for item in value:
            _collect(item, out)


def redact(text: str) -> str:
    """``text`` with every masked secret replaced by ``***``.

    >>> mask_secret("hunter2-xyz")
    >>> redact("login ok with password hunter2-xyz")
    'login ok with password ***'
    """
    global _pattern
    pattern = _pattern
    if pattern is None:
        with _masked_lock:
            if not _masked:
                return text
            # Longest first, so a secret that contains another is replaced whole.
            alternatives = sorted(_masked, key=len, reverse=True)
            pattern = _pattern = re.compile("|".join(re.escape(s) for s in alternatives))
    return pattern.sub(_REDACTED, text)


def masked_secrets() -> frozenset[str]:
    """The masked values (for tests and diagnostics)."""
    with _masked_lock:
        return frozenset(_masked)


def clear_masked_secrets() -> None:
    """Forget every masked value (tests; a task runtime starting a fresh try)."""
    global _pattern
    with _masked_lock:
        _masked.clear()
        _pattern = None
