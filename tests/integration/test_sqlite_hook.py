"""SqliteHook and SQLExecuteQueryOperator against a real SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tradewind.errors import ConnectionNotFound, InvalidArgumentError, TradewindError
from tradewind.hooks.sql import fetch_all_handler, quote_identifier, split_sql_statements
from tradewind.hooks.sqlite import SqliteHook
from tradewind.sdk.context import Context

INJECTION = "x'); DROP TABLE items; --"


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch) -> Path:
    # given a connection "local" pointing at a file with one table
    path = tmp_path / "data dir" / "app.db"
    path.parent.mkdir()
    monkeypatch.setenv("TRADEWIND_CONN_LOCAL", f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)")
    return path


@pytest.fixture
def hook(db_path: Path) -> SqliteHook:
    return SqliteHook(sqlite_conn_id="local")


def rows_in(path: Path, sql: str = "SELECT id, name, qty FROM items ORDER BY id") -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


# --- connecting -----------------------------------------------------------------------------------


def test_connection_uri_with_absolute_path(hook: SqliteHook, db_path: Path) -> None:
    assert hook.database_path() == str(db_path)
    assert hook.get_first("SELECT count(*) FROM items") == (0,)


def test_connection_host_is_the_database_path(db_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TRADEWIND_CONN_BYHOST", f'{{"conn_type": "sqlite", "host": "{db_path}"}}')
    assert SqliteHook("byhost").get_first("SELECT count(*) FROM items") == (0,)


def test_database_argument_overrides_the_connection(tmp_path: Path, db_path: Path) -> None:
    other = tmp_path / "other.db"
    SqliteHook("local", database=str(other)).run("CREATE TABLE t (x)")
    assert rows_in(other, "SELECT name FROM sqlite_master") == [("t",)]


def test_default_connection_id() -> None:
    assert SqliteHook().conn_id == "sqlite_default"
    with pytest.raises(ConnectionNotFound):
        SqliteHook(sqlite_conn_id="absent_conn").get_conn()


def test_connection_without_a_path_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv("TRADEWIND_CONN_EMPTY", "sqlite://")
    with pytest.raises(TradewindError, match="names no SQLite database"):
        SqliteHook("empty").get_conn()


# --- run / get_records / get_first ---------------------------------------------------------------


def test_run_commits_and_returns_none_without_handler(hook: SqliteHook, db_path: Path) -> None:
    result = hook.run("INSERT INTO items (name, qty) VALUES (?, ?)", parameters=("apple", 3))
    assert result is None
    assert rows_in(db_path) == [(1, "apple", 3)]


def test_run_with_named_parameters(hook: SqliteHook, db_path: Path) -> None:
    hook.run("INSERT INTO items (name, qty) VALUES (:n, :q)", parameters={"n": "pear", "q": 2})
    assert rows_in(db_path) == [(1, "pear", 2)]


def test_run_in_autocommit_mode(hook: SqliteHook, db_path: Path) -> None:
    hook.run("INSERT INTO items (name) VALUES ('a')", autocommit=True)
    assert rows_in(db_path, "SELECT name FROM items") == [("a",)]


def test_run_split_statements_returns_last_or_all(hook: SqliteHook) -> None:
    script = """
        INSERT INTO items (name, qty) VALUES ('a;b', 1);  -- a comment; with a semicolon
        INSERT INTO items (name, qty) VALUES ('c', 2);
        SELECT name FROM items ORDER BY id;
        SELECT count(*) FROM items;
    """
    assert hook.run(script, split_statements=True, handler=fetch_all_handler) == [(2,)]
    all_results = hook.run(
        "SELECT name FROM items ORDER BY id; SELECT sum(qty) FROM items",
        split_statements=True,
        return_last=False,
        handler=fetch_all_handler,
    )
    assert all_results == [[("a;b",), ("c",)], [(3,)]]


def test_run_list_of_statements_returns_one_result_each(hook: SqliteHook) -> None:
    results = hook.run(
        ["INSERT INTO items (name) VALUES ('x')", "SELECT name FROM items"],
        handler=fetch_all_handler,
    )
    assert results == [None, [("x",)]]


def test_failing_statement_rolls_back_the_whole_run(hook: SqliteHook, db_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError):
        hook.run(["INSERT INTO items (name) VALUES ('kept?')", "INSERT INTO nowhere VALUES (1)"])
    assert rows_in(db_path) == []


def test_empty_sql_is_rejected(hook: SqliteHook) -> None:
    with pytest.raises(TradewindError, match="at least one non-empty SQL statement"):
        hook.run([])
    with pytest.raises(TradewindError, match="at least one non-empty SQL statement"):
        hook.run("  -- only a comment ;", split_statements=True)


def test_get_records_and_get_first(hook: SqliteHook) -> None:
    hook.insert_rows("items", [(1, "a", 5), (2, "b", 6), (3, "c", 7)])
    assert hook.get_records("SELECT name FROM items WHERE qty > ? ORDER BY id", (5,)) == [
        ("b",),
        ("c",),
    ]
    assert hook.get_first("SELECT name FROM items ORDER BY id DESC") == ("c",)
    assert hook.get_first("SELECT name FROM items WHERE id = 99") is None
    assert hook.get_records("SELECT name FROM items WHERE id = 99") == []


def test_parameters_are_bound_never_formatted(hook: SqliteHook, db_path: Path) -> None:
    # given a value that would break out of a quoted literal if it were pasted into SQL
    hook.run("INSERT INTO items (name) VALUES (?)", parameters=(INJECTION,))
    hook.insert_rows("items", [(INJECTION, 1)], target_fields=["name", "qty"])
    # expect it stored literally, and the table still there
    assert rows_in(db_path, "SELECT name FROM items") == [(INJECTION,), (INJECTION,)]
    assert hook.get_first("SELECT count(*) FROM items WHERE name = ?", (INJECTION,)) == (2,)


# --- insert_rows -------------------------------------------------------------------------------------


def test_insert_rows_in_batches_from_a_generator(hook: SqliteHook, db_path: Path) -> None:
    rows = ((i, f"item{i}", i * 10) for i in range(1, 2502))
    inserted = hook.insert_rows("items", rows, commit_every=1000)
    assert inserted == 2501
    assert rows_in(db_path, "SELECT count(*), sum(qty) FROM items") == [
        (2501, 10 * 2501 * 2502 // 2)
    ]


def test_insert_rows_commit_every_zero_is_one_batch(hook: SqliteHook, db_path: Path) -> None:
    assert hook.insert_rows("items", [[1, "a", 1], [2, "b", 2]], commit_every=0) == 2
    assert rows_in(db_path) == [(1, "a", 1), (2, "b", 2)]


def test_earlier_batches_stay_committed_when_a_later_one_fails(
    hook: SqliteHook, db_path: Path
) -> None:
    rows = [(1, "a", 1), (2, "b", 2), (1, "dup", 3)]  # the third clashes on the primary key
    with pytest.raises(sqlite3.IntegrityError):
        hook.insert_rows("items", rows, commit_every=2)
    assert rows_in(db_path) == [(1, "a", 1), (2, "b", 2)]


def test_insert_rows_with_target_fields(hook: SqliteHook, db_path: Path) -> None:
    hook.insert_rows("items", [("only-name",)], target_fields=["name"])
    assert rows_in(db_path) == [(1, "only-name", None)]


def test_insert_rows_replace_overwrites_same_key(hook: SqliteHook, db_path: Path) -> None:
    hook.insert_rows("items", [(1, "old", 1), (2, "keep", 2)])
    hook.insert_rows("items", [(1, "new", 9)], replace=True)
    assert rows_in(db_path) == [(1, "new", 9), (2, "keep", 2)]
    with pytest.raises(sqlite3.IntegrityError):
        hook.insert_rows("items", [(1, "again", 0)])


def test_insert_rows_nothing_to_insert(hook: SqliteHook) -> None:
    assert hook.insert_rows("items", []) == 0


def test_insert_rows_into_dotted_table_name(hook: SqliteHook, db_path: Path) -> None:
    hook.insert_rows("main.items", [(7, "dotted", 1)])
    assert rows_in(db_path) == [(7, "dotted", 1)]


@pytest.mark.parametrize(
    "table",
    ["items; DROP TABLE items", 'items"', "1items", "a.b.c.d", "", "items--", "it ems"],
)
def test_bad_table_names_are_rejected_before_touching_the_db(
    hook: SqliteHook, db_path: Path, table: str
) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid table"):
        hook.insert_rows(table, [(1, "a", 1)])
    assert rows_in(db_path, "SELECT name FROM sqlite_master") == [("items",)]


def test_bad_column_names_are_rejected(hook: SqliteHook) -> None:
    with pytest.raises(InvalidArgumentError, match="target_fields column"):
        hook.insert_rows("items", [(1,)], target_fields=["id) VALUES (1); --"])
    with pytest.raises(InvalidArgumentError, match="list of column names"):
        hook.insert_rows("items", [(1,)], target_fields="id")


def test_rows_of_the_wrong_shape_are_rejected(hook: SqliteHook, db_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="row 1 has 2 value"):
        hook.insert_rows("items", [(1, "a", 1), (2, "b")])
    with pytest.raises(InvalidArgumentError, match="row 0 must be a sequence"):
        hook.insert_rows("items", ["abc"])
    with pytest.raises(InvalidArgumentError, match="commit_every"):
        hook.insert_rows("items", [(1, "a", 1)], commit_every=-1)
    assert rows_in(db_path) == []


def test_unknown_insert_option_is_rejected(hook: SqliteHook) -> None:
    with pytest.raises(InvalidArgumentError, match="replace_index"):
        hook.insert_rows("items", [(1, "a", 1)], replace_index="id")


# --- helpers ----------------------------------------------------------------------------------------


def test_quote_identifier() -> None:
    assert quote_identifier("orders") == '"orders"'
    assert quote_identifier("db.sales.orders", dotted=True) == '"db"."sales"."orders"'
    with pytest.raises(InvalidArgumentError):
        quote_identifier("sales.orders")  # dots only where dotted=True


def test_split_sql_statements_keeps_quoted_and_dollar_quoted_semicolons() -> None:
    script = """
    CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ LANGUAGE plpgsql;
    SELECT 'a;b', "we;ird", $$x;y$$;  /* block; comment */
    SELECT $1;
    -- trailing comment; only
    """
    assert split_sql_statements(script) == [
        "CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ LANGUAGE plpgsql",
        "SELECT 'a;b', \"we;ird\", $$x;y$$",
        "/* block; comment */\n    SELECT $1",
    ]


def test_test_connection(hook: SqliteHook, monkeypatch) -> None:
    assert hook.test_connection() == (True, "connection works")
    monkeypatch.setenv("TRADEWIND_CONN_NODIR", "sqlite:////nonexistent-dir/x/y.db")
    ok, message = SqliteHook("nodir").test_connection()
    assert ok is False and "OperationalError" in message


def test_hooks_package_exports_lazily() -> None:
    import tradewind.hooks as hooks

    assert hooks.SqliteHook is SqliteHook
    assert set(hooks.__all__) >= {"BaseHook", "DbApiHook", "SqliteHook", "PostgresHook"}
    with pytest.raises(AttributeError):
        hooks.NoSuchHook


# --- the operator -------------------------------------------------------------------------------------


@pytest.fixture
def operator_cls() -> Iterator[Any]:
    module = pytest.importorskip("tradewind.sdk.baseoperator")
    assert module is not None
    from tradewind.operators.sql import SQLExecuteQueryOperator

    yield SQLExecuteQueryOperator


def test_operator_runs_sql_and_returns_rows(operator_cls: Any, db_path: Path) -> None:
    # given rows in the table and an operator selecting them with a bound parameter
    SqliteHook("local").insert_rows("items", [(1, "a", 5), (2, "b", 6)])
    op = operator_cls(
        task_id="select_items",
        conn_id="local",
        sql="SELECT name FROM items WHERE qty >= ? ORDER BY id",
        parameters=[6],
    )
    # when executed, expect the rows as the return value
    assert op.execute(Context()) == [("b",)]


def test_operator_split_statements_and_no_xcom(operator_cls: Any, db_path: Path) -> None:
    op = operator_cls(
        task_id="load",
        conn_id="local",
        sql="INSERT INTO items (name) VALUES ('a'); INSERT INTO items (name) VALUES ('b')",
        split_statements=True,
        do_xcom_push=False,
    )
    assert op.execute(Context()) is None
    assert rows_in(db_path, "SELECT name FROM items ORDER BY id") == [("a",), ("b",)]


def test_operator_database_overrides_connection(
    operator_cls: Any, db_path: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    op = operator_cls(task_id="t", conn_id="local", sql="CREATE TABLE z (x)", database=str(other))
    op.execute(Context())
    assert rows_in(other, "SELECT name FROM sqlite_master") == [("z",)]


def test_operator_template_settings(operator_cls: Any) -> None:
    assert {"sql", "parameters", "conn_id"} <= set(operator_cls.template_fields)
    assert operator_cls.template_ext == (".sql", ".json")


def test_operator_rejects_conn_types_without_sql_hook(operator_cls: Any, monkeypatch) -> None:
    monkeypatch.setenv("TRADEWIND_CONN_WEB", "http://example.com")
    op = operator_cls(task_id="t", conn_id="web", sql="SELECT 1")
    with pytest.raises(TradewindError, match=r"conn_type 'http'.*supported conn_types: postgres"):
        op.execute(Context())


def test_operator_picks_postgres_hook_for_postgresql_connections(
    operator_cls: Any, monkeypatch
) -> None:
    from tradewind.hooks.postgres import PostgresHook

    monkeypatch.setenv("TRADEWIND_CONN_PG", "postgresql://u@h/db")
    op = operator_cls(task_id="t", conn_id="pg", sql="SELECT 1", hook_params={"log_sql": False})
    hook = op.get_db_hook()
    assert isinstance(hook, PostgresHook)
    assert hook.conn_id == "pg" and hook.log_sql is False


def test_operator_renders_sql_and_json_template_files(
    operator_cls: Any, db_path: Path, tmp_path: Path
) -> None:
    # given a .sql and a .json template file on the DAG's search path
    from tradewind.sdk.dag_definition import DAG

    (tmp_path / "insert.sql").write_text(
        "INSERT INTO items (name, qty) VALUES ('{{ params.n }}', ?)"
    )
    (tmp_path / "params.json").write_text("[{{ params.q }}]")
    with DAG("sql_files", template_searchpath=[str(tmp_path)]):
        op = operator_cls(
            task_id="insert", conn_id="local", sql="insert.sql", parameters="params.json"
        )
    context = Context(params={"n": "from-file", "q": 7})
    # when rendered and executed
    op.render_template_fields(context)
    op.execute(context)
    # expect the rendered statement run with the JSON parameters bound
    assert rows_in(db_path) == [(1, "from-file", 7)]


def test_operator_rejects_string_parameters_that_are_not_json(
    operator_cls: Any, db_path: Path
) -> None:
    op = operator_cls(task_id="t", conn_id="local", sql="SELECT ?", parameters="abc")
    with pytest.raises(TradewindError, match="task 't': parameters is a string that is not JSON"):
        op.execute(Context())
