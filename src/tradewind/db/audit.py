"""The append-only audit log: who changed what, when, through the CLI, API or UI.

Only :func:`record` writes; nothing in Tradewind updates or deletes audit rows except retention
(``tradewind db clean``). :func:`changes` builds the ``before``/``after`` of the fields that
changed, with secrets masked, which is what goes into ``extra``.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tradewind.db.models import AuditLog

__all__ = ["MASK", "changes", "current_actor", "list_audit", "record"]

#: What a masked secret looks like in the audit log.
MASK = "***"


def current_actor() -> str:
    """The operating-system user running this process (the actor of CLI changes)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def record(
    session: Session,
    event: str,
    *,
    actor: str | None,
    when: datetime,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    map_index: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> AuditLog:
    """Append one audit row (``event`` like ``cli.variables.set``) and return it."""
    row = AuditLog(
        when=when,
        event=event,
        actor=actor,
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=map_index,
        extra=dict(extra) if extra is not None else None,
    )
    session.add(row)
    session.flush()
    return row


def _mask(value: Any) -> Any:
    if value is None or value == "":
        return value
    if isinstance(value, Mapping):
        return {k: MASK for k in value}
    return MASK


def changes(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    *,
    secret_fields: Collection[str] = (),
) -> dict[str, dict[str, Any] | None]:
    """``{"before": {...}, "after": {...}}`` holding only the fields that differ.

    A missing side (creation, deletion) is None. Values of ``secret_fields`` are compared in
    plain text but written as ``***`` (a mapping keeps its keys, each value ``***``).
    """
    old = dict(before or {})
    new = dict(after or {})
    names = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]

    def side(values: dict[str, Any], present: bool) -> dict[str, Any] | None:
        if not present:
            return None
        return {k: _mask(values.get(k)) if k in secret_fields else values.get(k) for k in names}

    return {"before": side(old, before is not None), "after": side(new, after is not None)}


def list_audit(
    session: Session,
    *,
    event: str | None = None,
    event_prefix: str | None = None,
    actor: str | None = None,
    dag_id: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[AuditLog]:
    """Audit rows matching every given filter, newest first."""
    statement = sa.select(AuditLog)
    if event is not None:
        statement = statement.where(AuditLog.event == event)
    if event_prefix is not None:
        statement = statement.where(AuditLog.event.startswith(event_prefix, autoescape=True))
    if actor is not None:
        statement = statement.where(AuditLog.actor == actor)
    if dag_id is not None:
        statement = statement.where(AuditLog.dag_id == dag_id)
    if since is not None:
        statement = statement.where(AuditLog.when >= since)
    statement = statement.order_by(AuditLog.when.desc(), AuditLog.id.desc()).offset(offset)
    if limit is not None:
        statement = statement.limit(limit)
    return list(session.scalars(statement))
