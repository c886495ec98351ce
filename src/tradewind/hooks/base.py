"""``BaseHook``: the common base of hooks, the objects tasks use to talk to external systems.

A hook reads a :class:`~tradewind.sdk.connection.Connection` by id and opens whatever client
the system needs. Hooks are plain objects made inside ``execute``; they hold no global state.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from tradewind.sdk.connection import Connection

__all__ = ["BaseHook"]


class BaseHook:
    """Base class of every hook.

    Subclasses set the class attributes below (Airflow-compatible names) and implement
    :meth:`get_conn`.
    """

    #: Name of the constructor argument holding the connection id, e.g. ``"sqlite_conn_id"``.
    conn_name_attr: ClassVar[str] = "conn_id"
    #: Connection id used when none is given, e.g. ``"sqlite_default"``.
    default_conn_name: ClassVar[str] = "default_conn_id"
    #: The ``conn_type`` of connections this hook serves.
    conn_type: ClassVar[str] = ""
    #: Human-readable name of the system.
    hook_name: ClassVar[str] = ""

    @classmethod
    def get_connection(cls, conn_id: str) -> Connection:
        """Look up connection ``conn_id`` through :mod:`tradewind.sdk.secrets`.

        Its password is masked in task logs from then on. Raises
        :class:`~tradewind.errors.ConnectionNotFound` when no source defines it.
        """
        from tradewind.sdk import secrets

        return secrets.get_connection(conn_id)

    @property
    def log(self) -> logging.Logger:
        """Logger named after the hook class."""
        cls = type(self)
        return logging.getLogger(f"{cls.__module__}.{cls.__qualname__}")

    def get_conn(self) -> Any:
        """Open and return a client or connection to the system."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_conn()")
