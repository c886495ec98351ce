"""``PostgresHook``: SQL against PostgreSQL through psycopg 3.

psycopg is an optional dependency (``pip install 'tradewind[postgres]'``) and is imported only
when a connection is opened. Connection fields map to libpq parameters: host, port, login
(user), password, schema (dbname, overridden by the hook's ``database``). Extra fields are
passed on as libpq parameters too (``sslmode``, ``connect_timeout``, ``application_name``,
``options`` …), except ``cursor``, which picks the row shape: ``dictcursor`` /
``realdictcursor`` give dicts, ``namedtuplecursor`` named tuples (default: tuples).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from tradewind.errors import InvalidArgumentError, TradewindError
from tradewind.hooks.sql import DbApiHook, quote_identifier

__all__ = ["PostgresHook"]

# Extra fields that configure the hook or other tools rather than libpq.
_NOT_LIBPQ = frozenset(
    {"cursor", "iam", "redshift", "aws_conn_id", "sqlalchemy_scheme", "sqlalchemy_query"}
)


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise TradewindError(
            "PostgresHook needs psycopg 3, which is not installed: "
            "pip install 'tradewind[postgres]'"
        ) from None
    return psycopg


class PostgresHook(DbApiHook):
    """Hook for PostgreSQL (``conn_type`` ``postgres``); placeholders are ``%s``.

    ``insert_rows(replace=True, replace_index=[...])`` writes ``INSERT … ON CONFLICT
    (replace_index) DO UPDATE SET`` the other target fields (``DO NOTHING`` when every target
    field is in the index); it needs ``target_fields`` and ``replace_index``.

    Example::

        hook = PostgresHook(postgres_conn_id="warehouse")
        hook.run("UPDATE jobs SET done = true WHERE id = %s", parameters=(42,))
    """

    conn_name_attr: ClassVar[str] = "postgres_conn_id"
    default_conn_name: ClassVar[str] = "postgres_default"
    conn_type: ClassVar[str] = "postgres"
    hook_name: ClassVar[str] = "Postgres"
    placeholder: ClassVar[str] = "%s"

    def __init__(
        self,
        postgres_conn_id: str = "postgres_default",
        *,
        database: str | None = None,
        log_sql: bool = True,
    ) -> None:
        super().__init__(postgres_conn_id, database=database, log_sql=log_sql)
        self.postgres_conn_id = self.conn_id

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` (includes the password)."""
        conn = self.connection
        kwargs: dict[str, Any] = {
            "host": conn.host,
            "port": conn.port,
            "user": conn.login,
            "password": conn.password,
            "dbname": self.database or conn.schema,
        }
        kwargs = {k: v for k, v in kwargs.items() if v not in (None, "")}
        for key, value in conn.extra_dejson.items():
            if key not in _NOT_LIBPQ:
                kwargs[key] = value
        return kwargs

    def get_conn(self) -> Any:
        """Open a psycopg connection (a transaction starts with the first statement)."""
        psycopg = _import_psycopg()
        kwargs = self.connect_kwargs()
        row_factory = self._row_factory(psycopg)
        if row_factory is not None:
            kwargs["row_factory"] = row_factory
        return psycopg.connect(**kwargs)

    def _row_factory(self, psycopg: Any) -> Any:
        name = str(self.connection.extra_dejson.get("cursor", "")).lower()
        if not name:
            return None
        from psycopg import rows

        factories = {
            "dictcursor": rows.dict_row,
            "realdictcursor": rows.dict_row,
            "namedtuplecursor": rows.namedtuple_row,
        }
        if name not in factories:
            raise TradewindError(
                f"connection {self.conn_id!r}: extra 'cursor' must be one of "
                f"{', '.join(factories)}, got {name!r}"
            )
        return factories[name]

    def get_uri(self) -> str:
        """The connection as a ``postgresql://`` URI (the scheme SQLAlchemy accepts)."""
        uri = super().get_uri()
        return "postgresql://" + uri.split("://", 1)[1] if uri.startswith("postgres://") else uri

    def _generate_insert_sql(
        self,
        table: str,
        values_count: int,
        target_fields: Sequence[str] | None,
        replace: bool,
        **kwargs: Any,
    ) -> str:
        replace_index = kwargs.pop("replace_index", None)
        if kwargs:
            return super()._generate_insert_sql(
                table, values_count, target_fields, replace, **kwargs
            )
        statement = self._insert_statement("INSERT INTO", table, values_count, target_fields)
        if not replace:
            return statement
        if not target_fields:
            raise InvalidArgumentError(
                "PostgresHook.insert_rows(replace=True) needs target_fields (the columns)",
                argument="target_fields",
            )
        if not replace_index:
            raise InvalidArgumentError(
                "PostgresHook.insert_rows(replace=True) needs replace_index: the column(s) of "
                "the primary key or unique index that decides which rows are replaced",
                argument="replace_index",
            )
        index = [replace_index] if isinstance(replace_index, str) else list(replace_index)
        quoted_index = [quote_identifier(c, argument="replace_index column") for c in index]
        updates = [
            quote_identifier(c, argument="target_fields column")
            for c in target_fields
            if c not in index
        ]
        conflict = f" ON CONFLICT ({', '.join(quoted_index)})"
        if not updates:
            return statement + conflict + " DO NOTHING"
        assignments = ", ".join(f"{c} = excluded.{c}" for c in updates)
        return statement + conflict + " DO UPDATE SET " + assignments
