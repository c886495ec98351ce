"""The metadata-database contract (``db_contract.py``) on SQLite, a fresh database per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from db_contract import DbContract

from tradewind.db.database import Database
from tradewind.db.engine import create_engine
from tradewind.db.migrate import migrate


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once is much faster)."""
    path = tmp_path_factory.mktemp("db-template") / "template.db"
    engine = create_engine(f"sqlite:///{path}")
    migrate(engine)
    # Closing the last connection checkpoints the WAL into the file, so copying it suffices.
    engine.dispose()
    assert not path.with_name(path.name + "-wal").exists()
    return path


class TestSqliteContract(DbContract):
    @pytest.fixture
    def db(self, migrated_sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
        path = tmp_path / "tradewind.db"
        shutil.copyfile(migrated_sqlite_template, path)
        database = Database.from_url(f"sqlite:///{path}")
        yield database
        database.dispose()
