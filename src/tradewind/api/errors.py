"""The one place where errors become HTTP responses.

Every error the API returns has the same body, a problem document (RFC 9457, the shape
Airflow's REST API uses)::

    {"type": "urn:tradewind:problem:not-found", "title": "Not Found", "status": 404,
     "detail": "DAG 'etl' not found", "instance": "/api/v1/dags/etl"}

plus ``field`` when one input is to blame (``"query.limit"``, ``"body.conf"``, ``"order_by"``).

:data:`STATUS_MAP` maps the :mod:`tradewind.errors` hierarchy (and the API's own
authentication errors, defined here) to status codes: unknown ids are 404, conflicts with what
exists (a duplicate id, a state change the state machine forbids) 409, bad input 400, missing
or wrong credentials 401, missing permissions 403, too many failed logins 429. Request
validation errors (a query parameter or body field of the wrong type) are 400 naming the field.
Anything else is a real fault: 500, logged with its traceback, its message not shown.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from tradewind.errors import (
    AlreadyExists,
    DagDefinitionError,
    InvalidArgumentError,
    InvalidTransition,
    MappingError,
    NotFound,
    ParamValidationError,
    ScheduleError,
    TradewindError,
    XComError,
)

__all__ = [
    "STATUS_MAP",
    "BadRequest",
    "Conflict",
    "LoginThrottled",
    "PermissionDenied",
    "Problem",
    "Unauthenticated",
    "install_error_handlers",
    "problem_response",
    "responses",
]

log = logging.getLogger(__name__)

PROBLEM_TYPE = "urn:tradewind:problem:"
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(BaseModel):
    """The body of every error response."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    field: str | None = None


class Unauthenticated(TradewindError):
    """No credentials, or credentials that are not valid."""


class PermissionDenied(TradewindError):
    """The caller is known but lacks the permission (``resource.action``, maybe on a DAG)."""

    def __init__(self, message: str, *, permission: str | None = None) -> None:
        self.permission = permission
        super().__init__(message)


class LoginThrottled(TradewindError):
    """Too many failed logins: the account is locked until ``retry_after``."""

    def __init__(self, message: str, *, retry_after: datetime) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class BadRequest(TradewindError):
    """A request the API cannot act on; ``field`` names the input at fault."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class Conflict(TradewindError):
    """A request that clashes with the current state of something."""


#: Exception classes and their status codes, most specific first.
STATUS_MAP: Sequence[tuple[type[BaseException], int]] = (
    (Unauthenticated, 401),
    (PermissionDenied, 403),
    (LoginThrottled, 429),
    (NotFound, 404),
    (AlreadyExists, 409),
    (InvalidTransition, 409),
    (Conflict, 409),
    (BadRequest, 400),
    (ParamValidationError, 400),
    (InvalidArgumentError, 400),
    (ScheduleError, 400),
    (MappingError, 400),
    (XComError, 400),
    (DagDefinitionError, 400),
)


def status_for(exc: BaseException) -> int:
    """The status code for an exception (500 for anything not in :data:`STATUS_MAP`)."""
    for cls, status in STATUS_MAP:
        if isinstance(exc, cls):
            return status
    return 500


def _field_of(exc: BaseException) -> str | None:
    for attribute in ("field", "argument", "param"):
        value = getattr(exc, attribute, None)
        if isinstance(value, str) and value:
            return value
    return None


def problem_response(
    status: int,
    detail: str,
    *,
    instance: str | None = None,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem document response."""
    title = _TITLES.get(status, "Error")
    body = Problem(
        type=PROBLEM_TYPE + title.lower().replace(" ", "-"),
        title=title,
        status=status,
        detail=detail,
        instance=instance,
        field=field,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        headers=headers,
        media_type="application/problem+json",
    )


def _location(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    return ".".join(parts) if parts else "request"


def _validation_detail(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    messages = []
    for error in errors[:5]:
        where = _location(error.get("loc", ()))
        messages.append(f"{where}: {error.get('msg', 'invalid value')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(messages) + more, _location(errors[0].get("loc", ()))


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` a problem document, as the module docstring says."""

    async def on_tradewind_error(request: Request, exc: Exception) -> JSONResponse:
        status = status_for(exc)
        if status == 500:
            log.error("error serving %s %s", request.method, request.url.path, exc_info=exc)
            return problem_response(
                500, "the server hit an unexpected error", instance=request.url.path
            )
        headers: dict[str, str] = {}
        if isinstance(exc, Unauthenticated):
            headers["WWW-Authenticate"] = 'Basic realm="Tradewind", Bearer'
        if isinstance(exc, LoginThrottled):
            now = datetime.now(exc.retry_after.tzinfo)
            headers["Retry-After"] = str(max(int((exc.retry_after - now).total_seconds()) + 1, 1))
        return problem_response(
            status,
            str(exc),
            instance=request.url.path,
            field=_field_of(exc),
            headers=headers or None,
        )

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        detail, field = _validation_detail(exc)
        return problem_response(400, detail, instance=request.url.path, field=field)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "")
        return problem_response(
            exc.status_code,
            detail or _TITLES.get(exc.status_code, "error"),
            instance=request.url.path,
            headers=dict(exc.headers) if exc.headers else None,
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("error serving %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(
            500, "the server hit an unexpected error", instance=request.url.path
        )

    app.add_exception_handler(TradewindError, on_tradewind_error)
    # KeyError subclasses of NotFound are TradewindErrors too; plain ValueErrors from deep
    # inside are faults and end up in on_unexpected.
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses (all problem documents)."""
    return {
        status: {
            "model": Problem,
            "description": _TITLES.get(status, "Error"),
            "content": {"application/problem+json": {}},
        }
        for status in statuses
    }
