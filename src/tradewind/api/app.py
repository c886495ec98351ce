"""The application factory: :func:`create_app` builds the FastAPI app for one database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from tradewind._version import __version__
from tradewind.api.context import ApiContext, SessionAuthenticator
from tradewind.api.errors import install_error_handlers
from tradewind.config import Settings
from tradewind.db.database import Database
from tradewind.db.engine import create_engine, make_session_factory, session_scope
from tradewind.db.roles import sync_builtin_roles
from tradewind.db.users import LoginPolicy

__all__ = ["API_PREFIX", "create_app"]

#: Where the versioned API lives.
API_PREFIX = "/api/v1"

_DESCRIPTION = """\
The Tradewind REST API. Paths, parameters and JSON field names follow Airflow's stable REST
API v1 wherever the resource exists there.

Authenticate with a personal API token (`Authorization: Bearer twp_…`, create one at
`POST /api/v1/users/me/tokens`) or HTTP basic auth. Lists take `limit`, `offset` and
`order_by` (a field name, `-` in front for descending) and answer with `total_entries`.
Every error is a problem document: `{"type", "title", "status", "detail"}` (plus `field`
when one input is at fault).
"""


def _read_database(database: Database) -> Database:
    """A database object for reads: on a SQLite file, an engine whose transactions do not
    take the write lock up front; otherwise (PostgreSQL, in-memory SQLite) the same one."""
    url = database.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return database
    engine = create_engine(url, sqlite_immediate=False)
    return Database(
        engine=engine, session_factory=make_session_factory(engine), fernet=database.fernet
    )


def create_app(
    settings: Settings,
    database: Database | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    login_policy: LoginPolicy | None = None,
    session_authenticator: SessionAuthenticator | None = None,
) -> FastAPI:
    """The API application for ``database`` (default: the one ``settings`` names), whose
    schema must be at the newest revision.

    The built-in roles (Admin, Op, User, Viewer) are created or brought in line with this
    version first. ``clock`` replaces the real clock (tests); ``session_authenticator`` is
    the web UI's cookie login (see :class:`~tradewind.api.context.ApiContext`).
    """
    from tradewind.api.routes import ROUTERS

    database = database or Database.from_settings(settings)
    context = ApiContext(
        settings=settings,
        database=database,
        read_database=_read_database(database),
        login_policy=login_policy or LoginPolicy(),
        clock=clock or (lambda: datetime.now(UTC)),
        session_authenticator=session_authenticator,
    )
    _sync_roles(database, context.clock())

    app = FastAPI(
        title="Tradewind",
        version=__version__,
        description=_DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.tradewind = context
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _sync_roles(database: Database, now: datetime) -> None:
    """Bring the built-in roles in line; several workers starting at once may race to
    create them, and the loser finds them made on its second try."""
    from sqlalchemy.exc import IntegrityError

    for attempt in range(2):
        try:
            with session_scope(database.session_factory) as session:
                sync_builtin_roles(session, now=now)
            return
        except IntegrityError:
            if attempt:
                raise


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The schema, with request validation errors documented as the 400 problem documents
    they are (FastAPI would announce 422 with its own body)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None and "400" not in responses:
                responses["400"] = {"description": "Bad Request"}
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = dict(problem)
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    app.openapi_schema = schema
    return schema
