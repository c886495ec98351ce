"""``SqliteHook``: SQL against a SQLite database file, through the standard library.

The connection names the database file in ``host`` (``{"conn_type": "sqlite", "host":
"/data/app.db"}``), or in the URI path as SQLAlchemy writes it: ``sqlite:////abs/path.db``
(absolute), ``sqlite:///relative.db`` (relative to the working directory),
``sqlite:///:memory:``. A path starting with ``file:`` is opened as an SQLite URI
(``file:/data/app.db?mode=ro``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, ClassVar

from tradewind.errors import TradewindError
from tradewind.hooks.sql import DbApiHook

__all__ = ["SqliteHook"]


class SqliteHook(DbApiHook):
    """Hook for SQLite (``conn_type`` ``sqlite``); placeholders are ``?``.

    ``database`` overrides the file named by the connection. ``insert_rows(replace=True)``
    uses ``INSERT OR REPLACE``, which replaces rows that clash on a primary key or unique
    index.

    Example::

        hook = SqliteHook(sqlite_conn_id="local_db")
        hook.insert_rows("events", [(1, "start"), (2, "stop")], target_fields=["id", "kind"])
        hook.get_records("SELECT kind FROM events WHERE id > ?", parameters=(1,))
    """

    conn_name_attr: ClassVar[str] = "sqlite_conn_id"
    default_conn_name: ClassVar[str] = "sqlite_default"
    conn_type: ClassVar[str] = "sqlite"
    hook_name: ClassVar[str] = "SQLite"
    placeholder: ClassVar[str] = "?"

    def __init__(
        self,
        sqlite_conn_id: str = "sqlite_default",
        *,
        database: str | None = None,
        log_sql: bool = True,
    ) -> None:
        super().__init__(sqlite_conn_id, database=database, log_sql=log_sql)
        self.sqlite_conn_id = self.conn_id

    def database_path(self) -> str:
        """The file (or ``:memory:``, or ``file:`` URI) this hook opens."""
        conn = self.connection
        path = self.database or conn.host or conn.schema
        if not path:
            raise TradewindError(
                f"connection {conn.conn_id!r} names no SQLite database: set its host to the "
                "file path, or use a URI like sqlite:////absolute/path.db"
            )
        return path

    def get_conn(self) -> sqlite3.Connection:
        """Open the database file (created if missing, like the sqlite3 module does)."""
        path = self.database_path()
        return sqlite3.connect(path, uri=path.startswith("file:"))

    # sqlite3 (before Python 3.12) has no ``autocommit`` attribute; isolation_level None is
    # its autocommit mode, and the default "" lets the module open transactions itself.
    def set_autocommit(self, conn: Any, autocommit: bool) -> None:
        """Autocommit through ``isolation_level`` (None = autocommit)."""
        conn.isolation_level = None if autocommit else ""

    def get_autocommit(self, conn: Any) -> bool:
        """Whether ``conn`` is in autocommit mode."""
        return conn.isolation_level is None

    def _generate_insert_sql(
        self,
        table: str,
        values_count: int,
        target_fields: Sequence[str] | None,
        replace: bool,
        **kwargs: Any,
    ) -> str:
        if kwargs:
            return super()._generate_insert_sql(
                table, values_count, target_fields, replace, **kwargs
            )
        verb = "INSERT OR REPLACE INTO" if replace else "INSERT INTO"
        return self._insert_statement(verb, table, values_count, target_fields)
