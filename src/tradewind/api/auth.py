"""Who is calling and may they: authentication and the permission dependency.

Every route declares what it needs the same way::

    @router.get("/dags/{dag_id}")
    def get_dag(dag_id: str, principal: Principal = Depends(requires("dags", "read"))): ...

:func:`requires` authenticates the caller (a personal API token as ``Authorization: Bearer``,
a username and password as HTTP basic auth, or the web UI's session through
:attr:`~tradewind.api.context.ApiContext.session_authenticator`), then checks the permission.
For the DAG resources the check is made on the DAG of the ``dag_id`` path parameter (a role
may cover only some DAGs); routes over every DAG (``~``) filter their rows with
:meth:`~tradewind.db.roles.Access.dag_ids`.

Basic auth checks an argon2 hash, which is slow on purpose; a successful check is remembered
in memory (keyed by a digest of the credentials, valid while the user's password hash stays the
same) so scripts calling the API in a loop do not pay for it on every request. Failed logins
are counted and throttled in the database (:class:`~tradewind.db.users.LoginPolicy`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from fastapi import Depends, Request
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)
from sqlalchemy.orm import Session

from tradewind.api.context import READ_METHODS, Principal, db_session, get_context
from tradewind.api.errors import LoginThrottled, PermissionDenied, Unauthenticated
from tradewind.db import roles as db_roles
from tradewind.db import users as db_users
from tradewind.db.engine import session_scope
from tradewind.db.models import Dag

__all__ = ["authenticate", "check_dag", "requires", "visible_dag_ids"]

_basic = HTTPBasic(auto_error=False, realm="Tradewind")
_bearer = HTTPBearer(auto_error=False)
# The process's own key for the credential cache: digests mean nothing outside it.
_CACHE_KEY = secrets.token_bytes(32)
_CACHE_LIMIT = 10_000
# Token use is stamped at most this often (it costs a write).
_TOKEN_STAMP_EVERY = timedelta(minutes=1)
_T = TypeVar("_T")


def _write_now(request: Request, session: Session, action: Callable[[Session], _T]) -> _T:
    """Run ``action`` in a transaction that is committed at once, even if the request fails
    afterwards (a failed login must be counted).

    A request that writes already holds the write lock in ``session`` (SQLite): the action
    runs there and is committed. A read request's session is on the read engine: the action
    gets a short transaction of its own on the write engine.
    """
    context = get_context(request)
    if request.method not in READ_METHODS or context.read_database is context.database:
        result = action(session)
        session.commit()
        return result
    with session_scope(context.database.session_factory) as write:
        return action(write)


def _cache_key(username: str, password: str) -> str:
    message = username.encode() + b"\0" + password.encode()
    return hmac.new(_CACHE_KEY, message, hashlib.sha256).hexdigest()


def _basic_login(
    request: Request, session: Session, credentials: HTTPBasicCredentials
) -> Principal:
    context = get_context(request)
    username, password = credentials.username, credentials.password
    key = _cache_key(username, password)
    known_hash = context.password_cache.get(key)
    user = None
    if known_hash is not None:
        try:
            user = db_users.get_user(session, username)
        except LookupError:
            user = None
        now = context.clock()
        if (
            user is None
            or user.password_hash != known_hash
            or not user.active
            or (user.locked_until is not None and user.locked_until > now)
        ):
            context.password_cache.pop(key, None)
            user = None
    if user is None:
        user = _check_and_record(request, session, username, password)
        if len(context.password_cache) >= _CACHE_LIMIT:
            context.password_cache.clear()
        if user.password_hash:
            context.password_cache[key] = user.password_hash
    return Principal(user.id, user.username, db_roles.access_for_user(session, user.id), "basic")


def _check_and_record(
    request: Request, session: Session, username: str, password: str
) -> db_users.User:
    context = get_context(request)
    now = context.clock()
    result = _write_now(
        request,
        session,
        lambda s: db_users.check_password(
            s, username, password, now=now, policy=context.login_policy
        ),
    )
    if result.status == "locked" and result.retry_after is not None:
        raise LoginThrottled(
            "too many failed logins; try again after " + result.retry_after.isoformat(),
            retry_after=result.retry_after,
        )
    if not result.ok or result.user is None:
        raise Unauthenticated("invalid username or password")
    return result.user


def _token_login(request: Request, session: Session, token: str) -> Principal:
    context = get_context(request)
    now = context.clock()
    found = db_users.find_token(session, token, now=now)
    if found is None:
        raise Unauthenticated("invalid, expired or revoked API token")
    api_token, user = found
    if api_token.last_used_at is None or now - api_token.last_used_at > _TOKEN_STAMP_EVERY:
        token_id = api_token.id

        def stamp(s: Session) -> None:
            db_users.get_token(s, token_id).last_used_at = now

        _write_now(request, session, stamp)
    return Principal(user.id, user.username, db_roles.access_for_user(session, user.id), "token")


def authenticate(
    request: Request,
    session: Session = Depends(db_session),
    basic: HTTPBasicCredentials | None = Depends(_basic),
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> Principal:
    """The calling user: by API token, basic auth or UI session (in that order)."""
    context = get_context(request)
    if bearer is not None:
        return _token_login(request, session, bearer.credentials)
    if basic is not None:
        return _basic_login(request, session, basic)
    if context.session_authenticator is not None:
        user = context.session_authenticator(request, session)
        if user is not None and user.active:
            return Principal(
                user.id, user.username, db_roles.access_for_user(session, user.id), "session"
            )
    raise Unauthenticated("authentication required: an API token (Bearer) or basic auth")


def _dag_tags(session: Session, dag_id: str) -> list[str] | None:
    dag = session.get(Dag, dag_id)
    return list(dag.tags or []) if dag is not None else None


def check_dag(
    principal: Principal, session: Session, resource: str, action: str, dag_id: str
) -> None:
    """Raise :class:`PermissionDenied` unless ``resource.action`` holds on ``dag_id``."""
    access = principal.access
    if access.all_dags(resource, action):
        return
    if not access.allows_dag(resource, action, dag_id, _dag_tags(session, dag_id)):
        raise PermissionDenied(
            f"user {principal.username!r} lacks the permission {resource}.{action} "
            f"on DAG {dag_id!r}",
            permission=f"{resource}.{action}",
        )


def visible_dag_ids(
    principal: Principal, session: Session, resource: str = "dags", action: str = "read"
) -> set[str] | None:
    """The DAG ids ``resource.action`` holds on for the caller (None: every DAG)."""
    return principal.access.dag_ids(session, resource, action)


def requires(resource: str, action: str) -> Callable[..., Principal]:
    """A dependency that authenticates the caller and checks ``resource.action``.

    For the DAG resources (:data:`~tradewind.db.roles.DAG_RESOURCES`) with a ``dag_id`` path
    parameter other than ``~`` the permission must hold on that DAG.
    """
    if action not in db_roles.RESOURCES.get(resource, ()):
        raise ValueError(f"unknown permission {resource}.{action}")
    permission = f"{resource}.{action}"

    def dependency(
        request: Request,
        principal: Principal = Depends(authenticate),
        session: Session = Depends(db_session),
    ) -> Principal:
        if not principal.access.allows(resource, action):
            raise PermissionDenied(
                f"user {principal.username!r} lacks the permission {permission}",
                permission=permission,
            )
        dag_id = request.path_params.get("dag_id")
        if resource in db_roles.DAG_RESOURCES and isinstance(dag_id, str) and dag_id != "~":
            check_dag(principal, session, resource, action, dag_id)
        return principal

    dependency.__name__ = f"requires_{resource}_{action}"
    return dependency
