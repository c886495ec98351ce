"""DAG rows and their serialized versions.

DAG processing calls :func:`sync_dag` (or :func:`sync_dags`) with each parsed DAG's serialized
document: the ``dag`` row is created or refreshed, and a new ``dag_version`` is written only when
the document's hash differs from the latest version's. Runs pin the version they start with.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tradewind.db.engine import skip_locked
from tradewind.db.models import Dag, DagVersion
from tradewind.errors import NotFound

__all__ = [
    "SyncResult",
    "deactivate_missing",
    "delete_dag",
    "get_dag",
    "get_latest_document",
    "get_latest_version",
    "get_version",
    "list_dags",
    "list_due_dags",
    "list_versions",
    "lock_dags",
    "set_next_dagrun",
    "set_paused",
    "sync_dag",
    "sync_dags",
]

_DEFAULT_OWNER = "tradewind"


@dataclass(frozen=True)
class SyncResult:
    """What :func:`sync_dag` did for one DAG."""

    dag_id: str
    version_id: int
    version_number: int
    #: a new version was written (new DAG, or its document changed)
    new_version: bool
    #: the DAG row was created by this call
    created: bool


def _owners(dag_doc: Mapping[str, Any]) -> str:
    owners = set()
    for task in dag_doc.get("tasks", ()):
        owner = task.get("args", {}).get("owner", _DEFAULT_OWNER)
        if isinstance(owner, str) and owner:
            owners.add(owner)
    return ", ".join(sorted(owners))


def sync_dag(
    session: Session,
    document: Mapping[str, Any],
    *,
    now: datetime,
    dag_hash: str | None = None,
    paused_upon_creation: bool = True,
) -> SyncResult:
    """Create or refresh the DAG row for ``document``; add a version if its hash changed.

    ``dag_hash`` defaults to :func:`tradewind.serialization.dag_hash` of the document. A new
    DAG starts paused when the document's ``is_paused_upon_creation`` says so, else
    ``paused_upon_creation`` (True, as in Airflow). The DAG becomes active and its
    ``has_import_errors`` flag is cleared.
    """
    from tradewind.serialization import dag_hash as compute_hash

    data = document["dag"]
    dag_id = data["dag_id"]
    digest = dag_hash or compute_hash(document)
    dag = session.get(Dag, dag_id)
    created = dag is None
    if dag is None:
        upon_creation = data.get("is_paused_upon_creation")
        dag = Dag(
            dag_id=dag_id,
            is_paused=paused_upon_creation if upon_creation is None else bool(upon_creation),
        )
        session.add(dag)
    dag.is_active = True
    dag.fileloc = data.get("fileloc")
    dag.relative_fileloc = data.get("relative_fileloc")
    dag.owners = _owners(data)
    dag.description = data.get("description")
    dag.tags = list(data.get("tags") or [])
    dag.timetable_summary = (data.get("schedule") or {}).get("display")
    dag.max_active_runs = data.get("max_active_runs")
    dag.max_active_tasks = data.get("max_active_tasks")
    dag.has_import_errors = False
    dag.last_parsed_at = now

    # Only the hash and number: loading the (large) document just to compare would make
    # re-parsing an unchanged folder pay for every DAG's JSON.
    latest = None
    if dag.latest_version_id is not None:
        latest = session.execute(
            sa.select(DagVersion.id, DagVersion.hash, DagVersion.version_number).where(
                DagVersion.id == dag.latest_version_id
            )
        ).first()
    if latest is not None and latest.hash == digest:
        return SyncResult(dag_id, latest.id, latest.version_number, False, created)
    if created:
        session.flush()  # the version's foreign key needs the DAG row
    number = (latest.version_number if latest is not None else _max_version(session, dag_id)) + 1
    version = DagVersion(
        dag_id=dag_id,
        version_number=number,
        hash=digest,
        document=dict(document),
        created_at=now,
    )
    session.add(version)
    session.flush()
    dag.latest_version_id = version.id
    return SyncResult(dag_id, version.id, number, True, created)


def _max_version(session: Session, dag_id: str) -> int:
    value = session.scalar(
        sa.select(sa.func.max(DagVersion.version_number)).where(DagVersion.dag_id == dag_id)
    )
    return int(value or 0)


def sync_dags(
    session: Session,
    documents: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
    paused_upon_creation: bool = True,
) -> list[SyncResult]:
    """:func:`sync_dag` for each document, in order."""
    return [
        sync_dag(session, doc, now=now, paused_upon_creation=paused_upon_creation)
        for doc in documents
    ]


def get_dag(session: Session, dag_id: str) -> Dag:
    """The DAG row; raises :class:`NotFound` when there is none."""
    dag = session.get(Dag, dag_id)
    if dag is None:
        raise NotFound("DAG", dag_id)
    return dag


def list_dags(
    session: Session,
    *,
    active_only: bool = True,
    paused: bool | None = None,
    dag_ids: Collection[str] | None = None,
    lock: bool = False,
) -> list[Dag]:
    """DAG rows sorted by id; inactive ones only with ``active_only=False``.

    With ``lock`` (PostgreSQL) the rows are locked until the transaction ends and rows another
    transaction holds are left out, so several schedulers never create the same run.
    """
    statement = sa.select(Dag).order_by(Dag.dag_id)
    if lock:
        statement = skip_locked(statement, session)
    if active_only:
        statement = statement.where(Dag.is_active.is_(True))
    if paused is not None:
        statement = statement.where(Dag.is_paused.is_(paused))
    if dag_ids is not None:
        statement = statement.where(Dag.dag_id.in_(list(dag_ids)))
    return list(session.scalars(statement))


def lock_dags(session: Session, dag_ids: Collection[str]) -> set[str]:
    """Lock these DAG rows until the transaction ends, skipping rows another transaction
    holds; returns the ids now held (all of them on SQLite, which has one writer anyway).

    A scheduler holds a DAG this way while it starts the DAG's runs, so that two schedulers
    cannot both start one within ``max_active_runs``.
    """
    if not dag_ids:
        return set()
    statement = skip_locked(sa.select(Dag.dag_id).where(Dag.dag_id.in_(sorted(dag_ids))), session)
    return set(session.scalars(statement))


def list_due_dags(session: Session, *, now: datetime) -> list[Dag]:
    """Active, unpaused DAGs whose next run is due (``next_dagrun_run_after <= now``)."""
    statement = (
        sa.select(Dag)
        .where(
            Dag.is_active.is_(True),
            Dag.is_paused.is_(False),
            Dag.next_dagrun_run_after.is_not(None),
            Dag.next_dagrun_run_after <= now,
        )
        .order_by(Dag.next_dagrun_run_after, Dag.dag_id)
    )
    return list(session.scalars(statement))


def set_paused(session: Session, dag_id: str, paused: bool) -> bool:
    """Pause or unpause a DAG; returns whether the flag changed. :class:`NotFound` if absent."""
    dag = get_dag(session, dag_id)
    changed = dag.is_paused != paused
    dag.is_paused = paused
    session.flush()
    return changed


def set_next_dagrun(
    session: Session,
    dag_id: str,
    *,
    logical_date: datetime | None,
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    run_after: datetime | None,
) -> None:
    """Record when the DAG's next scheduled run is due (all None: no further run)."""
    session.execute(
        sa.update(Dag)
        .where(Dag.dag_id == dag_id)
        .values(
            next_dagrun_logical_date=logical_date,
            next_dagrun_data_interval_start=data_interval_start,
            next_dagrun_data_interval_end=data_interval_end,
            next_dagrun_run_after=run_after,
        )
        .execution_options(synchronize_session="fetch")
    )


def deactivate_missing(
    session: Session,
    seen_dag_ids: Collection[str],
    *,
    within_files: Collection[str] | None = None,
) -> list[str]:
    """Mark active DAGs that are not in ``seen_dag_ids`` inactive; returns their ids (sorted).

    With ``within_files`` only DAGs whose ``fileloc`` is one of those files are considered
    (a partial re-parse, or files that were deleted).
    """
    statement = sa.select(Dag.dag_id).where(
        Dag.is_active.is_(True), Dag.dag_id.not_in(list(seen_dag_ids))
    )
    if within_files is not None:
        statement = statement.where(Dag.fileloc.in_(list(within_files)))
    gone = sorted(session.scalars(statement))
    if gone:
        session.execute(
            sa.update(Dag)
            .where(Dag.dag_id.in_(gone))
            .values(is_active=False)
            .execution_options(synchronize_session="fetch")
        )
    return gone


def delete_dag(session: Session, dag_id: str) -> None:
    """Delete a DAG with its versions, runs, task instances and XComs (foreign-key cascade).

    Raises :class:`NotFound` when there is no such DAG.
    """
    get_dag(session, dag_id)
    from tradewind.db.models import TaskInstanceHistory

    # History rows have no foreign key (they outlive clears); remove them explicitly.
    session.execute(sa.delete(TaskInstanceHistory).where(TaskInstanceHistory.dag_id == dag_id))
    session.execute(
        sa.delete(Dag).where(Dag.dag_id == dag_id).execution_options(synchronize_session="fetch")
    )


def get_version(session: Session, version_id: int) -> DagVersion:
    """A DAG version by id; :class:`NotFound` when absent."""
    version = session.get(DagVersion, version_id)
    if version is None:
        raise NotFound("DAG version", str(version_id))
    return version


def get_latest_version(session: Session, dag_id: str) -> DagVersion:
    """The DAG's newest version; :class:`NotFound` when the DAG or its versions are absent."""
    dag = get_dag(session, dag_id)
    if dag.latest_version_id is None:
        raise NotFound("DAG version", f"{dag_id} (latest)")
    return get_version(session, dag.latest_version_id)


def get_latest_document(session: Session, dag_id: str) -> dict[str, Any]:
    """The serialized document of the DAG's newest version."""
    return dict(get_latest_version(session, dag_id).document)


def list_versions(session: Session, dag_id: str) -> list[DagVersion]:
    """Every version of a DAG, oldest first."""
    statement = (
        sa.select(DagVersion).where(DagVersion.dag_id == dag_id).order_by(DagVersion.version_number)
    )
    return list(session.scalars(statement))
