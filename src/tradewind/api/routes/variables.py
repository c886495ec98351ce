"""Variables: list, create or replace, get, update, delete. Values whose key names a secret
(``password``, ``token`` …) are shown as ``***``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from tradewind.api.auth import requires
from tradewind.api.context import Principal, audit_change, db_session, get_context
from tradewind.api.errors import BadRequest, responses
from tradewind.api.schemas import Body, PageParams, pagination
from tradewind.db import pages
from tradewind.db import variables as db_variables
from tradewind.db.models import Variable
from tradewind.sdk.connection import is_sensitive_key

__all__ = ["router"]

router = APIRouter(tags=["Variable"])

MASK = "***"
# Variables often hold secrets under harmless names: the audit log never keeps values.


class VariableModel(BaseModel):
    """A variable (the value masked when the key names a secret)."""

    key: str
    value: str
    description: str | None


class VariableCollection(BaseModel):
    """A page of variables."""

    variables: list[VariableModel]
    total_entries: int


class VariableBody(Body):
    """A variable to store."""

    key: str = Field(..., min_length=1, max_length=250)
    value: str
    description: str | None = None


def _model(row: Variable, value: str) -> VariableModel:
    shown = MASK if is_sensitive_key(row.key) and value else value
    return VariableModel(key=row.key, value=shown, description=row.description)


def _state(row: Variable, value: str) -> dict[str, object]:
    return {"value": value, "description": row.description}


@router.get("/variables", response_model=VariableCollection, responses=responses(400, 401, 403))
def get_variables(
    request: Request,
    page: PageParams = Depends(pagination("key", pages.order_fields("variables"))),
    principal: Principal = Depends(requires("variables", "read")),
    session: Session = Depends(db_session),
) -> VariableCollection:
    """List variables."""
    fernet = get_context(request).database.fernet
    result = pages.variables_page(
        session, limit=page.limit, offset=page.offset, order_by=page.order_by
    )
    return VariableCollection(
        variables=[_model(r, db_variables.variable_value(r, fernet)) for r in result.rows],
        total_entries=result.total,
    )


@router.post("/variables", response_model=VariableModel, responses=responses(400, 401, 403))
def post_variable(
    body: VariableBody,
    request: Request,
    principal: Principal = Depends(requires("variables", "create")),
    session: Session = Depends(db_session),
) -> VariableModel:
    """Create a variable (or replace the one with that key, as Airflow does)."""
    context = get_context(request)
    fernet = context.database.fernet
    try:
        old = db_variables.get_variable_row(session, body.key)
        before = _state(old, db_variables.variable_value(old, fernet))
    except LookupError:
        before = None
    row = db_variables.set_variable(
        session,
        body.key,
        body.value,
        fernet=fernet,
        now=context.clock(),
        description=body.description,
    )
    audit_change(
        session,
        request,
        principal,
        "api.variables.create",
        before=before,
        after=_state(row, body.value),
        secret_fields=("value",),
        extra={"key": body.key},
    )
    return _model(row, body.value)


@router.get(
    "/variables/{variable_key}", response_model=VariableModel, responses=responses(401, 403, 404)
)
def get_variable(
    variable_key: str,
    request: Request,
    principal: Principal = Depends(requires("variables", "read")),
    session: Session = Depends(db_session),
) -> VariableModel:
    """Get a variable."""
    row = db_variables.get_variable_row(session, variable_key)
    return _model(row, db_variables.variable_value(row, get_context(request).database.fernet))


class VariablePatch(Body):
    """Fields of a variable to change."""

    key: str | None = Field(None, min_length=1, max_length=250)
    value: str | None = None
    description: str | None = None


@router.patch(
    "/variables/{variable_key}",
    response_model=VariableModel,
    responses=responses(400, 401, 403, 404),
)
def patch_variable(
    variable_key: str,
    body: VariablePatch,
    request: Request,
    update_mask: list[str] | None = Query(
        None, description="Fields to change: value, description."
    ),
    principal: Principal = Depends(requires("variables", "edit")),
    session: Session = Depends(db_session),
) -> VariableModel:
    """Change a variable's value and/or description (``update_mask`` limits which)."""
    if body.key is not None and body.key != variable_key:
        raise BadRequest("the key in the body differs from the one in the path", field="key")
    mask = set(update_mask or [n for n in ("value", "description") if n in body.model_fields_set])
    unknown = sorted(mask - {"value", "description"})
    if unknown:
        raise BadRequest(f"update_mask: unknown field(s) {', '.join(unknown)}", field="update_mask")
    context = get_context(request)
    fernet = context.database.fernet
    row = db_variables.get_variable_row(session, variable_key)
    old_value = db_variables.variable_value(row, fernet)
    before = _state(row, old_value)
    value = body.value if "value" in mask else old_value
    if value is None:
        raise BadRequest("value must be a string", field="value")
    if "description" in mask:
        row.description = body.description
    row = db_variables.set_variable(
        session, variable_key, value, fernet=fernet, now=context.clock()
    )
    audit_change(
        session,
        request,
        principal,
        "api.variables.patch",
        before=before,
        after=_state(row, value),
        secret_fields=("value",),
        extra={"key": variable_key},
    )
    return _model(row, value)


@router.delete(
    "/variables/{variable_key}",
    status_code=204,
    response_class=Response,
    responses=responses(401, 403, 404),
)
def delete_variable(
    variable_key: str,
    request: Request,
    principal: Principal = Depends(requires("variables", "delete")),
    session: Session = Depends(db_session),
) -> Response:
    """Delete a variable."""
    row = db_variables.get_variable_row(session, variable_key)
    before = _state(row, db_variables.variable_value(row, get_context(request).database.fernet))
    db_variables.delete_variable(session, variable_key)
    audit_change(
        session,
        request,
        principal,
        "api.variables.delete",
        before=before,
        secret_fields=("value",),
        extra={"key": variable_key},
    )
    return Response(status_code=204)
