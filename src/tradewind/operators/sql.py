"""``SQLExecuteQueryOperator``: run SQL on the database a connection points to.

The hook is picked from the connection's ``conn_type``: ``sqlite`` uses
:class:`~tradewind.hooks.sqlite.SqliteHook`, ``postgres`` / ``postgresql`` use
:class:`~tradewind.hooks.postgres.PostgresHook`. ``sql`` may be a statement, a list of
statements, or the path of a ``.sql`` template file (found next to the DAG file or on the DAG's
``template_searchpath``); ``parameters`` are bound by the driver, never pasted into the SQL.

Example::

    SQLExecuteQueryOperator(
        task_id="count_orders",
        conn_id="warehouse",
        sql="SELECT count(*) FROM orders WHERE day = %(day)s",
        parameters={"day": "{{ ds }}"},
    )
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from tradewind.errors import TradewindError
from tradewind.hooks.sql import DbApiHook, SQLParameters, fetch_all_handler
from tradewind.sdk.baseoperator import BaseOperator

if TYPE_CHECKING:
    from tradewind.sdk.context import Context

__all__ = ["SQLExecuteQueryOperator", "get_db_hook"]

# conn_type -> (module, class); imported on use so an unused driver costs nothing.
_HOOKS_BY_CONN_TYPE: dict[str, tuple[str, str]] = {
    "sqlite": ("tradewind.hooks.sqlite", "SqliteHook"),
    "postgres": ("tradewind.hooks.postgres", "PostgresHook"),
    "postgresql": ("tradewind.hooks.postgres", "PostgresHook"),
}


def get_db_hook(
    conn_id: str, *, database: str | None = None, hook_params: Mapping[str, Any] | None = None
) -> DbApiHook:
    """A SQL hook for connection ``conn_id``, chosen by its ``conn_type``.

    ``hook_params`` are extra keyword arguments for the hook's constructor. Raises
    :class:`~tradewind.errors.ConnectionNotFound` for an unknown connection and
    :class:`TradewindError` for a conn_type without a SQL hook.
    """
    import importlib

    from tradewind.sdk import secrets

    connection = secrets.get_connection(conn_id)
    conn_type = (connection.conn_type or "").lower()
    target = _HOOKS_BY_CONN_TYPE.get(conn_type)
    if target is None:
        supported = ", ".join(sorted(_HOOKS_BY_CONN_TYPE))
        raise TradewindError(
            f"connection {conn_id!r} has conn_type {connection.conn_type!r}, which has no SQL "
            f"hook; supported conn_types: {supported}"
        )
    module, name = target
    hook_cls: type[DbApiHook] = getattr(importlib.import_module(module), name)
    params = dict(hook_params or {})
    if database is not None:
        params["database"] = database
    hook = hook_cls(conn_id, **params)
    hook._connection = connection  # already looked up; spare the hook a second lookup
    return hook


class SQLExecuteQueryOperator(BaseOperator):
    """Run ``sql`` on connection ``conn_id`` and return the result of ``handler`` as XCom.

    :param sql: one statement, a list of statements, or a ``.sql`` template file name.
    :param conn_id: the connection; its ``conn_type`` picks the hook.
    :param parameters: values bound to the placeholders (a sequence, or a mapping for named
        placeholders); the same parameters go to every statement.
    :param autocommit: commit after each statement instead of once at the end.
    :param handler: called with the cursor after each statement; its result is what the task
        returns (default: all rows as a list of tuples; None for statements without rows).
    :param split_statements: split a string of several statements on ``;``.
    :param return_last: with ``split_statements``, return only the last statement's result.
    :param database: a database name overriding the connection's (the file, for SQLite).
    :param hook_params: extra keyword arguments for the hook.

    With ``do_xcom_push=False`` no rows are fetched and nothing is returned.
    """

    template_fields: ClassVar[tuple[str, ...]] = (
        "sql",
        "parameters",
        "conn_id",
        "database",
        "hook_params",
    )
    template_ext: ClassVar[tuple[str, ...]] = (".sql", ".json")
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql", "parameters": "json"}
    ui_color: str = "#cdaaed"

    def __init__(
        self,
        *,
        sql: str | Iterable[str],
        conn_id: str,
        parameters: SQLParameters | None = None,
        autocommit: bool = False,
        handler: Callable[[Any], Any] | None = fetch_all_handler,
        split_statements: bool = False,
        return_last: bool = True,
        database: str | None = None,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sql = sql
        self.conn_id = conn_id
        self.parameters = parameters
        self.autocommit = autocommit
        self.handler = handler
        self.split_statements = split_statements
        self.return_last = return_last
        self.database = database
        self.hook_params = hook_params or {}

    def get_db_hook(self) -> DbApiHook:
        """The hook for ``conn_id`` (see :func:`get_db_hook`)."""
        return get_db_hook(self.conn_id, database=self.database, hook_params=self.hook_params)

    def execute(self, context: Context) -> Any:
        """Run the SQL; return the handler's result (None with ``do_xcom_push=False``)."""
        hook = self.get_db_hook()
        push = getattr(self, "do_xcom_push", True)
        sql = self.sql if isinstance(self.sql, str) else list(self.sql)
        result = hook.run(
            sql,
            parameters=self._parameters(),
            autocommit=self.autocommit,
            handler=self.handler if push else None,
            split_statements=self.split_statements,
            return_last=self.return_last,
        )
        return result if push else None

    def _parameters(self) -> SQLParameters | None:
        # A string cannot be DB-API parameters (a driver would bind it character by
        # character); it comes from a rendered ``.json`` template or a JSON literal.
        if not isinstance(self.parameters, str):
            return self.parameters
        try:
            value = json.loads(self.parameters)
        except json.JSONDecodeError as exc:
            raise TradewindError(
                f"task {self.task_id!r}: parameters is a string that is not JSON ({exc}); "
                "pass a list or dict, or a .json template file"
            ) from None
        if not isinstance(value, list | dict):
            raise TradewindError(
                f"task {self.task_id!r}: parameters must be a JSON list or object, got {value!r}"
            )
        return value
