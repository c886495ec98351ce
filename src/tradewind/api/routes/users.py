"""Users, roles, permissions and personal API tokens.

``/users/me`` is the caller; ``/users/me/tokens`` their tokens (a token's value is shown once,
when it is created). Roles carry permissions as ``{"action": {"name": "read"}, "resource":
{"name": "dag_runs"}}`` pairs, in the shape Airflow's role API uses, plus an optional DAG scope
(``dag_ids`` patterns and ``dag_tags``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from tradewind.api.auth import authenticate, requires
from tradewind.api.context import Principal, audit_change, db_session, get_context
from tradewind.api.errors import BadRequest, Conflict, responses
from tradewind.api.schemas import Body, PageParams, pagination
from tradewind.db import pages
from tradewind.db import roles as db_roles
from tradewind.db import users as db_users
from tradewind.db.models import ApiToken, Role, User

__all__ = ["router"]

router = APIRouter(tags=["User"])


class RoleRef(BaseModel):
    """A role by name."""

    name: str


class UserModel(BaseModel):
    """A user (never their password)."""

    username: str
    email: str | None
    first_name: str | None
    last_name: str | None
    active: bool
    roles: list[RoleRef]
    created_on: datetime
    changed_on: datetime | None
    last_login: datetime | None
    login_count: int
    failed_login_count: int
    locked_until: datetime | None


class UserCollection(BaseModel):
    """A page of users."""

    users: list[UserModel]
    total_entries: int


def _user(user: User, roles: list[str]) -> UserModel:
    return UserModel(
        username=user.username,
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        active=user.active,
        roles=[RoleRef(name=r) for r in roles],
        created_on=user.created_at,
        changed_on=user.updated_at,
        last_login=user.last_login,
        login_count=user.login_count or 0,
        failed_login_count=user.failed_login_count or 0,
        locked_until=user.locked_until,
    )


def _one_user(session: Session, user: User) -> UserModel:
    return _user(user, db_roles.roles_of_users(session, [user.id])[user.id])


class Me(UserModel):
    """The calling user with what they may do."""

    permissions: list[str]
    auth: str


@router.get("/users/me", response_model=Me, responses=responses(401))
def get_me(
    principal: Principal = Depends(authenticate), session: Session = Depends(db_session)
) -> Me:
    """Who the caller is and every permission their roles give (on some DAG at least)."""
    base = _one_user(session, db_users.get_user_by_id(session, principal.user_id))
    return Me(
        **base.model_dump(), permissions=principal.access.permissions(), auth=principal.method
    )


class TokenModel(BaseModel):
    """A personal API token (its value is never shown again after creation)."""

    id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    active: bool


class NewToken(TokenModel):
    """A token just created, with its value: keep it, it is not shown again."""

    token: str


class TokenCollection(BaseModel):
    """A page of tokens."""

    tokens: list[TokenModel]
    total_entries: int


class TokenBody(Body):
    """A token to create; it expires after ``expires_in_days`` (default 90; 0: never)."""

    name: str = Field(..., min_length=1, max_length=256)
    expires_in_days: int = Field(90, ge=0, le=3650)


def _token(row: ApiToken, now: datetime) -> TokenModel:
    live = row.revoked_at is None and (row.expires_at is None or row.expires_at > now)
    return TokenModel(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        active=live,
    )


def _list_tokens(
    session: Session, request: Request, user_id: int, page: PageParams
) -> TokenCollection:
    now = get_context(request).clock()
    result = pages.tokens_page(
        session, user_id, limit=page.limit, offset=page.offset, order_by=page.order_by
    )
    return TokenCollection(tokens=[_token(t, now) for t in result.rows], total_entries=result.total)


_TOKEN_PAGE = pagination("-created_at", pages.order_fields("tokens"))


@router.get("/users/me/tokens", response_model=TokenCollection, responses=responses(400, 401, 403))
def get_my_tokens(
    request: Request,
    page: PageParams = Depends(_TOKEN_PAGE),
    principal: Principal = Depends(requires("tokens", "read")),
    session: Session = Depends(db_session),
) -> TokenCollection:
    """List the caller's API tokens."""
    return _list_tokens(session, request, principal.user_id, page)


@router.post("/users/me/tokens", response_model=NewToken, responses=responses(400, 401, 403))
def post_my_token(
    body: TokenBody,
    request: Request,
    principal: Principal = Depends(requires("tokens", "create")),
    session: Session = Depends(db_session),
) -> NewToken:
    """Create an API token for the caller; the response holds its value, shown only now."""
    now = get_context(request).clock()
    expires = now + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    row, plain = db_users.create_token(
        session, principal.user_id, body.name, now=now, expires_at=expires
    )
    audit_change(
        session,
        request,
        principal,
        "api.tokens.create",
        after={"name": row.name, "prefix": row.prefix, "expires_at": as_iso(expires)},
        extra={"token_id": row.id},
    )
    return NewToken(**_token(row, now).model_dump(), token=plain)


def as_iso(value: datetime | None) -> str | None:
    """ISO text of a datetime (None stays None)."""
    return value.isoformat() if value is not None else None


def _revoke(
    session: Session, request: Request, principal: Principal, token_id: int, user: User
) -> None:
    now = get_context(request).clock()
    row = db_users.revoke_token(session, token_id, now=now, user_id=user.id)
    audit_change(
        session,
        request,
        principal,
        "api.tokens.revoke",
        after={"revoked_at": as_iso(row.revoked_at)},
        extra={"token_id": token_id, "user": user.username},
    )


_TOKEN_ID = Path(..., ge=1, le=2**63 - 1)


@router.delete(
    "/users/me/tokens/{token_id}",
    status_code=204,
    response_class=Response,
    responses=responses(400, 401, 403, 404),
)
def delete_my_token(
    request: Request,
    token_id: int = _TOKEN_ID,
    principal: Principal = Depends(requires("tokens", "delete")),
    session: Session = Depends(db_session),
) -> Response:
    """Revoke one of the caller's tokens."""
    _revoke(
        session, request, principal, token_id, db_users.get_user_by_id(session, principal.user_id)
    )
    return Response(status_code=204)


_USER_ORDER = pages.order_fields("users")


@router.get("/users", response_model=UserCollection, responses=responses(400, 401, 403))
def get_users(
    page: PageParams = Depends(pagination("username", _USER_ORDER)),
    principal: Principal = Depends(requires("users", "read")),
    session: Session = Depends(db_session),
) -> UserCollection:
    """List users."""
    result = pages.users_page(session, limit=page.limit, offset=page.offset, order_by=page.order_by)
    roles = db_roles.roles_of_users(session, [u.id for u in result.rows])
    return UserCollection(
        users=[_user(u, roles[u.id]) for u in result.rows], total_entries=result.total
    )


class UserBody(Body):
    """A user to create."""

    username: str = Field(..., min_length=1, max_length=256, pattern=r"^[\w.@+\-]+$")
    password: str = Field(..., min_length=8, max_length=1024)
    email: str | None = Field(None, max_length=320)
    first_name: str | None = Field(None, max_length=256)
    last_name: str | None = Field(None, max_length=256)
    roles: list[RoleRef] = Field(default_factory=list)
    active: bool = True


@router.post("/users", response_model=UserModel, responses=responses(400, 401, 403, 404, 409))
def post_user(
    body: UserBody,
    request: Request,
    principal: Principal = Depends(requires("users", "create")),
    session: Session = Depends(db_session),
) -> UserModel:
    """Create a user; 409 when the username is taken, 404 for an unknown role."""
    if body.username == "me":
        raise BadRequest("'me' is reserved and cannot be a username", field="username")
    user = db_users.create_user(
        session,
        body.username,
        body.password,
        now=get_context(request).clock(),
        roles=[r.name for r in body.roles],
        email=body.email,
        first_name=body.first_name,
        last_name=body.last_name,
        active=body.active,
    )
    model = _one_user(session, user)
    audit_change(
        session,
        request,
        principal,
        "api.users.create",
        after={
            "username": user.username,
            "email": user.email,
            "roles": [r.name for r in model.roles],
        },
        extra={"user": user.username},
    )
    return model


@router.get("/users/{username}", response_model=UserModel, responses=responses(401, 403, 404))
def get_user(
    username: str,
    principal: Principal = Depends(requires("users", "read")),
    session: Session = Depends(db_session),
) -> UserModel:
    """Get a user."""
    return _one_user(session, db_users.get_user(session, username))


class UserPatch(Body):
    """Fields of a user to change (``update_mask`` limits which)."""

    username: str | None = None
    password: str | None = Field(None, min_length=8, max_length=1024)
    email: str | None = Field(None, max_length=320)
    first_name: str | None = Field(None, max_length=256)
    last_name: str | None = Field(None, max_length=256)
    roles: list[RoleRef] | None = None
    active: bool | None = None


_USER_PATCHABLE = {"password", "email", "first_name", "last_name", "roles", "active"}


def _user_state(model: UserModel) -> dict[str, object]:
    return {
        "email": model.email,
        "first_name": model.first_name,
        "last_name": model.last_name,
        "active": model.active,
        "roles": [r.name for r in model.roles],
    }


@router.patch(
    "/users/{username}", response_model=UserModel, responses=responses(400, 401, 403, 404)
)
def patch_user(
    username: str,
    body: UserPatch,
    request: Request,
    update_mask: list[str] | None = Query(None),
    principal: Principal = Depends(requires("users", "edit")),
    session: Session = Depends(db_session),
) -> UserModel:
    """Change a user's details, roles, password or active flag."""
    if body.username is not None and body.username != username:
        raise BadRequest("users cannot be renamed", field="username")
    mask = set(update_mask) if update_mask else (body.model_fields_set - {"username"})
    unknown = sorted(mask - _USER_PATCHABLE)
    if unknown:
        raise BadRequest(f"update_mask: unknown field(s) {', '.join(unknown)}", field="update_mask")
    now = get_context(request).clock()
    user = db_users.get_user(session, username)
    before = _user_state(_one_user(session, user))
    fields: dict[str, object] = {
        n: getattr(body, n) for n in ("email", "first_name", "last_name") if n in mask
    }
    if "active" in mask:
        if body.active is None:
            raise BadRequest("active must be true or false", field="active")
        fields["active"] = body.active
    if fields:
        db_users.update_user(session, username, now=now, **fields)
    if "roles" in mask:
        db_users.set_user_roles(session, user, [r.name for r in body.roles or []])
    if "password" in mask:
        if body.password is None:
            raise BadRequest("password must be a string", field="password")
        db_users.set_password(session, username, body.password, now=now)
    model = _one_user(session, user)
    audit_change(
        session,
        request,
        principal,
        "api.users.patch",
        before={**before, "password": "old"} if "password" in mask else before,
        after={**_user_state(model), "password": "new"}
        if "password" in mask
        else _user_state(model),
        secret_fields=("password",),
        extra={"user": username},
    )
    return model


@router.delete(
    "/users/{username}",
    status_code=204,
    response_class=Response,
    responses=responses(401, 403, 404, 409),
)
def delete_user(
    username: str,
    request: Request,
    principal: Principal = Depends(requires("users", "delete")),
    session: Session = Depends(db_session),
) -> Response:
    """Delete a user with their tokens (not the caller themselves)."""
    user = db_users.get_user(session, username)
    if user.id == principal.user_id:
        raise Conflict("you cannot delete the user you are logged in as")
    before = _user_state(_one_user(session, user))
    db_users.delete_user(session, username)
    audit_change(
        session, request, principal, "api.users.delete", before=before, extra={"user": username}
    )
    return Response(status_code=204)


@router.get(
    "/users/{username}/tokens",
    response_model=TokenCollection,
    responses=responses(400, 401, 403, 404),
)
def get_user_tokens(
    username: str,
    request: Request,
    page: PageParams = Depends(_TOKEN_PAGE),
    principal: Principal = Depends(requires("users", "edit")),
    session: Session = Depends(db_session),
) -> TokenCollection:
    """List a user's API tokens."""
    return _list_tokens(session, request, db_users.get_user(session, username).id, page)


@router.delete(
    "/users/{username}/tokens/{token_id}",
    status_code=204,
    response_class=Response,
    responses=responses(400, 401, 403, 404),
)
def delete_user_token(
    username: str,
    request: Request,
    token_id: int = _TOKEN_ID,
    principal: Principal = Depends(requires("users", "edit")),
    session: Session = Depends(db_session),
) -> Response:
    """Revoke one of a user's API tokens."""
    _revoke(session, request, principal, token_id, db_users.get_user(session, username))
    return Response(status_code=204)


# -- roles -----------------------------------------------------------------------------------


class ActionRef(BaseModel):
    """An action name (read, create, edit, delete)."""

    name: str


class ResourceRef(BaseModel):
    """A resource name (dags, dag_runs, variables …)."""

    name: str


class ActionResource(BaseModel):
    """One permission: an action on a resource."""

    action: ActionRef
    resource: ResourceRef


class RoleModel(BaseModel):
    """A role: its permissions and DAG scope (both null: every DAG)."""

    name: str
    description: str | None
    actions: list[ActionResource]
    dag_ids: list[str] | None
    dag_tags: list[str] | None
    builtin: bool


class RoleCollection(BaseModel):
    """A page of roles."""

    roles: list[RoleModel]
    total_entries: int


def _role(role: Role) -> RoleModel:
    actions = []
    for perm in role.permissions or []:
        resource, _, action = perm.partition(".")
        actions.append(
            ActionResource(action=ActionRef(name=action), resource=ResourceRef(name=resource))
        )
    return RoleModel(
        name=role.name,
        description=role.description,
        actions=actions,
        dag_ids=role.dag_ids,
        dag_tags=role.dag_tags,
        builtin=role.builtin,
    )


def _perms(actions: list[ActionResource]) -> list[str]:
    return [f"{a.resource.name}.{a.action.name}" for a in actions]


def _role_state(role: Role) -> dict[str, object]:
    return {
        "permissions": list(role.permissions or []),
        "description": role.description,
        "dag_ids": role.dag_ids,
        "dag_tags": role.dag_tags,
    }


@router.get("/roles", response_model=RoleCollection, responses=responses(400, 401, 403))
def get_roles(
    page: PageParams = Depends(pagination("name", pages.order_fields("roles"))),
    principal: Principal = Depends(requires("roles", "read")),
    session: Session = Depends(db_session),
) -> RoleCollection:
    """List roles."""
    result = pages.roles_page(session, limit=page.limit, offset=page.offset, order_by=page.order_by)
    return RoleCollection(roles=[_role(r) for r in result.rows], total_entries=result.total)


class RoleBody(Body):
    """A role to create."""

    name: str = Field(..., min_length=1, max_length=100)
    description: str | None = None
    actions: list[ActionResource] = Field(default_factory=list)
    dag_ids: list[str] | None = Field(None, description="fnmatch patterns of DAG ids.")
    dag_tags: list[str] | None = Field(None, description="DAGs with one of these tags.")


@router.post("/roles", response_model=RoleModel, responses=responses(400, 401, 403, 409))
def post_role(
    body: RoleBody,
    request: Request,
    principal: Principal = Depends(requires("roles", "create")),
    session: Session = Depends(db_session),
) -> RoleModel:
    """Create a role; 409 when the name is taken."""
    role = db_roles.create_role(
        session,
        body.name,
        _perms(body.actions),
        now=get_context(request).clock(),
        description=body.description,
        dag_ids=body.dag_ids,
        dag_tags=body.dag_tags,
    )
    audit_change(
        session,
        request,
        principal,
        "api.roles.create",
        after=_role_state(role),
        extra={"role": role.name},
    )
    return _role(role)


@router.get("/roles/{role_name}", response_model=RoleModel, responses=responses(401, 403, 404))
def get_role(
    role_name: str,
    principal: Principal = Depends(requires("roles", "read")),
    session: Session = Depends(db_session),
) -> RoleModel:
    """Get a role."""
    return _role(db_roles.get_role(session, role_name))


class RolePatch(Body):
    """Fields of a role to change."""

    name: str | None = None
    description: str | None = None
    actions: list[ActionResource] | None = None
    dag_ids: list[str] | None = None
    dag_tags: list[str] | None = None


@router.patch(
    "/roles/{role_name}", response_model=RoleModel, responses=responses(400, 401, 403, 404)
)
def patch_role(
    role_name: str,
    body: RolePatch,
    request: Request,
    update_mask: list[str] | None = Query(None),
    principal: Principal = Depends(requires("roles", "edit")),
    session: Session = Depends(db_session),
) -> RoleModel:
    """Change a role's permissions, description or DAG scope (built-in roles stay as they
    are)."""
    if body.name is not None and body.name != role_name:
        raise BadRequest("roles cannot be renamed", field="name")
    mask = set(update_mask) if update_mask else (body.model_fields_set - {"name"})
    unknown = sorted(mask - {"description", "actions", "dag_ids", "dag_tags"})
    if unknown:
        raise BadRequest(f"update_mask: unknown field(s) {', '.join(unknown)}", field="update_mask")
    before = _role_state(db_roles.get_role(session, role_name))
    changes: dict[str, object] = {
        n: getattr(body, n) for n in ("description", "dag_ids", "dag_tags") if n in mask
    }
    role = db_roles.update_role(
        session,
        role_name,
        now=get_context(request).clock(),
        permissions=_perms(body.actions or []) if "actions" in mask else None,
        **changes,
    )
    audit_change(
        session,
        request,
        principal,
        "api.roles.patch",
        before=before,
        after=_role_state(role),
        extra={"role": role_name},
    )
    return _role(role)


@router.delete(
    "/roles/{role_name}",
    status_code=204,
    response_class=Response,
    responses=responses(400, 401, 403, 404),
)
def delete_role(
    role_name: str,
    request: Request,
    principal: Principal = Depends(requires("roles", "delete")),
    session: Session = Depends(db_session),
) -> Response:
    """Delete a role (not a built-in one); its users lose it."""
    before = _role_state(db_roles.get_role(session, role_name))
    db_roles.delete_role(session, role_name)
    audit_change(
        session, request, principal, "api.roles.delete", before=before, extra={"role": role_name}
    )
    return Response(status_code=204)


class PermissionCollection(BaseModel):
    """Every resource and its actions."""

    resources: dict[str, list[str]]
    dag_resources: list[str]
    total_entries: int


@router.get("/permissions", response_model=PermissionCollection, responses=responses(401, 403))
def get_permissions(
    principal: Principal = Depends(requires("roles", "read")),
) -> PermissionCollection:
    """List every permission that exists (resources and their actions)."""
    return PermissionCollection(
        resources={k: list(v) for k, v in db_roles.RESOURCES.items()},
        dag_resources=sorted(db_roles.DAG_RESOURCES),
        total_entries=len(db_roles.all_permissions()),
    )
