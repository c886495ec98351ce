"""PostgresHook (and the SQL operator) against the real PostgreSQL test server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tradewind.errors import InvalidArgumentError, TradewindError
from tradewind.hooks.postgres import PostgresHook
from tradewind.hooks.sql import fetch_all_handler
from tradewind.sdk.context import Context

pytestmark = pytest.mark.services

INJECTION = "x'); DROP TABLE pg_class; --"


@pytest.fixture
def conn_id(postgres_server, monkeypatch) -> str:
    monkeypatch.setenv("TRADEWIND_CONN_PG_TEST", postgres_server.uri)
    return "pg_test"


@pytest.fixture
def hook(conn_id: str) -> PostgresHook:
    return PostgresHook(postgres_conn_id=conn_id)


@pytest.fixture
def table(postgres_server) -> Iterator[str]:
    # given a uniquely named table (tests may run in parallel), dropped afterwards
    name = f"tw_hook_{uuid.uuid4().hex[:12]}"
    dsn = dict(
        host=postgres_server.host,
        port=postgres_server.port,
        dbname=postgres_server.dbname,
        user=postgres_server.user,
    )
    with psycopg.connect(**dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (id integer PRIMARY KEY, name text, qty integer)")
    try:
        yield name
    finally:
        with psycopg.connect(**dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {name}")


def test_connect_and_select(hook: PostgresHook) -> None:
    assert hook.get_first("SELECT 1 + %s", (1,)) == (2,)
    assert hook.test_connection() == (True, "connection works")


def test_run_commits(hook: PostgresHook, table: str) -> None:
    hook.run(f"INSERT INTO {table} VALUES (%s, %s, %s)", parameters=(1, "a", 2))
    assert PostgresHook("pg_test").get_records(f"SELECT * FROM {table}") == [(1, "a", 2)]


def test_named_parameters(hook: PostgresHook, table: str) -> None:
    hook.run(f"INSERT INTO {table} VALUES (%(id)s, %(name)s, 0)", parameters={"id": 5, "name": "n"})
    assert hook.get_first(f"SELECT name FROM {table} WHERE id = 5") == ("n",)


def test_failure_rolls_back_the_run(hook: PostgresHook, table: str) -> None:
    with pytest.raises(psycopg.Error):
        hook.run([f"INSERT INTO {table} VALUES (1, 'a', 1)", "SELECT * FROM no_such_table_x"])
    assert hook.get_records(f"SELECT * FROM {table}") == []


def test_autocommit_keeps_earlier_statements(hook: PostgresHook, table: str) -> None:
    with pytest.raises(psycopg.Error):
        hook.run(
            [f"INSERT INTO {table} VALUES (1, 'a', 1)", "SELECT * FROM no_such_table_x"],
            autocommit=True,
        )
    assert hook.get_records(f"SELECT id FROM {table}") == [(1,)]


def test_split_statements_with_dollar_quoting(hook: PostgresHook, table: str) -> None:
    script = f"""
        INSERT INTO {table} VALUES (1, 'semi;colon', 1);
        DO $$ BEGIN INSERT INTO {table} VALUES (2, 'from DO; block', 2); END $$;
        SELECT name FROM {table} ORDER BY id;
    """
    result = hook.run(script, split_statements=True, handler=fetch_all_handler)
    assert result == [("semi;colon",), ("from DO; block",)]


def test_insert_rows_in_batches(hook: PostgresHook, table: str) -> None:
    rows = ((i, f"n{i}", i) for i in range(1, 1206))
    assert (
        hook.insert_rows(table, rows, target_fields=["id", "name", "qty"], commit_every=500) == 1205
    )
    assert hook.get_first(f"SELECT count(*), sum(qty) FROM {table}") == (1205, 1205 * 1206 // 2)


def test_insert_rows_binds_values(hook: PostgresHook, table: str) -> None:
    hook.insert_rows(table, [(1, INJECTION, 0)])
    assert hook.get_first(f"SELECT name FROM {table}") == (INJECTION,)


def test_insert_rows_into_schema_qualified_table(hook: PostgresHook, table: str) -> None:
    hook.insert_rows(f"public.{table}", [(3, "q", 3)])
    assert hook.get_records(f"SELECT id FROM {table}") == [(3,)]


def test_insert_rows_replace_upserts_on_the_index(hook: PostgresHook, table: str) -> None:
    fields = ["id", "name", "qty"]
    hook.insert_rows(table, [(1, "old", 1), (2, "keep", 2)], target_fields=fields)
    hook.insert_rows(
        table,
        [(1, "new", 9), (3, "added", 3)],
        target_fields=fields,
        replace=True,
        replace_index="id",
    )
    assert hook.get_records(f"SELECT * FROM {table} ORDER BY id") == [
        (1, "new", 9),
        (2, "keep", 2),
        (3, "added", 3),
    ]


def test_insert_rows_replace_with_only_key_columns_does_nothing_on_conflict(
    hook: PostgresHook, table: str
) -> None:
    hook.insert_rows(table, [(1, "a", 1)])
    hook.insert_rows(table, [(1,)], target_fields=["id"], replace=True, replace_index=["id"])
    assert hook.get_records(f"SELECT * FROM {table}") == [(1, "a", 1)]


def test_insert_rows_replace_needs_index_and_fields(hook: PostgresHook, table: str) -> None:
    with pytest.raises(InvalidArgumentError, match="replace_index"):
        hook.insert_rows(table, [(1, "a", 1)], target_fields=["id", "name", "qty"], replace=True)
    with pytest.raises(InvalidArgumentError, match="target_fields"):
        hook.insert_rows(table, [(1, "a", 1)], replace=True, replace_index="id")
    assert hook.get_records(f"SELECT * FROM {table}") == []


def test_bad_table_name_is_rejected(hook: PostgresHook) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid table"):
        hook.insert_rows("pg_class; DROP TABLE x", [(1,)])


def test_database_argument_and_extras(conn_id: str, postgres_server, monkeypatch) -> None:
    monkeypatch.setenv(
        "TRADEWIND_CONN_PG_EXTRA",
        f"postgres://{postgres_server.user}@{postgres_server.host}:{postgres_server.port}/nodb"
        "?application_name=tradewind-test&cursor=dictcursor",
    )
    hook = PostgresHook("pg_extra", database=postgres_server.dbname)
    row = hook.get_first(
        "SELECT current_database() AS db, current_setting('application_name') AS app"
    )
    assert row == {"db": postgres_server.dbname, "app": "tradewind-test"}


def test_bad_cursor_extra(monkeypatch, postgres_server) -> None:
    monkeypatch.setenv("TRADEWIND_CONN_PG_BAD", postgres_server.uri + "?cursor=fancy")
    with pytest.raises(TradewindError, match="extra 'cursor'"):
        PostgresHook("pg_bad").get_conn()


def test_get_uri_uses_postgresql_scheme(hook: PostgresHook) -> None:
    assert hook.get_uri().startswith("postgresql://postgres@127.0.0.1:5432/test")


def test_operator_against_postgres(conn_id: str, table: str) -> None:
    pytest.importorskip("tradewind.sdk.baseoperator")
    from tradewind.operators.sql import SQLExecuteQueryOperator

    PostgresHook(conn_id).insert_rows(table, [(1, "a", 1), (2, "b", 2)])
    op = SQLExecuteQueryOperator(
        task_id="q", conn_id=conn_id, sql=f"SELECT name FROM {table} WHERE qty > %s", parameters=[1]
    )
    assert op.execute(Context()) == [("b",)]


# --- the skip-or-fail rule of tests/services/conftest.py ---------------------------------------------


def _load_conftest():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).with_name("conftest.py")
    spec = importlib.util.spec_from_file_location("_tw_services_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _unreachable() -> None:
    raise ConnectionRefusedError("nothing listens here")


def test_unreachable_service_skips_locally(monkeypatch) -> None:
    monkeypatch.delenv("TRADEWIND_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="nothing listens here"):
        _load_conftest().require_service("Fake", _unreachable)


def test_unreachable_service_fails_when_services_are_required(monkeypatch) -> None:
    monkeypatch.setenv("TRADEWIND_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="Fake is not reachable"):
        _load_conftest().require_service("Fake", _unreachable)
