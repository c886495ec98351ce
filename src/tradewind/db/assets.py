"""Assets, their update events, and the queue of updates waiting for asset-scheduled DAGs.

An event of an asset queues a run request (``asset_dag_run_queue``) for every DAG scheduled on
the asset (``dag_schedule_asset_reference``); the scheduler reads the queue, decides with the
DAG's asset condition, creates the run and clears the queue entries it consumed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tradewind.db.models import Asset, AssetDagRunQueue, AssetEvent, DagScheduleAssetReference
from tradewind.errors import NotFound

__all__ = [
    "clear_queue",
    "get_asset",
    "list_asset_events",
    "list_assets",
    "list_queued",
    "record_asset_event",
    "set_schedule_references",
    "upsert_asset",
]


def upsert_asset(
    session: Session,
    *,
    uri: str,
    name: str | None = None,
    group: str = "asset",
    extra: Mapping[str, Any] | None = None,
    now: datetime,
) -> Asset:
    """The asset with this name and uri, created or updated (group, extra)."""
    name = name if name is not None else uri
    row = session.scalar(sa.select(Asset).where(Asset.name == name, Asset.uri == uri))
    if row is None:
        row = Asset(name=name, uri=uri, group=group, extra=dict(extra or {}), created_at=now)
        session.add(row)
    elif row.group != group or (row.extra or {}) != dict(extra or {}):
        row.group = group
        row.extra = dict(extra or {})
        row.updated_at = now
    session.flush()
    return row


def get_asset(session: Session, *, uri: str, name: str | None = None) -> Asset:
    """The asset by uri (and name when given); :class:`NotFound` when absent."""
    statement = sa.select(Asset).where(Asset.uri == uri)
    if name is not None:
        statement = statement.where(Asset.name == name)
    row = session.scalars(statement.order_by(Asset.id)).first()
    if row is None:
        raise NotFound("asset", uri)
    return row


def list_assets(session: Session) -> list[Asset]:
    """Every asset, by name."""
    return list(session.scalars(sa.select(Asset).order_by(Asset.name, Asset.uri)))


def set_schedule_references(
    session: Session, dag_id: str, asset_ids: Collection[int], *, now: datetime
) -> None:
    """Make ``dag_id`` scheduled on exactly ``asset_ids`` (replacing earlier references)."""
    wanted = set(asset_ids)
    current = set(
        session.scalars(
            sa.select(DagScheduleAssetReference.asset_id).where(
                DagScheduleAssetReference.dag_id == dag_id
            )
        )
    )
    gone = current - wanted
    if gone:
        session.execute(
            sa.delete(DagScheduleAssetReference).where(
                DagScheduleAssetReference.dag_id == dag_id,
                DagScheduleAssetReference.asset_id.in_(sorted(gone)),
            )
        )
    for asset_id in sorted(wanted - current):
        session.add(DagScheduleAssetReference(asset_id=asset_id, dag_id=dag_id, created_at=now))
    session.flush()


def record_asset_event(
    session: Session,
    asset_id: int,
    *,
    now: datetime,
    extra: Mapping[str, Any] | None = None,
    source_dag_id: str | None = None,
    source_task_id: str | None = None,
    source_run_id: str | None = None,
    source_map_index: int | None = None,
) -> AssetEvent:
    """Record an update of an asset and queue a run request for each DAG scheduled on it."""
    event = AssetEvent(
        asset_id=asset_id,
        extra=dict(extra or {}),
        source_dag_id=source_dag_id,
        source_task_id=source_task_id,
        source_run_id=source_run_id,
        source_map_index=source_map_index,
        timestamp=now,
    )
    session.add(event)
    consumers = session.scalars(
        sa.select(DagScheduleAssetReference.dag_id).where(
            DagScheduleAssetReference.asset_id == asset_id
        )
    ).all()
    queued = set(
        session.scalars(
            sa.select(AssetDagRunQueue.target_dag_id).where(AssetDagRunQueue.asset_id == asset_id)
        )
    )
    for dag_id in consumers:
        if dag_id not in queued:
            session.add(AssetDagRunQueue(asset_id=asset_id, target_dag_id=dag_id, created_at=now))
    session.flush()
    return event


def list_asset_events(
    session: Session,
    *,
    asset_id: int | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[AssetEvent]:
    """Asset events, newest first."""
    statement = sa.select(AssetEvent)
    if asset_id is not None:
        statement = statement.where(AssetEvent.asset_id == asset_id)
    if since is not None:
        statement = statement.where(AssetEvent.timestamp >= since)
    statement = statement.order_by(AssetEvent.timestamp.desc(), AssetEvent.id.desc())
    if limit is not None:
        statement = statement.limit(limit)
    return list(session.scalars(statement))


def list_queued(
    session: Session, dag_ids: Iterable[str] | None = None
) -> dict[str, dict[int, datetime]]:
    """``{dag_id: {asset_id: queued at}}`` of pending asset updates."""
    statement = sa.select(AssetDagRunQueue)
    if dag_ids is not None:
        statement = statement.where(AssetDagRunQueue.target_dag_id.in_(list(dag_ids)))
    out: dict[str, dict[int, datetime]] = {}
    for row in session.scalars(statement):
        out.setdefault(row.target_dag_id, {})[row.asset_id] = row.created_at
    return out


def clear_queue(session: Session, dag_id: str, asset_ids: Collection[int] | None = None) -> int:
    """Remove a DAG's queued asset updates (those of ``asset_ids``, or all); returns how many."""
    statement = sa.delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == dag_id)
    if asset_ids is not None:
        statement = statement.where(AssetDagRunQueue.asset_id.in_(sorted(asset_ids)))
    result = session.execute(statement.execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
