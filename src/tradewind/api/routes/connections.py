"""Connections: list, create, get, update, delete. Secrets never leave the server: a stored
password shows as ``***`` and so do ``extra`` fields whose names say they are secret. Sending
``***`` back as the password (as a form that round-trips what it was shown does) keeps the
stored one."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.orm import Session

from tradewind.api.auth import requires
from tradewind.api.context import Principal, audit_change, db_session, get_context
from tradewind.api.errors import BadRequest, responses
from tradewind.api.schemas import Body, PageParams, pagination
from tradewind.db import connections as db_connections
from tradewind.db import pages
from tradewind.sdk.connection import Connection

__all__ = ["router"]

router = APIRouter(tags=["Connection"])

MASK = "***"
_FIELDS = ("conn_type", "description", "host", "login", "schema", "port", "password", "extra")
_SECRET_FIELDS = ("password", "extra")


class ConnectionModel(BaseModel):
    """A connection with its secrets masked."""

    connection_id: str
    conn_type: str | None
    description: str | None
    host: str | None
    login: str | None
    schema_: str | None = Field(alias="schema")
    port: int | None
    password: str | None = Field(description="'***' when a password is stored, else null.")
    extra: str | None = Field(description="JSON object text; secret-looking fields are '***'.")

    model_config = {"populate_by_name": True}


class ConnectionCollectionItem(BaseModel):
    """A connection in a listing (no secrets at all)."""

    connection_id: str
    conn_type: str | None
    description: str | None
    host: str | None
    login: str | None
    schema_: str | None = Field(alias="schema")
    port: int | None

    model_config = {"populate_by_name": True}


class ConnectionCollection(BaseModel):
    """A page of connections."""

    connections: list[ConnectionCollectionItem]
    total_entries: int


def _check_extra(value: str | dict[str, Any] | None) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return json.dumps(value)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"extra must be a JSON object: {exc}") from None
    if not isinstance(parsed, dict):
        raise ValueError("extra must be a JSON object")
    return value


class ConnectionBody(Body):
    """A connection to store (``password`` is write-only)."""

    connection_id: str = Field(..., min_length=1, max_length=250, pattern=r"^[\w.\-]+$")
    conn_type: str | None = Field(None, max_length=500)
    description: str | None = None
    host: str | None = Field(None, max_length=500)
    login: str | None = None
    schema_: str | None = Field(None, alias="schema", max_length=500)
    port: int | None = Field(None, ge=1, le=65535)
    password: str | None = None
    extra: str | dict[str, Any] | None = None

    model_config = {"populate_by_name": True, "extra": "forbid"}

    @field_validator("extra")
    @classmethod
    def _extra_is_object(cls, value: str | dict[str, Any] | None) -> str | None:
        return _check_extra(value)


class ConnectionPatch(Body):
    """Fields of a connection to change (``update_mask`` limits which)."""

    connection_id: str | None = Field(None, min_length=1, max_length=250)
    conn_type: str | None = Field(None, max_length=500)
    description: str | None = None
    host: str | None = Field(None, max_length=500)
    login: str | None = None
    schema_: str | None = Field(None, alias="schema", max_length=500)
    port: int | None = Field(None, ge=1, le=65535)
    password: str | None = None
    extra: str | dict[str, Any] | None = None

    model_config = {"populate_by_name": True, "extra": "forbid"}

    @field_validator("extra")
    @classmethod
    def _extra_is_object(cls, value: str | dict[str, Any] | None) -> str | None:
        return _check_extra(value)


def _masked_extra(conn: Connection) -> str | None:
    if not conn.extra:
        return None
    return json.dumps(conn.to_dict(redact=True)["extra"])


def _model(conn: Connection) -> ConnectionModel:
    return ConnectionModel(
        connection_id=conn.conn_id,
        conn_type=conn.conn_type,
        description=conn.description,
        host=conn.host,
        login=conn.login,
        schema=conn.schema,
        port=conn.port,
        password=MASK if conn.password else None,
        extra=_masked_extra(conn),
    )


def _state(conn: Connection) -> dict[str, Any]:
    return {name: getattr(conn, name) for name in _FIELDS} | {"extra": conn.get_extra()}


@router.get("/connections", response_model=ConnectionCollection, responses=responses(400, 401, 403))
def get_connections(
    request: Request,
    page: PageParams = Depends(pagination("connection_id", pages.order_fields("connections"))),
    principal: Principal = Depends(requires("connections", "read")),
    session: Session = Depends(db_session),
) -> ConnectionCollection:
    """List connections (without secrets)."""
    result = pages.connections_page(
        session, limit=page.limit, offset=page.offset, order_by=page.order_by
    )
    return ConnectionCollection(
        connections=[
            ConnectionCollectionItem(
                connection_id=r.conn_id,
                conn_type=r.conn_type,
                description=r.description,
                host=r.host,
                login=r.login,
                schema=r.schema,
                port=r.port,
            )
            for r in result.rows
        ],
        total_entries=result.total,
    )


@router.post(
    "/connections", response_model=ConnectionModel, responses=responses(400, 401, 403, 409)
)
def post_connection(
    body: ConnectionBody,
    request: Request,
    principal: Principal = Depends(requires("connections", "create")),
    session: Session = Depends(db_session),
) -> ConnectionModel:
    """Create a connection; 409 when the id is taken."""
    context = get_context(request)
    conn = Connection(
        conn_id=body.connection_id,
        conn_type=body.conn_type,
        description=body.description,
        host=body.host,
        login=body.login,
        schema=body.schema_,
        port=body.port,
        password=body.password,
        extra=_check_extra(body.extra),
    )
    db_connections.add_connection(
        session, conn, fernet=context.database.fernet, now=context.clock()
    )
    audit_change(
        session,
        request,
        principal,
        "api.connections.create",
        after=_state(conn),
        secret_fields=_SECRET_FIELDS,
        extra={"conn_id": conn.conn_id},
    )
    return _model(conn)


@router.get(
    "/connections/{connection_id}",
    response_model=ConnectionModel,
    responses=responses(401, 403, 404),
)
def get_connection(
    connection_id: str,
    request: Request,
    principal: Principal = Depends(requires("connections", "read")),
    session: Session = Depends(db_session),
) -> ConnectionModel:
    """Get a connection (secrets masked)."""
    fernet = get_context(request).database.fernet
    return _model(db_connections.get_connection(session, connection_id, fernet=fernet))


_PATCHABLE = {"conn_type", "description", "host", "login", "schema", "port", "password", "extra"}


@router.patch(
    "/connections/{connection_id}",
    response_model=ConnectionModel,
    responses=responses(400, 401, 403, 404),
)
def patch_connection(
    connection_id: str,
    body: ConnectionPatch,
    request: Request,
    update_mask: list[str] | None = Query(None, description="Fields to change."),
    principal: Principal = Depends(requires("connections", "edit")),
    session: Session = Depends(db_session),
) -> ConnectionModel:
    """Change fields of a connection (those in ``update_mask``, else those sent)."""
    if body.connection_id is not None and body.connection_id != connection_id:
        raise BadRequest("connection_id in the body differs from the path", field="connection_id")
    sent = {"schema" if n == "schema_" else n for n in body.model_fields_set} - {"connection_id"}
    mask = set(update_mask) if update_mask else sent
    unknown = sorted(mask - _PATCHABLE)
    if unknown:
        raise BadRequest(f"update_mask: unknown field(s) {', '.join(unknown)}", field="update_mask")
    context = get_context(request)
    fernet = context.database.fernet
    conn = db_connections.get_connection(session, connection_id, fernet=fernet)
    before = _state(conn)
    for name in mask:
        value = getattr(body, "schema_" if name == "schema" else name)
        if name == "password" and value == MASK:
            continue
        setattr(conn, name, value)
    db_connections.set_connection(session, conn, fernet=fernet, now=context.clock())
    audit_change(
        session,
        request,
        principal,
        "api.connections.patch",
        before=before,
        after=_state(conn),
        secret_fields=_SECRET_FIELDS,
        extra={"conn_id": connection_id},
    )
    return _model(conn)


@router.delete(
    "/connections/{connection_id}",
    status_code=204,
    response_class=Response,
    responses=responses(401, 403, 404),
)
def delete_connection(
    connection_id: str,
    request: Request,
    principal: Principal = Depends(requires("connections", "delete")),
    session: Session = Depends(db_session),
) -> Response:
    """Delete a connection."""
    fernet = get_context(request).database.fernet
    before = _state(db_connections.get_connection(session, connection_id, fernet=fernet))
    db_connections.delete_connection(session, connection_id)
    audit_change(
        session,
        request,
        principal,
        "api.connections.delete",
        before=before,
        secret_fields=_SECRET_FIELDS,
        extra={"conn_id": connection_id},
    )
    return Response(status_code=204)
