"""What every request handler shares: the app's context, one database session per request,
the clock, and writing the audit row of a change.

Sessions are explicit: :func:`db_session` opens one per request (reads on an engine that does
not take SQLite's write lock, so a busy scheduler never waits for page views), commits when the
handler returns and rolls back when it raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import Request
from sqlalchemy.orm import Session

from tradewind.db import audit as db_audit
from tradewind.db.engine import session_scope

if TYPE_CHECKING:
    from tradewind.config import Settings
    from tradewind.db.database import Database
    from tradewind.db.models import User
    from tradewind.db.roles import Access
    from tradewind.db.users import LoginPolicy

__all__ = [
    "READ_METHODS",
    "ApiContext",
    "Principal",
    "SessionAuthenticator",
    "audit_change",
    "client_address",
    "db_session",
    "get_context",
]

#: A hook that finds the user of a browser session (the web UI installs one): given the
#: request and a database session, the logged-in user or None.
SessionAuthenticator = Callable[[Request, Session], "User | None"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ApiContext:
    """Everything the app's handlers need, built once by :func:`tradewind.api.create_app`."""

    settings: Settings
    database: Database
    #: the database for GET requests: same data, an engine that does not lock for writing
    read_database: Database
    login_policy: LoginPolicy
    clock: Callable[[], datetime] = _utcnow
    #: the web UI's session-cookie login (None: API credentials only)
    session_authenticator: SessionAuthenticator | None = None
    #: successful basic-auth checks: credential digest -> the password hash that matched
    password_cache: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Principal:
    """Who is calling, how they proved it, and what they may do."""

    user_id: int
    username: str
    access: Access
    #: "basic", "token" or "session"
    method: str


def get_context(request: Request) -> ApiContext:
    """The app's :class:`ApiContext`."""
    context: ApiContext = request.app.state.tradewind
    return context


#: Methods served on the read engine.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def db_session(request: Request) -> Iterator[Session]:
    """One session for the request, in a transaction (see the module docstring)."""
    context = get_context(request)
    database = context.read_database if request.method in READ_METHODS else context.database
    with session_scope(database.session_factory) as session:
        yield session


def client_address(request: Request) -> str | None:
    """The caller's address as the server saw it."""
    return request.client.host if request.client else None


def audit_change(
    session: Session,
    request: Request,
    principal: Principal,
    event: str,
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    secret_fields: tuple[str, ...] = (),
    extra: Mapping[str, Any] | None = None,
    **ids: Any,
) -> None:
    """Append the audit row of a change made through the API: the user, the time, the
    client's address, the request, and the before/after of the changed fields."""
    data: dict[str, Any] = {
        "source": "api",
        "client": client_address(request),
        "method": request.method,
        "path": request.url.path,
        "auth": principal.method,
    }
    data.update(extra or {})
    if before is not None or after is not None:
        data.update(db_audit.changes(before, after, secret_fields=secret_fields))
    db_audit.record(
        session,
        event,
        actor=principal.username,
        when=get_context(request).clock(),
        extra=data,
        **ids,
    )
