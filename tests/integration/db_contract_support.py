"""Shared data and helpers of the metadata-database contract tests (see ``db_contract.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from tradewind.db import dags
from tradewind.db import runs as db_runs
from tradewind.db import task_instances as tis
from tradewind.db.database import Database
from tradewind.db.models import Base
from tradewind.db.state_changes import transition_task
from tradewind.state import RunState, TaskState

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
T = TaskState

#: Tables a test database is emptied of between tests (everything but the version table).
TABLES = sorted(Base.metadata.tables)


def dag_document(dag_id: str = "etl", *, retries: int = 1, description: str = "d") -> dict:
    """A serialized DAG: a (owner alice, retries) >> b (pool p1, 2 slots) >> m (mapped) >> z."""
    from tradewind import DAG, task
    from tradewind.operators.empty import EmptyOperator
    from tradewind.serialization import serialize_dag

    with DAG(
        dag_id,
        schedule="@daily",
        start_date=datetime(2024, 1, 1, tzinfo=UTC),
        tags=["team", "daily"],
        description=description,
    ) as dag:
        a = EmptyOperator(task_id="a", retries=retries, owner="alice")
        b = EmptyOperator(task_id="b", pool="p1", pool_slots=2)

        @task
        def m(x: int) -> int:
            return x

        z = EmptyOperator(task_id="z")
        a >> b >> m.expand(x=[1, 2, 3]) >> z
    return serialize_dag(dag)


def add_run(
    db: Database,
    run_id: str = "r1",
    *,
    dag_id: str = "etl",
    logical_date: datetime | None = NOW,
    state: RunState = RunState.RUNNING,
    now: datetime = NOW,
    backfill_id: int | None = None,
) -> int:
    doc = dag_document(dag_id)
    with db.session() as s:
        result = dags.sync_dag(s, doc, now=now)
        run = db_runs.create_run(
            s,
            doc,
            run_id=run_id,
            run_type="manual",
            run_after=logical_date or now,
            now=now,
            dag_version_id=result.version_id,
            logical_date=logical_date,
            data_interval=(logical_date, logical_date + timedelta(days=1))
            if logical_date
            else None,
            state=state,
            backfill_id=backfill_id,
        )
        return run.id


def ti_id_of(db: Database, task_id: str, run_id: str = "r1", map_index: int = -1) -> str:
    with db.session() as s:
        return tis.get_ti_by_key(s, "etl", run_id, task_id, map_index).id


def set_state(db: Database, ti_id: str, *states: TaskState) -> None:
    """Walk a task instance through legal states (created -> ... -> last)."""
    with db.session() as s:
        current = tis.get_ti(s, ti_id).state
        for state in states:
            assert transition_task(s, ti_id, current, state, now=NOW)
            current = state


def table_counts(db: Database) -> dict[str, Any]:
    """Rows per table (debugging aid for failing contract tests)."""
    with db.engine.connect() as conn:
        return {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar() for t in TABLES}
