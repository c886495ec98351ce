"""Users, their passwords and personal API tokens; login throttling.

Passwords are hashed with argon2 (``argon2-cffi``, in the ``tradewind[server]`` extra, imported
on first use). API tokens are long random strings: only their SHA-256 is stored, which is
enough for a secret with 256 bits of entropy and keeps checking a token cheap.

Repeated failed logins lock the account for a while (:class:`LoginPolicy`): after
``max_failures`` failures in a row each further failure locks it for twice as long as the one
before, up to ``max_lock``. A successful login resets the count.

::

    user = create_user(session, "ada", "s3cret!", roles=["Op"], now=now)
    result = check_password(session, "ada", "s3cret!", now=now)
    token, plain = create_token(session, user.id, "ci", now=now, expires_at=None)
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tradewind.db.models import ApiToken, Role, User, UserRole
from tradewind.errors import AlreadyExists, InvalidArgumentError, NotFound

__all__ = [
    "TOKEN_PREFIX",
    "LoginPolicy",
    "LoginResult",
    "check_password",
    "create_token",
    "create_user",
    "delete_user",
    "find_token",
    "generate_password",
    "get_token",
    "get_user",
    "get_user_by_id",
    "hash_password",
    "hash_token",
    "list_tokens",
    "list_users",
    "record_login",
    "revoke_token",
    "set_password",
    "set_user_roles",
    "update_user",
    "verify_password",
]

#: Every personal API token starts with this, so secret scanners can spot leaked ones.
TOKEN_PREFIX = "twp_"
_MIN_PASSWORD = 8


def _hasher() -> Any:
    try:
        from argon2 import PasswordHasher
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise InvalidArgumentError(
            "password hashing needs argon2-cffi: pip install 'tradewind[server]'"
        ) from None
    return PasswordHasher()


def hash_password(password: str) -> str:
    """The argon2 hash of ``password`` (at least 8 characters)."""
    if not isinstance(password, str) or len(password) < _MIN_PASSWORD:
        raise InvalidArgumentError(
            f"a password needs at least {_MIN_PASSWORD} characters", argument="password"
        )
    return str(_hasher().hash(password))


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (False for a user without a password)."""
    if not password_hash:
        return False
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return bool(_hasher().verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    """A random password to print once (e.g. for the first admin)."""
    return secrets.token_urlsafe(15)


# -- users ---------------------------------------------------------------------------------


def get_user(session: Session, username: str) -> User:
    """The user called ``username``; :class:`NotFound` otherwise."""
    user = session.scalar(sa.select(User).where(User.username == username))
    if user is None:
        raise NotFound("user", username)
    return user


def get_user_by_id(session: Session, user_id: int) -> User:
    """The user with row id ``user_id``; :class:`NotFound` otherwise."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user", str(user_id))
    return user


def list_users(session: Session) -> list[User]:
    """Every user, by username."""
    return list(session.scalars(sa.select(User).order_by(User.username)))


def _roles(session: Session, names: Iterable[str]) -> list[Role]:
    wanted = list(dict.fromkeys(names))
    found = {r.name: r for r in session.scalars(sa.select(Role).where(Role.name.in_(wanted)))}
    for name in wanted:
        if name not in found:
            raise NotFound("role", name)
    return [found[n] for n in wanted]


def set_user_roles(session: Session, user: User, role_names: Iterable[str]) -> list[str]:
    """Give the user exactly these roles; returns their names. :class:`NotFound` for an
    unknown role."""
    roles = _roles(session, role_names)
    session.execute(sa.delete(UserRole).where(UserRole.user_id == user.id))
    for role in roles:
        session.add(UserRole(user_id=user.id, role_id=role.id))
    session.flush()
    return [r.name for r in roles]


def create_user(
    session: Session,
    username: str,
    password: str,
    *,
    now: datetime,
    roles: Sequence[str] = (),
    email: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    active: bool = True,
) -> User:
    """Create a user with these roles; :class:`AlreadyExists` when the name is taken."""
    username = username.strip() if isinstance(username, str) else ""
    if not username:
        raise InvalidArgumentError("a user needs a non-empty username", argument="username")
    if session.scalar(sa.select(User.id).where(User.username == username)) is not None:
        raise AlreadyExists("user", username)
    role_rows = _roles(session, roles)
    user = User(
        username=username,
        email=email,
        first_name=first_name,
        last_name=last_name,
        password_hash=hash_password(password),
        active=active,
        created_at=now,
        updated_at=now,
        login_count=0,
        failed_login_count=0,
    )
    session.add(user)
    session.flush()
    for role in role_rows:
        session.add(UserRole(user_id=user.id, role_id=role.id))
    session.flush()
    return user


_USER_FIELDS = frozenset({"email", "first_name", "last_name", "active"})


def update_user(session: Session, username: str, *, now: datetime, **fields: Any) -> User:
    """Change ``email``, ``first_name``, ``last_name`` or ``active`` of a user."""
    unknown = sorted(set(fields) - _USER_FIELDS)
    if unknown:
        raise InvalidArgumentError(
            f"update_user: unknown field(s) {', '.join(unknown)}", argument=unknown[0]
        )
    user = get_user(session, username)
    for name, value in fields.items():
        setattr(user, name, value)
    user.updated_at = now
    session.flush()
    return user


def set_password(session: Session, username: str, password: str, *, now: datetime) -> User:
    """Replace a user's password (and lift a lock from failed logins)."""
    user = get_user(session, username)
    user.password_hash = hash_password(password)
    user.failed_login_count = 0
    user.locked_until = None
    user.updated_at = now
    session.flush()
    return user


def delete_user(session: Session, username: str) -> None:
    """Delete a user with their role memberships and tokens; :class:`NotFound` if absent."""
    user = get_user(session, username)
    session.execute(sa.delete(UserRole).where(UserRole.user_id == user.id))
    session.execute(sa.delete(ApiToken).where(ApiToken.user_id == user.id))
    session.delete(user)
    session.flush()


# -- logins and throttling ------------------------------------------------------------------


@dataclass(frozen=True)
class LoginPolicy:
    """How failed logins are throttled."""

    #: failures in a row before the account is locked
    max_failures: int = 5
    #: the first lock; each further failure doubles it
    first_lock: timedelta = timedelta(seconds=30)
    #: the longest lock
    max_lock: timedelta = timedelta(minutes=15)

    def lock_for(self, failures: int) -> timedelta | None:
        """How long ``failures`` failures in a row lock the account (None: not locked)."""
        if failures < self.max_failures:
            return None
        doublings = min(failures - self.max_failures, 20)
        return min(self.first_lock * (2**doublings), self.max_lock)


@dataclass(frozen=True)
class LoginResult:
    """The outcome of a password check.

    ``status`` is ``"ok"``, ``"bad"`` (unknown user or wrong password: callers must not tell
    which), ``"inactive"`` or ``"locked"`` (then ``retry_after`` says until when).
    """

    status: str
    user: User | None = None
    retry_after: datetime | None = None

    @property
    def ok(self) -> bool:
        """Whether the login succeeded."""
        return self.status == "ok"


def check_password(
    session: Session,
    username: str,
    password: str,
    *,
    now: datetime,
    policy: LoginPolicy | None = None,
    record: bool = True,
) -> LoginResult:
    """Check a username and password, counting failures and locking as ``policy`` says.

    With ``record`` (the default) the outcome is written: a failure raises the user's failure
    count (and may lock the account); a success resets it and stamps ``last_login``. A locked
    account fails without its password being checked.
    """
    policy = policy or LoginPolicy()
    user = session.scalar(sa.select(User).where(User.username == username))
    if user is None:
        return LoginResult("bad")
    if user.locked_until is not None and user.locked_until > now:
        return LoginResult("locked", user, user.locked_until)
    if not verify_password(user.password_hash, password):
        if record:
            failures = (user.failed_login_count or 0) + 1
            lock = policy.lock_for(failures)
            user.failed_login_count = failures
            user.locked_until = now + lock if lock is not None else None
            session.flush()
            if lock is not None:
                return LoginResult("locked", user, user.locked_until)
        return LoginResult("bad", user)
    if not user.active:
        return LoginResult("inactive", user)
    if record:
        record_login(session, user, now=now)
    return LoginResult("ok", user)


def record_login(session: Session, user: User, *, now: datetime) -> None:
    """Stamp a successful login: count it, reset failures, lift any lock."""
    user.last_login = now
    user.login_count = (user.login_count or 0) + 1
    user.failed_login_count = 0
    user.locked_until = None
    session.flush()


# -- API tokens ------------------------------------------------------------------------------


def hash_token(token: str) -> str:
    """The stored form of a token (SHA-256, hex)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    session: Session,
    user_id: int,
    name: str,
    *,
    now: datetime,
    expires_at: datetime | None,
) -> tuple[ApiToken, str]:
    """Create a token for the user; returns the row and the token itself (shown only once)."""
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise InvalidArgumentError("a token needs a non-empty name", argument="name")
    if expires_at is not None and expires_at <= now:
        raise InvalidArgumentError("expires_at must be in the future", argument="expires_at")
    get_user_by_id(session, user_id)
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user_id,
        name=name,
        token_hash=hash_token(plain),
        prefix=plain[: len(TOKEN_PREFIX) + 6],
        created_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return row, plain


def get_token(session: Session, token_id: int, *, user_id: int | None = None) -> ApiToken:
    """A token by id (of ``user_id``, when given); :class:`NotFound` otherwise."""
    row = session.get(ApiToken, token_id)
    if row is None or (user_id is not None and row.user_id != user_id):
        raise NotFound("API token", str(token_id))
    return row


def list_tokens(session: Session, user_id: int) -> list[ApiToken]:
    """The user's tokens (revoked and expired ones too), newest first."""
    statement = (
        sa.select(ApiToken)
        .where(ApiToken.user_id == user_id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )
    return list(session.scalars(statement))


def revoke_token(
    session: Session, token_id: int, *, now: datetime, user_id: int | None = None
) -> ApiToken:
    """Revoke a token (it stops working at once); revoking twice changes nothing."""
    row = get_token(session, token_id, user_id=user_id)
    if row.revoked_at is None:
        row.revoked_at = now
        session.flush()
    return row


def find_token(session: Session, token: str, *, now: datetime) -> tuple[ApiToken, User] | None:
    """The live token and its active user for a presented token, or None (unknown, revoked,
    expired, or the user is inactive)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.execute(
        sa.select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == hash_token(token))
    ).first()
    if row is None:
        return None
    api_token, user = row
    if api_token.revoked_at is not None or not user.active:
        return None
    if api_token.expires_at is not None and api_token.expires_at <= now:
        return None
    return api_token, user
