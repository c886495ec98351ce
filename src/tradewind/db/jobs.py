"""Jobs: the long-running components (scheduler, DAG processor, triggerer …) and their
heartbeats, so another process can tell a live component from a dead one."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tradewind.db.models import Job
from tradewind.errors import NotFound

__all__ = [
    "JOB_FAILED",
    "JOB_RUNNING",
    "JOB_SUCCESS",
    "end_job",
    "find_stale_jobs",
    "get_job",
    "heartbeat",
    "latest_job",
    "running_jobs",
    "start_job",
]

JOB_RUNNING = "running"
JOB_SUCCESS = "success"
JOB_FAILED = "failed"


def start_job(session: Session, job_type: str, *, hostname: str, pid: int, now: datetime) -> Job:
    """Record a component starting (state ``running``, first heartbeat ``now``)."""
    job = Job(
        job_type=job_type,
        state=JOB_RUNNING,
        hostname=hostname,
        pid=pid,
        start_date=now,
        latest_heartbeat=now,
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: int) -> Job:
    """A job by id; raises :class:`NotFound`."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound("job", str(job_id))
    return job


def heartbeat(session: Session, job_id: int, *, now: datetime) -> bool:
    """Record that the job is alive; False when it is no longer running (another process
    declared it dead), which tells the component to stop."""
    result = session.execute(
        sa.update(Job)
        .where(Job.id == job_id, Job.state == JOB_RUNNING)
        .values(latest_heartbeat=now)
        .execution_options(synchronize_session="fetch")
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def end_job(session: Session, job_id: int, *, now: datetime, state: str = JOB_SUCCESS) -> bool:
    """Record a running job's end (``success`` or ``failed``); returns whether it was running."""
    result = session.execute(
        sa.update(Job)
        .where(Job.id == job_id, Job.state == JOB_RUNNING)
        .values(state=state, end_date=now)
        .execution_options(synchronize_session="fetch")
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def find_stale_jobs(
    session: Session, *, older_than: datetime, job_type: str | None = None
) -> list[Job]:
    """Running jobs whose latest heartbeat is before ``older_than`` (presumed dead)."""
    statement = sa.select(Job).where(Job.state == JOB_RUNNING, Job.latest_heartbeat < older_than)
    if job_type is not None:
        statement = statement.where(Job.job_type == job_type)
    return list(session.scalars(statement.order_by(Job.latest_heartbeat)))


def running_jobs(session: Session, job_type: str) -> list[Job]:
    """Jobs of a type recorded as running (alive or not: check their heartbeats)."""
    statement = sa.select(Job).where(Job.state == JOB_RUNNING, Job.job_type == job_type)
    return list(session.scalars(statement.order_by(Job.id)))


def latest_job(session: Session, job_type: str) -> Job | None:
    """The most recently started job of a type (for health checks), or None."""
    statement = (
        sa.select(Job)
        .where(Job.job_type == job_type)
        .order_by(Job.start_date.desc(), Job.id.desc())
        .limit(1)
    )
    return session.scalar(statement)
