"""``DbApiHook``: the shared base of hooks for DB-API 2 (PEP 249) databases.

Subclasses say how to open a connection (:meth:`DbApiHook.get_conn`), which parameter
placeholder their driver uses, and how they write an upsert; everything else (running
statements, fetching results, batched inserts) is here.

Values always travel as bound parameters, never formatted into SQL text. Table and column
names cannot be bound, so :meth:`DbApiHook.insert_rows` accepts only plain identifiers
(letters, digits, ``_`` and ``$``, not starting with a digit; tables may be dotted as
``schema.table``) and double-quotes each part. Quoted names are case-sensitive in PostgreSQL:
pass them as stored (usually lower case).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from itertools import islice
from typing import Any, ClassVar, TypeAlias

from tradewind.errors import InvalidArgumentError, TradewindError
from tradewind.hooks.base import BaseHook
from tradewind.sdk.connection import Connection

__all__ = [
    "DbApiHook",
    "SQLParameters",
    "fetch_all_handler",
    "fetch_one_handler",
    "quote_identifier",
    "split_sql_statements",
]

#: Bound parameters: a sequence for positional placeholders, a mapping for named ones.
SQLParameters: TypeAlias = Sequence[Any] | Mapping[str, Any]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_MAX_DOTTED_PARTS = 3  # database.schema.table


def fetch_all_handler(cursor: Any) -> list[Any] | None:
    """All rows of the last statement, or None when it returns no rows (DDL, INSERT …)."""
    if cursor.description is None:
        return None
    return list(cursor.fetchall())


def fetch_one_handler(cursor: Any) -> Any:
    """The first row of the last statement, or None when it returns no rows."""
    if cursor.description is None:
        return None
    return cursor.fetchone()


def quote_identifier(name: object, *, dotted: bool = False, argument: str = "identifier") -> str:
    """``name`` double-quoted after checking it is a plain identifier (or dotted ones).

    >>> quote_identifier("sales.orders", dotted=True)
    '"sales"."orders"'

    Raises :class:`InvalidArgumentError` naming ``argument`` when it is not.
    """
    parts = name.split(".") if isinstance(name, str) and dotted else [name]
    valid = (
        isinstance(name, str)
        and len(parts) <= _MAX_DOTTED_PARTS
        and all(isinstance(p, str) and _IDENTIFIER.fullmatch(p) for p in parts)
    )
    if not valid:
        shape = "name or dotted name (schema.table)" if dotted else "name"
        raise InvalidArgumentError(
            f"invalid {argument} {name!r}: expected a plain SQL {shape} made of letters, "
            "digits, '_' and '$', not starting with a digit",
            argument=argument,
        )
    return ".".join(f'"{p}"' for p in parts)


def split_sql_statements(sql: str) -> list[str]:
    """Split a script on ``;`` outside quotes and comments; drop empty statements.

    Understands '…' and "…" (with doubled-quote escapes), ``-- line`` and ``/* block */``
    comments, and PostgreSQL dollar quoting (``$$ … $$``, ``$tag$ … $tag$``), so function
    bodies stay whole. Statements keep their inner comments; ones made only of comments
    are dropped. Not handled: backslash escapes in PostgreSQL ``E'…'`` strings, and SQLite
    ``CREATE TRIGGER … BEGIN …; END`` bodies (run those with ``split_statements=False``).
    """
    statements: list[str] = []
    start = 0
    i = 0
    n = len(sql)
    has_code = False  # whether the current statement holds anything besides comments
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            i = _skip_quoted(sql, i, ch)
            has_code = True
        elif ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif ch == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch == "$" and (tag := _dollar_tag(sql, i)) is not None:
            end = sql.find(tag, i + len(tag))
            i = n if end < 0 else end + len(tag)
            has_code = True
        elif ch == ";":
            if has_code:
                statements.append(sql[start:i].strip())
            start = i + 1
            i += 1
            has_code = False
        else:
            if not ch.isspace():
                has_code = True
            i += 1
    if has_code:
        statements.append(sql[start:].strip())
    return statements


def _skip_quoted(sql: str, i: int, quote: str) -> int:
    j = i + 1
    while True:
        j = sql.find(quote, j)
        if j < 0:
            return len(sql)
        if sql.startswith(quote * 2, j):  # a doubled quote is an escaped quote
            j += 2
            continue
        return j + 1


_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


def _dollar_tag(sql: str, i: int) -> str | None:
    # "$" inside an identifier (foo$bar) or a positional parameter ($1) starts no quote.
    if i > 0 and (sql[i - 1].isalnum() or sql[i - 1] in "_$"):
        return None
    match = _DOLLAR_TAG.match(sql, i)
    return match.group(0) if match else None


class DbApiHook(BaseHook):
    """Base of SQL hooks over a PEP 249 driver.

    ``conn_id`` defaults to the subclass's ``default_conn_name``; ``database`` overrides the
    database named by the connection; ``log_sql=False`` stops statements being logged.
    """

    #: Parameter placeholder of the driver ("?" for sqlite3, "%s" for psycopg).
    placeholder: ClassVar[str] = "%s"
    #: Whether the driver can switch autocommit on a connection.
    supports_autocommit: ClassVar[bool] = True

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        database: str | None = None,
        log_sql: bool = True,
    ) -> None:
        self.conn_id = conn_id or self.default_conn_name
        self.database = database
        self.log_sql = log_sql
        self._connection: Connection | None = None

    # --- connections ----------------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        """The :class:`Connection` this hook uses (looked up once, then cached)."""
        if self._connection is None:
            self._connection = self.get_connection(self.conn_id)
        return self._connection

    def get_conn(self) -> Any:
        """Open a new DB-API connection. The caller closes it."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_conn()")

    def get_uri(self) -> str:
        """The connection as a URI (including the password)."""
        return self.connection.get_uri()

    def set_autocommit(self, conn: Any, autocommit: bool) -> None:
        """Switch autocommit on ``conn`` (no-op for drivers without it)."""
        if self.supports_autocommit:
            conn.autocommit = autocommit

    def get_autocommit(self, conn: Any) -> bool:
        """Whether ``conn`` commits after each statement."""
        return bool(getattr(conn, "autocommit", False)) and self.supports_autocommit

    # --- running statements ----------------------------------------------------------------

    def run(
        self,
        sql: str | Iterable[str],
        parameters: SQLParameters | None = None,
        autocommit: bool = False,
        handler: Callable[[Any], Any] | None = None,
        split_statements: bool = False,
        return_last: bool = True,
    ) -> Any:
        """Run one or more statements on one new connection, then commit and close it.

        ``sql`` is a statement, a list of statements, or (with ``split_statements``) a script
        split on ``;``. The same ``parameters`` are bound to every statement. Without
        ``autocommit`` all statements form one transaction, committed at the end and rolled
        back if one fails.

        With a ``handler`` (e.g. :func:`fetch_all_handler`) it is called with the cursor after
        each statement and the results are returned: a single result when ``sql`` is one
        string (the last statement's when split and ``return_last``), else a list with one
        result per statement. Without a handler the return value is None.
        """
        scalar = isinstance(sql, str)
        statements = self._statements(sql, split_statements)
        results: list[Any] = []
        with closing(self.get_conn()) as conn:
            self.set_autocommit(conn, autocommit)
            try:
                with closing(conn.cursor()) as cursor:
                    for statement in statements:
                        self._execute(cursor, statement, parameters)
                        if handler is not None:
                            results.append(handler(cursor))
                if not self.get_autocommit(conn):
                    conn.commit()
            except BaseException:
                if not self.get_autocommit(conn):
                    _rollback_quietly(conn)
                raise
        if handler is None:
            return None
        if scalar and (return_last or not split_statements):
            return results[-1]
        return results

    def get_records(self, sql: str | Iterable[str], parameters: SQLParameters | None = None) -> Any:
        """All rows of ``sql`` (a list of tuples; one list per statement for a list of them)."""
        return self.run(sql, parameters, handler=fetch_all_handler)

    def get_first(self, sql: str | Iterable[str], parameters: SQLParameters | None = None) -> Any:
        """The first row of ``sql``, or None when it returns no rows."""
        return self.run(sql, parameters, handler=fetch_one_handler)

    def test_connection(self) -> tuple[bool, str]:
        """Try ``SELECT 1``; return (ok, message) instead of raising."""
        try:
            self.get_first("SELECT 1")
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return True, "connection works"

    def _statements(self, sql: str | Iterable[str], split: bool) -> list[str]:
        if isinstance(sql, str):
            statements = split_sql_statements(sql) if split else [sql]
        else:
            statements = list(sql)
        if not statements or not all(isinstance(s, str) and s.strip() for s in statements):
            raise TradewindError(
                f"{type(self).__name__}.run needs at least one non-empty SQL statement, got {sql!r}"
            )
        return statements

    def _execute(self, cursor: Any, statement: str, parameters: SQLParameters | None) -> None:
        if self.log_sql:
            from tradewind.sdk.secrets import redact

            self.log.info(
                "Running statement: %s, parameters: %s", statement, redact(repr(parameters))
            )
        if parameters is None:
            cursor.execute(statement)
        else:
            cursor.execute(statement, parameters)
        rowcount = getattr(cursor, "rowcount", -1)
        if rowcount is not None and rowcount >= 0:
            self.log.info("Rows affected: %s", rowcount)

    # --- inserting rows ---------------------------------------------------------------------

    def insert_rows(
        self,
        table: str,
        rows: Iterable[Sequence[Any]],
        target_fields: Sequence[str] | None = None,
        commit_every: int = 1000,
        replace: bool = False,
        **kwargs: Any,
    ) -> int:
        """Insert ``rows`` (sequences of values) into ``table``; return how many were inserted.

        Rows are sent with ``executemany`` in batches of ``commit_every`` (0 means one batch),
        and each batch is committed, so a failure keeps the earlier batches. ``target_fields``
        names the columns the values go to, in order; without it each row must fill every
        column. ``replace`` overwrites rows with the same key (how depends on the database;
        see the subclass). Raises :class:`InvalidArgumentError` for a table or column that is
        not a plain identifier, or rows of different lengths.
        """
        if isinstance(commit_every, bool) or not isinstance(commit_every, int) or commit_every < 0:
            raise InvalidArgumentError(
                f"commit_every must be an integer >= 0, got {commit_every!r}",
                argument="commit_every",
            )
        if isinstance(target_fields, str):
            raise InvalidArgumentError(
                "target_fields must be a list of column names, not one string",
                argument="target_fields",
            )
        batches = _batches(rows, commit_every)
        first = next(batches, None)
        if first is None:
            return 0
        width = len(target_fields) if target_fields else len(first[0])
        statement = self._generate_insert_sql(table, width, target_fields, replace, **kwargs)
        total = 0
        with closing(self.get_conn()) as conn:
            self.set_autocommit(conn, False)
            with closing(conn.cursor()) as cursor:
                batch: list[tuple[Any, ...]] | None = first
                while batch is not None:
                    _check_widths(batch, width, total)
                    try:
                        cursor.executemany(statement, batch)
                        conn.commit()
                    except BaseException:
                        _rollback_quietly(conn)
                        raise
                    total += len(batch)
                    self.log.info("Inserted %d rows into %s so far", total, table)
                    batch = next(batches, None)
        return total

    def _generate_insert_sql(
        self,
        table: str,
        values_count: int,
        target_fields: Sequence[str] | None,
        replace: bool,
        **kwargs: Any,
    ) -> str:
        """The parameterised INSERT statement; subclasses add their upsert form."""
        if kwargs:
            raise InvalidArgumentError(
                f"{type(self).__name__}.insert_rows got unknown argument(s) "
                f"{', '.join(sorted(kwargs))}",
                argument=sorted(kwargs)[0],
            )
        if replace:
            raise InvalidArgumentError(
                f"{type(self).__name__} does not support insert_rows(replace=True)",
                argument="replace",
            )
        return self._insert_statement("INSERT INTO", table, values_count, target_fields)

    def _insert_statement(
        self, verb: str, table: str, values_count: int, target_fields: Sequence[str] | None
    ) -> str:
        quoted_table = quote_identifier(table, dotted=True, argument="table")
        columns = ""
        if target_fields:
            quoted = [quote_identifier(f, argument="target_fields column") for f in target_fields]
            columns = f" ({', '.join(quoted)})"
        if values_count < 1:
            raise InvalidArgumentError("rows must hold at least one value", argument="rows")
        values = ", ".join([self.placeholder] * values_count)
        return f"{verb} {quoted_table}{columns} VALUES ({values})"


def _rollback_quietly(conn: Any) -> None:
    # The statement's own error is the one worth reporting, not a failed rollback after it.
    try:
        conn.rollback()
    except Exception:
        pass


def _batches(rows: Iterable[Sequence[Any]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    iterator = iter(rows)
    index = 0
    while True:
        chunk = list(islice(iterator, size)) if size else list(iterator)
        if not chunk:
            return
        batch: list[tuple[Any, ...]] = []
        for row in chunk:
            if isinstance(row, str | bytes) or not isinstance(row, Sequence):
                raise InvalidArgumentError(
                    f"row {index} must be a sequence of values (tuple or list), got {row!r}",
                    argument="rows",
                )
            batch.append(tuple(row))
            index += 1
        yield batch
        if not size:
            return


def _check_widths(batch: list[tuple[Any, ...]], width: int, offset: int) -> None:
    for i, row in enumerate(batch):
        if len(row) != width:
            raise InvalidArgumentError(
                f"row {offset + i} has {len(row)} value(s), expected {width}",
                argument="rows",
            )
