"""Engines, sessions and migrations on real SQLite files (and processes)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from tradewind.db import variables
from tradewind.db.database import Database
from tradewind.db.engine import create_engine, make_session_factory, session_scope
from tradewind.db.migrate import HEAD_REVISION, MIGRATIONS_DIR, check, migrate, reset

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def test_sqlite_connections_are_set_up_for_several_processes(tmp_path: Path) -> None:
    # given an engine on a file in a folder that does not exist yet
    engine = create_engine(f"sqlite:///{tmp_path / 'new' / 'tw.db'}")
    # when a connection is opened
    with engine.connect() as conn:
        pragmas = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
        }
    # expect WAL, foreign keys on, synchronous NORMAL (1) and a 30 s busy timeout
    assert pragmas == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "synchronous": 1,
        "busy_timeout": 30000,
    }
    engine.dispose()


def test_in_memory_sqlite_is_one_database_for_every_session() -> None:
    engine = create_engine("sqlite://")
    migrate(engine)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        variables.set_variable(session, "k", "v", fernet=None, now=NOW)
    with session_scope(factory) as session:
        assert variables.get_variable(session, "k", fernet=None) == "v"


def test_session_scope_rolls_back_on_error(tmp_path: Path) -> None:
    db = Database.from_url(f"sqlite:///{tmp_path / 'tw.db'}")
    db.migrate()
    with pytest.raises(RuntimeError), db.session() as session:
        variables.set_variable(session, "k", "v", fernet=None, now=NOW)
        raise RuntimeError("boom")
    with db.session() as session:
        assert variables.list_variables(session) == []


def test_head_revision_constant_matches_the_migration_scripts() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_check_migrate_and_reset(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'tw.db'}")
    # an empty database has everything pending
    empty = check(engine)
    assert (empty.current, empty.pending[-1], empty.up_to_date) == (None, HEAD_REVISION, False)
    assert empty.pending == sorted(empty.pending)  # oldest first
    # migrating brings it to the head, and migrating again changes nothing
    assert migrate(engine).up_to_date
    assert migrate(engine).current == HEAD_REVISION
    # reset drops everything, foreign tables included, and migrates again
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE leftover (id INTEGER)")
        conn.exec_driver_sql(
            "INSERT INTO slot_pool (pool, slots, include_deferred) VALUES ('p', 1, 0)"
        )
    assert reset(engine).up_to_date
    with engine.connect() as conn:
        assert not sa.inspect(conn).has_table("leftover")
        pools = conn.exec_driver_sql("SELECT pool, slots FROM slot_pool").all()
    assert pools == [("default_pool", 128)]


def test_concurrent_read_then_write_transactions_never_fail_or_lose_updates(
    tmp_path: Path,
) -> None:
    # given a counter variable in a SQLite file
    url = f"sqlite:///{tmp_path / 'tw.db'}"
    db = Database.from_url(url)
    db.migrate()
    with db.session() as session:
        variables.set_variable(session, "counter", "0", fernet=None, now=NOW)
    db.dispose()
    worker = textwrap.dedent(
        f"""
        from datetime import datetime, UTC
        from tradewind.db.database import Database
        from tradewind.db import variables
        db = Database.from_url({url!r})
        for _ in range(40):
            with db.session() as s:
                value = int(variables.get_variable(s, "counter", fernet=None))
                variables.set_variable(s, "counter", str(value + 1), fernet=None,
                                       now=datetime.now(UTC))
        """
    )
    # when three processes each read and increment it 40 times
    procs = [
        subprocess.Popen([sys.executable, "-c", worker], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    # expect no "database is locked" failure and no lost update
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    db = Database.from_url(url)
    with db.session() as session:
        assert variables.get_variable(session, "counter", fernet=None) == "120"
