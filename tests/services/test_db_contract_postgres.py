"""The metadata-database contract (``tests/integration/db_contract.py``) on PostgreSQL.

A database named ``tradewind_test_<hex>`` is created on the test server for the session,
migrated once, emptied between tests, and dropped at the end.
"""

from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from tradewind.db.database import Database
from tradewind.db.migrate import migrate
from tradewind.db.models import DEFAULT_POOL_NAME, DEFAULT_POOL_SLOTS

if TYPE_CHECKING:
    from conftest import PostgresServer


def _load_contract() -> Any:
    # The shared test bodies live with the SQLite tests; tests/ is not a package, so make
    # that folder importable (the integration module imports them by the same name).
    folder = str(Path(__file__).resolve().parent.parent / "integration")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("db_contract")


contract = _load_contract()
pytestmark = pytest.mark.services


def _admin_connect(server: PostgresServer):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(
        host=server.host,
        port=server.port,
        dbname=server.dbname,
        user=server.user,
        autocommit=True,
        connect_timeout=5,
    )


@pytest.fixture(scope="session")
def postgres_database(postgres_server: PostgresServer) -> Iterator[Database]:
    """A fresh, migrated database for this test session, dropped afterwards."""
    name = f"tradewind_test_{uuid.uuid4().hex[:12]}"
    with _admin_connect(postgres_server) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = (
        f"postgresql://{postgres_server.user}@{postgres_server.host}:{postgres_server.port}/{name}"
    )
    database = Database.from_url(url)
    try:
        migrate(database.engine)
        yield database
    finally:
        database.dispose()
        with _admin_connect(postgres_server) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class TestPostgresContract(contract.DbContract):  # type: ignore[name-defined,misc]
    @pytest.fixture
    def db(self, postgres_database: Database) -> Iterator[Database]:
        tables = ", ".join(f'"{t}"' for t in contract.TABLES)
        with postgres_database.engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            conn.execute(
                sa.text(
                    "INSERT INTO slot_pool (pool, slots, description, include_deferred) "
                    "VALUES (:p, :s, 'Default pool', false)"
                ),
                {"p": DEFAULT_POOL_NAME, "s": DEFAULT_POOL_SLOTS},
            )
        yield postgres_database
