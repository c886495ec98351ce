"""Create, upgrade, check and reset the metadata database schema, from Python.

The Alembic migrations ship inside the package (``tradewind/db/migrations``); these functions
run them on an engine, with no ``alembic.ini``::

    engine = create_engine(settings.database.url)
    migrate(engine)                 # create or upgrade to the newest schema
    status = check(engine)          # MigrationStatus(current=..., head=..., pending=[...])
    reset(engine)                   # drop every table, then migrate

On PostgreSQL, :func:`migrate` holds an advisory lock, so several processes starting at once
(a scheduler and an API server, say) migrate one after the other instead of colliding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "HEAD_REVISION",
    "MIGRATIONS_DIR",
    "VERSION_TABLE",
    "MigrationStatus",
    "check",
    "current_revision",
    "migrate",
    "reset",
]

#: Folder of the Alembic environment and its ``versions/``.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: The newest migration; a test checks it against the scripts, so reading it costs nothing.
HEAD_REVISION = "0003"
#: Table where Alembic records the applied revision.
VERSION_TABLE = "alembic_version"
# Arbitrary constant naming the PostgreSQL advisory lock taken while migrating.
_PG_LOCK_KEY = 0x7472_6164_6577


@dataclass(frozen=True)
class MigrationStatus:
    """Where a database stands: its ``current`` revision (None when empty) and the ``head``."""

    current: str | None
    head: str
    pending: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        """Whether no migration is pending."""
        return self.current == self.head

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``tradewind db check --output json``)."""
        return {
            "current": self.current,
            "head": self.head,
            "pending": list(self.pending),
            "up_to_date": self.up_to_date,
        }


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine, *, revision: str = "heads") -> MigrationStatus:
    """Upgrade the database to ``revision`` (default: the newest), creating it if empty.

    Returns the status afterwards.
    """
    from alembic import command

    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Transaction-scoped: released with the commit at the end of the block.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        command.upgrade(_config(connection), revision)
    return check(engine)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it has no Tradewind schema."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table(VERSION_TABLE):
            return None
        rows = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    return rows[0][0] if rows else None


def check(engine: Engine) -> MigrationStatus:
    """Compare the database's revision with the newest one and list what is pending."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config())
    head = script.get_current_head()
    assert head is not None, "the migrations folder has no revision"
    current = current_revision(engine)
    pending: list[str] = []
    if current != head:
        lower = current if current is not None else "base"
        revisions = list(script.iterate_revisions(head, lower))
        pending = [rev.revision for rev in reversed(revisions) if rev.revision != current]
    return MigrationStatus(current=current, head=head, pending=pending)


def reset(engine: Engine) -> MigrationStatus:
    """Drop every table in the database (Tradewind's and any other), then :func:`migrate`."""
    with engine.begin() as connection:
        metadata = sa.MetaData()
        metadata.reflect(bind=connection)
        if connection.dialect.name == "sqlite":
            # SQLite checks foreign keys while dropping; defer them to the commit, by which
            # time every referencing table is gone too.
            connection.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
        metadata.drop_all(bind=connection)
    return migrate(engine)
