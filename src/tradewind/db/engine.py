"""Engines, sessions and transactions for the metadata database (SQLite or PostgreSQL).

Nothing here runs at import time: callers build an engine with :func:`create_engine`, a session
factory with :func:`make_session_factory`, and open transactions with :func:`session_scope`::

    engine = create_engine("sqlite:////home/me/tradewind/tradewind.db")
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        ...  # committed on success, rolled back on an exception

SQLite connections are set up for one machine with several processes: WAL journal (readers never
block the writer), ``busy_timeout`` of 30 s (a writer waits for the lock instead of failing),
foreign keys on, ``synchronous=NORMAL`` (durable at every checkpoint, fast commits in WAL).

By default every SQLite transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock up
front. SQLite cannot upgrade a read snapshot that another writer has made stale, so a deferred
transaction that reads and then writes may fail at once with "database is locked" however long
``busy_timeout`` is; taking the lock at the start makes every transaction wait its turn instead.
Pass ``sqlite_immediate=False`` for an engine that only reads.

PostgreSQL goes through psycopg 3: ``postgresql://`` and ``postgres://`` URLs are rewritten to
``postgresql+psycopg://``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from sqlalchemy.sql import Select

    from tradewind.config import Settings

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "create_engine",
    "engine_from_settings",
    "is_postgres",
    "is_sqlite",
    "make_session_factory",
    "normalize_url",
    "session_scope",
    "skip_locked",
]

#: How long (milliseconds) an SQLite connection waits for another writer before failing.
SQLITE_BUSY_TIMEOUT_MS = 30_000

_S = TypeVar("_S", bound="Select[Any]")


def normalize_url(url: str | URL) -> URL:
    """``url`` as a SQLAlchemy URL, with PostgreSQL URLs pointed at the psycopg 3 driver."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _is_memory_sqlite(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or bool(url.query.get("mode") == "memory")


def create_engine(url: str | URL, *, echo: bool = False, sqlite_immediate: bool = True) -> Engine:
    """An engine for ``url`` (SQLite or PostgreSQL) set up as the module docstring says.

    A file SQLite database gets its parent folder created, so a fresh ``$TRADEWIND_HOME``
    works. An in-memory SQLite database is shared by every session of the engine (one
    connection), which is what tests and throw-away runs want.

    Raises ``ValueError`` for another database than SQLite or PostgreSQL.
    """
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, echo=echo, immediate=sqlite_immediate)
    if backend == "postgresql":
        return sa.create_engine(
            parsed,
            echo=echo,
            pool_size=5,
            max_overflow=10,
            # A server restart or a firewall dropping idle connections must not surface as an
            # error in the scheduler loop; the ping costs one round trip per checkout.
            pool_pre_ping=True,
            pool_recycle=1800,
        )
    raise ValueError(
        f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}: "
        "Tradewind supports sqlite:// and postgresql:// URLs"
    )


def _sqlite_engine(url: URL, *, echo: bool, immediate: bool) -> Engine:
    kwargs: dict[str, Any] = {"echo": echo}
    if _is_memory_sqlite(url):
        # One shared connection: each new connection to :memory: would be a new empty database.
        kwargs["poolclass"] = StaticPool
        kwargs["connect_args"] = {"check_same_thread": False}
    else:
        if url.database:
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["pool_size"] = 5
        kwargs["max_overflow"] = 10
        kwargs["connect_args"] = {
            "check_same_thread": False,
            "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
        }
    engine = sa.create_engine(url, **kwargs)
    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy (the driver's own implicit BEGIN would only
        # start transactions before DML, so reads would run outside them).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if not _is_memory_sqlite(url):
                cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


def engine_from_settings(settings: Settings, **kwargs: Any) -> Engine:
    """An engine for ``settings.database.url`` (keyword arguments go to :func:`create_engine`)."""
    return create_engine(settings.database.url, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to ``engine``.

    Objects stay readable after commit (``expire_on_commit=False``): a command that commits
    and then prints what it changed must not need another round trip.
    """
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session in a transaction: committed when the block ends, rolled back on an exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_sqlite(bind: Session | sa.Connection | Engine) -> bool:
    """Whether the session, connection or engine talks to SQLite."""
    return _dialect_name(bind) == "sqlite"


def is_postgres(bind: Session | sa.Connection | Engine) -> bool:
    """Whether the session, connection or engine talks to PostgreSQL."""
    return _dialect_name(bind) == "postgresql"


def _dialect_name(bind: Session | sa.Connection | Engine) -> str:
    if isinstance(bind, Session):
        return bind.get_bind().dialect.name
    return bind.dialect.name


def skip_locked(statement: _S, session: Session) -> _S:
    """``statement`` with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; unchanged on SQLite.

    Several schedulers claim runs and task instances this way without waiting for each other;
    SQLite has a single writer (each transaction holds the write lock), so it needs no locking
    clause.
    """
    if is_postgres(session):
        return statement.with_for_update(skip_locked=True)
    return statement
