"""Pools: list (with their use), create, get, update, delete (``default_pool`` stays)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from tradewind.api.auth import requires
from tradewind.api.context import Principal, audit_change, db_session
from tradewind.api.errors import BadRequest, responses
from tradewind.api.schemas import Body, PageParams, pagination
from tradewind.db import pages
from tradewind.db import pools as db_pools
from tradewind.db.models import SlotPool
from tradewind.errors import AlreadyExists, NotFound

__all__ = ["router"]

router = APIRouter(tags=["Pool"])


class PoolModel(BaseModel):
    """A pool and how its slots are used now."""

    name: str
    slots: int
    occupied_slots: int
    running_slots: int
    queued_slots: int
    deferred_slots: int
    open_slots: int
    description: str | None
    include_deferred: bool


class PoolCollection(BaseModel):
    """A page of pools."""

    pools: list[PoolModel]
    total_entries: int


class PoolBody(Body):
    """A pool to create."""

    name: str = Field(..., min_length=1, max_length=256)
    slots: int = Field(..., ge=0, le=2**31 - 1)
    description: str | None = None
    include_deferred: bool = False


class PoolPatch(Body):
    """Fields of a pool to change."""

    name: str | None = Field(None, min_length=1, max_length=256)
    slots: int | None = Field(None, ge=0, le=2**31 - 1)
    description: str | None = None
    include_deferred: bool | None = None


def _models(session: Session, rows: list[SlotPool]) -> list[PoolModel]:
    stats = {s.pool: s for s in db_pools.pool_stats(session, [r.pool for r in rows])}
    out = []
    for row in rows:
        s = stats[row.pool]
        out.append(
            PoolModel(
                name=row.pool,
                slots=row.slots,
                occupied_slots=s.occupied,
                running_slots=s.running,
                queued_slots=s.queued,
                deferred_slots=s.deferred,
                open_slots=s.open,
                description=row.description,
                include_deferred=row.include_deferred,
            )
        )
    return out


def _state(row: SlotPool) -> dict[str, object]:
    return {
        "slots": row.slots,
        "description": row.description,
        "include_deferred": row.include_deferred,
    }


@router.get("/pools", response_model=PoolCollection, responses=responses(400, 401, 403))
def get_pools(
    page: PageParams = Depends(pagination("name", pages.order_fields("pools"))),
    principal: Principal = Depends(requires("pools", "read")),
    session: Session = Depends(db_session),
) -> PoolCollection:
    """List pools."""
    result = pages.pools_page(session, limit=page.limit, offset=page.offset, order_by=page.order_by)
    return PoolCollection(pools=_models(session, result.rows), total_entries=result.total)


@router.post("/pools", response_model=PoolModel, responses=responses(400, 401, 403, 409))
def post_pool(
    body: PoolBody,
    request: Request,
    principal: Principal = Depends(requires("pools", "create")),
    session: Session = Depends(db_session),
) -> PoolModel:
    """Create a pool; 409 when the name is taken."""
    try:
        db_pools.get_pool(session, body.name)
    except NotFound:
        pass
    else:
        raise AlreadyExists("pool", body.name)
    row = db_pools.set_pool(
        session,
        body.name,
        body.slots,
        description=body.description,
        include_deferred=body.include_deferred,
    )
    audit_change(
        session,
        request,
        principal,
        "api.pools.create",
        after=_state(row),
        extra={"pool": body.name},
    )
    return _models(session, [row])[0]


@router.get("/pools/{pool_name}", response_model=PoolModel, responses=responses(401, 403, 404))
def get_pool(
    pool_name: str,
    principal: Principal = Depends(requires("pools", "read")),
    session: Session = Depends(db_session),
) -> PoolModel:
    """Get a pool."""
    return _models(session, [db_pools.get_pool(session, pool_name)])[0]


@router.patch(
    "/pools/{pool_name}", response_model=PoolModel, responses=responses(400, 401, 403, 404)
)
def patch_pool(
    pool_name: str,
    body: PoolPatch,
    request: Request,
    update_mask: list[str] | None = Query(None, description="Fields to change."),
    principal: Principal = Depends(requires("pools", "edit")),
    session: Session = Depends(db_session),
) -> PoolModel:
    """Change a pool's slots, description or include_deferred (renaming is not supported)."""
    if body.name is not None and body.name != pool_name:
        raise BadRequest("pools cannot be renamed", field="name")
    fields = {"slots", "description", "include_deferred"}
    mask = set(update_mask) if update_mask else (body.model_fields_set - {"name"})
    unknown = sorted(mask - fields)
    if unknown:
        raise BadRequest(f"update_mask: unknown field(s) {', '.join(unknown)}", field="update_mask")
    row = db_pools.get_pool(session, pool_name)
    before = _state(row)
    if "slots" in mask and body.slots is None:
        raise BadRequest("slots must be an integer >= 0", field="slots")
    slots = body.slots if "slots" in mask and body.slots is not None else row.slots
    if "description" in mask:
        row.description = body.description
    include = body.include_deferred if "include_deferred" in mask else None
    row = db_pools.set_pool(session, pool_name, slots, include_deferred=include)
    audit_change(
        session,
        request,
        principal,
        "api.pools.patch",
        before=before,
        after=_state(row),
        extra={"pool": pool_name},
    )
    return _models(session, [row])[0]


@router.delete(
    "/pools/{pool_name}",
    status_code=204,
    response_class=Response,
    responses=responses(400, 401, 403, 404),
)
def delete_pool(
    pool_name: str,
    request: Request,
    principal: Principal = Depends(requires("pools", "delete")),
    session: Session = Depends(db_session),
) -> Response:
    """Delete a pool (not ``default_pool``)."""
    before = _state(db_pools.get_pool(session, pool_name))
    db_pools.delete_pool(session, pool_name)
    audit_change(
        session, request, principal, "api.pools.delete", before=before, extra={"pool": pool_name}
    )
    return Response(status_code=204)
