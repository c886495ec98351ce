"""Roles and what they allow: the permission catalogue, the built-in roles, per-DAG scopes.

A permission is ``"<resource>.<action>"`` (``"dag_runs.create"``). A role holds a list of them
and may be limited to some DAGs, by DAG id patterns (``fnmatch``: ``"etl_*"``) and/or by tags:
its permissions on the DAG resources (:data:`DAG_RESOURCES`) then hold only for the DAGs that
match one pattern or carry one of the tags; its other permissions hold as they are. A user's
access is the union of their roles'. The API and the UI ask the same :class:`Access` object.

::

    access = access_for_user(session, user_id)
    access.allows("variables", "read")
    access.allows_dag("dag_runs", "create", "etl_daily", tags=["etl"])
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tradewind.db.models import Dag, Role, UserRole
from tradewind.errors import AlreadyExists, InvalidArgumentError, NotFound

__all__ = [
    "ACTIONS",
    "BUILTIN_ROLES",
    "DAG_RESOURCES",
    "RESOURCES",
    "Access",
    "Grant",
    "access_for_user",
    "all_permissions",
    "create_role",
    "delete_role",
    "get_role",
    "list_roles",
    "roles_of_users",
    "sync_builtin_roles",
    "update_role",
    "validate_permissions",
]

#: Every resource and the actions that exist on it.
RESOURCES: dict[str, tuple[str, ...]] = {
    "dags": ("read", "edit", "delete"),
    "dag_runs": ("read", "create", "edit", "delete"),
    "task_instances": ("read", "edit"),
    "task_logs": ("read",),
    "xcoms": ("read",),
    "variables": ("read", "create", "edit", "delete"),
    "connections": ("read", "create", "edit", "delete"),
    "pools": ("read", "create", "edit", "delete"),
    "import_errors": ("read",),
    "audit_log": ("read",),
    "users": ("read", "create", "edit", "delete"),
    "roles": ("read", "create", "edit", "delete"),
    # a user's own API tokens (other users' tokens need users.edit)
    "tokens": ("read", "create", "delete"),
}
#: Every action name.
ACTIONS: tuple[str, ...] = ("read", "create", "edit", "delete")
#: Resources that belong to one DAG: a role's DAG scope limits these.
DAG_RESOURCES: frozenset[str] = frozenset(
    {"dags", "dag_runs", "task_instances", "task_logs", "xcoms"}
)


def all_permissions() -> list[str]:
    """Every permission, ``"resource.action"``, in catalogue order."""
    return [f"{resource}.{action}" for resource, actions in RESOURCES.items() for action in actions]


def _perms(spec: Mapping[str, Iterable[str]]) -> list[str]:
    return [f"{resource}.{action}" for resource, actions in spec.items() for action in actions]


_VIEWER = {
    "dags": ["read"],
    "dag_runs": ["read"],
    "task_instances": ["read"],
    "task_logs": ["read"],
    "xcoms": ["read"],
    "pools": ["read"],
    "import_errors": ["read"],
    "tokens": ["read", "create", "delete"],
}
_USER = {
    **_VIEWER,
    "dags": ["read", "edit", "delete"],
    "dag_runs": ["read", "create", "edit", "delete"],
    "task_instances": ["read", "edit"],
}
_OP = {
    **_USER,
    "variables": list(RESOURCES["variables"]),
    "connections": list(RESOURCES["connections"]),
    "pools": list(RESOURCES["pools"]),
    "audit_log": ["read"],
}

#: The roles every installation has, with their permissions (kept in line at start-up).
BUILTIN_ROLES: dict[str, tuple[str, list[str]]] = {
    "Admin": ("Everything, including users and roles.", all_permissions()),
    "Op": ("User, plus variables, connections, pools and the audit log.", _perms(_OP)),
    "User": ("Viewer, plus triggering, clearing, marking, pausing and deleting.", _perms(_USER)),
    "Viewer": ("Read DAGs, runs, task instances, logs and XComs.", _perms(_VIEWER)),
}


def validate_permissions(permissions: Iterable[str]) -> list[str]:
    """The permissions, de-duplicated in order; :class:`InvalidArgumentError` names the first
    unknown one and lists what exists."""
    known = set(all_permissions())
    out = list(dict.fromkeys(permissions))
    for perm in out:
        if perm not in known:
            raise InvalidArgumentError(
                f"unknown permission {perm!r}; permissions are <resource>.<action> with "
                f"resources {', '.join(RESOURCES)}",
                argument="permissions",
            )
    return out


@dataclass(frozen=True)
class Grant:
    """One role's permissions and DAG scope (None for both: every DAG)."""

    permissions: frozenset[str]
    dag_ids: tuple[str, ...] | None = None
    dag_tags: tuple[str, ...] | None = None

    @property
    def every_dag(self) -> bool:
        """Whether the grant's DAG permissions hold for every DAG."""
        return self.dag_ids is None and self.dag_tags is None

    def covers(self, dag_id: str, tags: Collection[str] | None) -> bool:
        """Whether the grant's scope includes this DAG."""
        if self.every_dag:
            return True
        if self.dag_ids and any(fnmatch.fnmatchcase(dag_id, p) for p in self.dag_ids):
            return True
        return bool(self.dag_tags and tags and set(self.dag_tags) & set(tags))

    @classmethod
    def of(cls, role: Role) -> Grant:
        """The grant of a role row."""
        return cls(
            permissions=frozenset(role.permissions or ()),
            dag_ids=tuple(role.dag_ids) if role.dag_ids is not None else None,
            dag_tags=tuple(role.dag_tags) if role.dag_tags is not None else None,
        )


@dataclass(frozen=True)
class Access:
    """What one user may do: the union of their roles' grants."""

    grants: tuple[Grant, ...] = ()

    def allows(self, resource: str, action: str) -> bool:
        """Whether some role grants ``resource.action`` (for a DAG resource: on some DAG)."""
        perm = f"{resource}.{action}"
        return any(perm in g.permissions for g in self.grants)

    def allows_dag(
        self, resource: str, action: str, dag_id: str, tags: Collection[str] | None
    ) -> bool:
        """Whether some role grants ``resource.action`` on this DAG."""
        perm = f"{resource}.{action}"
        return any(perm in g.permissions and g.covers(dag_id, tags) for g in self.grants)

    def all_dags(self, resource: str, action: str) -> bool:
        """Whether ``resource.action`` holds on every DAG (no filtering needed)."""
        perm = f"{resource}.{action}"
        return any(perm in g.permissions and g.every_dag for g in self.grants)

    def permissions(self) -> list[str]:
        """Every permission some role grants (on some DAG), in catalogue order."""
        held = {p for g in self.grants for p in g.permissions}
        return [p for p in all_permissions() if p in held]

    def dag_ids(
        self, session: Session, resource: str, action: str, *, within: Collection[str] | None = None
    ) -> set[str] | None:
        """The DAG ids ``resource.action`` holds on, or None when it holds on every DAG.

        ``within`` limits the DAGs looked at (for a page of rows already loaded).
        """
        if self.all_dags(resource, action):
            return None
        perm = f"{resource}.{action}"
        scoped = [g for g in self.grants if perm in g.permissions]
        if not scoped:
            return set()
        statement = sa.select(Dag.dag_id, Dag.tags)
        if within is not None:
            statement = statement.where(Dag.dag_id.in_(sorted(within)))
        return {
            dag_id
            for dag_id, tags in session.execute(statement)
            if any(g.covers(dag_id, tags) for g in scoped)
        }


def access_for_user(session: Session, user_id: int) -> Access:
    """The access the user's roles give (none for a user without roles)."""
    roles = session.scalars(
        sa.select(Role)
        .join(UserRole, UserRole.role_id == Role.id)
        .where(UserRole.user_id == user_id)
    )
    return Access(tuple(Grant.of(role) for role in roles))


def get_role(session: Session, name: str) -> Role:
    """The role called ``name``; :class:`NotFound` otherwise."""
    role = session.scalar(sa.select(Role).where(Role.name == name))
    if role is None:
        raise NotFound("role", name)
    return role


def list_roles(session: Session) -> list[Role]:
    """Every role, by name."""
    return list(session.scalars(sa.select(Role).order_by(Role.name)))


def roles_of_users(session: Session, user_ids: Collection[int]) -> dict[int, list[str]]:
    """``{user_id: [role names, sorted]}`` for these users (users without roles map to [])."""
    out: dict[int, list[str]] = {uid: [] for uid in user_ids}
    if not user_ids:
        return out
    rows = session.execute(
        sa.select(UserRole.user_id, Role.name)
        .join(Role, Role.id == UserRole.role_id)
        .where(UserRole.user_id.in_(sorted(user_ids)))
        .order_by(Role.name)
    )
    for user_id, name in rows:
        out.setdefault(user_id, []).append(name)
    return out


def _clean_scope(values: Sequence[str] | None, what: str) -> list[str] | None:
    if values is None:
        return None
    cleaned = [v.strip() for v in values if isinstance(v, str) and v.strip()]
    if len(cleaned) != len(values):
        raise InvalidArgumentError(f"{what} must be non-empty strings", argument=what)
    return list(dict.fromkeys(cleaned))


def create_role(
    session: Session,
    name: str,
    permissions: Iterable[str],
    *,
    now: datetime,
    description: str | None = None,
    dag_ids: Sequence[str] | None = None,
    dag_tags: Sequence[str] | None = None,
    builtin: bool = False,
) -> Role:
    """Create a role; :class:`AlreadyExists` when the name is taken."""
    name = name.strip()
    if not name:
        raise InvalidArgumentError("a role needs a non-empty name", argument="name")
    if session.scalar(sa.select(Role.id).where(Role.name == name)) is not None:
        raise AlreadyExists("role", name)
    role = Role(
        name=name,
        description=description,
        permissions=validate_permissions(permissions),
        dag_ids=_clean_scope(dag_ids, "dag_ids"),
        dag_tags=_clean_scope(dag_tags, "dag_tags"),
        builtin=builtin,
        created_at=now,
        updated_at=now,
    )
    session.add(role)
    session.flush()
    return role


_UNSET: object = object()


def update_role(
    session: Session,
    name: str,
    *,
    now: datetime,
    permissions: Iterable[str] | None = None,
    description: object = _UNSET,
    dag_ids: object = _UNSET,
    dag_tags: object = _UNSET,
) -> Role:
    """Change a role's permissions, description or DAG scope (arguments left out stay).

    Built-in roles cannot change (they are kept in line with this version's definitions).
    """
    role = get_role(session, name)
    if role.builtin:
        raise InvalidArgumentError(f"the built-in role {name!r} cannot be changed", argument="name")
    if permissions is not None:
        role.permissions = validate_permissions(permissions)
    if description is not _UNSET:
        role.description = description  # type: ignore[assignment]
    if dag_ids is not _UNSET:
        role.dag_ids = _clean_scope(dag_ids, "dag_ids")  # type: ignore[arg-type]
    if dag_tags is not _UNSET:
        role.dag_tags = _clean_scope(dag_tags, "dag_tags")  # type: ignore[arg-type]
    role.updated_at = now
    session.flush()
    return role


def delete_role(session: Session, name: str) -> None:
    """Delete a role (users lose it); built-in roles cannot be deleted."""
    role = get_role(session, name)
    if role.builtin:
        raise InvalidArgumentError(f"the built-in role {name!r} cannot be deleted", argument="name")
    session.delete(role)
    session.flush()


def sync_builtin_roles(session: Session, *, now: datetime) -> list[str]:
    """Create the built-in roles that are missing and bring the others' permissions in line
    with :data:`BUILTIN_ROLES`; returns the names created or changed."""
    existing = {
        r.name: r for r in session.scalars(sa.select(Role).where(Role.name.in_(BUILTIN_ROLES)))
    }
    touched = []
    for name, (description, permissions) in BUILTIN_ROLES.items():
        role = existing.get(name)
        if role is None:
            create_role(session, name, permissions, now=now, description=description, builtin=True)
            touched.append(name)
        elif (
            list(role.permissions) != permissions
            or not role.builtin
            or role.dag_ids is not None
            or role.dag_tags is not None
        ):
            role.permissions = list(permissions)
            role.description = description
            role.builtin = True
            role.dag_ids = None
            role.dag_tags = None
            role.updated_at = now
            touched.append(name)
    session.flush()
    return touched
