"""One object holding what every database user needs: engine, session factory, Fernet.

::

    db = Database.from_settings(settings)
    with db.session() as session:      # a transaction: commit on success, rollback on error
        variables.set_variable(session, "k", "v", fernet=db.fernet, now=now)
    db.dispose()
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from tradewind.db.engine import create_engine, make_session_factory, session_scope

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

    from tradewind.config import Settings
    from tradewind.db.migrate import MigrationStatus

__all__ = ["Database"]


@dataclass
class Database:
    """An engine, its session factory and the Fernet used for secrets (None: plain text)."""

    engine: Engine
    session_factory: sessionmaker[Session]
    fernet: MultiFernet | None = None

    @classmethod
    def from_url(
        cls, url: str, *, fernet: MultiFernet | None = None, **engine_kwargs: Any
    ) -> Database:
        """A database for ``url`` (keyword arguments go to :func:`create_engine`)."""
        engine = create_engine(url, **engine_kwargs)
        return cls(engine=engine, session_factory=make_session_factory(engine), fernet=fernet)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, create_key: bool = False, **engine_kwargs: Any
    ) -> Database:
        """A database for ``settings.database.url`` with the configured Fernet key.

        With ``create_key`` a key file is generated in ``$TRADEWIND_HOME`` when no key is
        configured yet (first start).
        """
        from tradewind.db.crypto import get_fernet

        return cls.from_url(
            settings.database.url,
            fernet=get_fernet(settings, create=create_key),
            **engine_kwargs,
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction (see :func:`tradewind.db.engine.session_scope`)."""
        with session_scope(self.session_factory) as session:
            yield session

    def migrate(self) -> MigrationStatus:
        """Create or upgrade the schema (:func:`tradewind.db.migrate.migrate`)."""
        from tradewind.db.migrate import migrate

        return migrate(self.engine)

    def check(self) -> MigrationStatus:
        """Where the schema stands (:func:`tradewind.db.migrate.check`)."""
        from tradewind.db.migrate import check

        return check(self.engine)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
