"""The metadata-database contract: every query function, run against SQLite and PostgreSQL.

Test bodies live in :class:`DbContract`; ``tests/integration/test_db_contract_sqlite.py`` and
``tests/services/test_db_contract_postgres.py`` subclass it and provide the ``db`` fixture (a
freshly migrated, empty database per test).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tradewind.db import assets, audit, backfills, dags, import_errors, jobs, pools, retention
from tradewind.db import connections as db_connections
from tradewind.db import runs as db_runs
from tradewind.db import task_instances as tis
from tradewind.db import variables as db_variables
from tradewind.db import xcom as db_xcom
from tradewind.db.crypto import fernet_from_keys, generate_key
from tradewind.db.database import Database
from tradewind.db.migrate import HEAD_REVISION, check
from tradewind.db.models import Base, DagRun, TaskInstance, TaskInstanceHistory
from tradewind.db.state_changes import transition_run, transition_task, transition_tasks
from tradewind.db.task_data import DbSecretsBackend, DbTaskDataService
from tradewind.errors import (
    AlreadyExists,
    ConnectionNotFound,
    InvalidArgumentError,
    InvalidTransition,
    NotFound,
    TradewindError,
    VariableNotFound,
    XComError,
)
from tradewind.sdk.connection import Connection
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


def _add_run(
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


def _ti_id(db: Database, task_id: str, run_id: str = "r1", map_index: int = -1) -> str:
    with db.session() as s:
        return tis.get_ti_by_key(s, "etl", run_id, task_id, map_index).id


def _set_state(db: Database, ti_id: str, *states: TaskState) -> None:
    """Walk a task instance through legal states (created -> ... -> last)."""
    with db.session() as s:
        current = tis.get_ti(s, ti_id).state
        for state in states:
            assert transition_task(s, ti_id, current, state, now=NOW)
            current = state


class DbContract:
    """Every test here runs on each backend; ``db`` is overridden by the backend's module."""

    @pytest.fixture
    def db(self) -> Database:  # pragma: no cover - replaced by subclasses
        raise NotImplementedError

    # -- schema --------------------------------------------------------------------------------

    def test_migrated_schema_matches_the_models(self, db: Database) -> None:
        # given a database created by the migrations
        with db.engine.connect() as conn:
            # when alembic compares it with the models
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
        # expect no difference at all
        assert diff == []

    def test_check_reports_the_database_up_to_date(self, db: Database) -> None:
        status = check(db.engine)
        assert status.up_to_date and status.current == HEAD_REVISION and status.pending == []

    def test_default_pool_exists_with_128_slots(self, db: Database) -> None:
        with db.session() as s:
            pool = pools.get_pool(s, "default_pool")
        assert pool.slots == 128

    def test_datetimes_come_back_aware_utc(self, db: Database) -> None:
        # given a run stored with a +02:00 logical date
        plus2 = timezone(timedelta(hours=2))
        _add_run(db, logical_date=datetime(2024, 5, 1, 2, 0, tzinfo=plus2))
        # when it is read back
        with db.session() as s:
            run = db_runs.get_run(s, "etl", "r1")
            # expect the same instant, in UTC
            assert run.logical_date == datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
            assert run.logical_date.tzinfo is UTC
            # and comparisons in SQL use the same instant
            found = db_runs.list_runs(
                s, logical_date_from=datetime(2024, 4, 30, 23, 59, tzinfo=UTC)
            )
        assert [r.run_id for r in found] == ["r1"]

    # -- dags ----------------------------------------------------------------------------------

    def test_sync_dag_creates_the_dag_and_its_first_version(self, db: Database) -> None:
        doc = dag_document()
        with db.session() as s:
            result = dags.sync_dag(s, doc, now=NOW)
        with db.session() as s:
            dag = dags.get_dag(s, "etl")
            assert (result.created, result.new_version, result.version_number) == (True, True, 1)
            assert dag.is_paused is True  # Airflow's default for new DAGs
            assert dag.is_active and dag.owners == "alice, tradewind"
            assert dag.tags == ["daily", "team"] or sorted(dag.tags or []) == ["daily", "team"]
            assert dag.timetable_summary == "@daily" or dag.timetable_summary
            assert dag.last_parsed_at == NOW
            assert dags.get_latest_document(s, "etl") == doc

    def test_sync_dag_adds_a_version_only_when_the_hash_changes(self, db: Database) -> None:
        with db.session() as s:
            first = dags.sync_dag(s, dag_document(), now=NOW)
            same = dags.sync_dag(s, dag_document(), now=NOW)
            changed = dags.sync_dag(s, dag_document(description="new"), now=NOW)
        assert not same.new_version and same.version_id == first.version_id
        assert changed.new_version and changed.version_number == 2
        with db.session() as s:
            assert [v.version_number for v in dags.list_versions(s, "etl")] == [1, 2]
            assert dags.get_latest_version(s, "etl").id == changed.version_id
            assert dags.get_version(s, first.version_id).document["dag"]["description"] == "d"

    def test_pause_unpause_and_due_dags(self, db: Database) -> None:
        with db.session() as s:
            dags.sync_dag(s, dag_document("etl"), now=NOW, paused_upon_creation=False)
            dags.sync_dag(s, dag_document("other"), now=NOW, paused_upon_creation=False)
            dags.set_next_dagrun(
                s,
                "etl",
                logical_date=NOW,
                data_interval_start=NOW,
                data_interval_end=NOW + timedelta(days=1),
                run_after=NOW + timedelta(days=1),
            )
            dags.set_next_dagrun(
                s,
                "other",
                logical_date=None,
                data_interval_start=None,
                data_interval_end=None,
                run_after=NOW - timedelta(hours=1),
            )
        with db.session() as s:
            due_now = [d.dag_id for d in dags.list_due_dags(s, now=NOW)]
            due_later = [d.dag_id for d in dags.list_due_dags(s, now=NOW + timedelta(days=2))]
            assert dags.set_paused(s, "other", True) is True
            assert dags.set_paused(s, "other", True) is False
            due_paused = [d.dag_id for d in dags.list_due_dags(s, now=NOW + timedelta(days=2))]
            with pytest.raises(NotFound):
                dags.set_paused(s, "missing", True)
        assert due_now == ["other"]
        assert due_later == ["other", "etl"]
        assert due_paused == ["etl"]

    def test_deactivate_missing_dags(self, db: Database) -> None:
        with db.session() as s:
            dags.sync_dag(s, dag_document("a"), now=NOW)
            dags.sync_dag(s, dag_document("b"), now=NOW)
            fileloc = dags.get_dag(s, "a").fileloc
            # a partial parse of another file deactivates nothing
            assert dags.deactivate_missing(s, [], within_files=["/elsewhere.py"]) == []
            # a parse of the file that saw only "b" deactivates "a"
            assert dags.deactivate_missing(s, ["b"], within_files=[fileloc]) == ["a"]
        with db.session() as s:
            assert [d.dag_id for d in dags.list_dags(s)] == ["b"]
            assert [d.dag_id for d in dags.list_dags(s, active_only=False)] == ["a", "b"]

    def test_delete_dag_removes_runs_and_task_instances(self, db: Database) -> None:
        _add_run(db)
        with db.session() as s:
            dags.delete_dag(s, "etl")
        with db.session() as s:
            assert s.scalar(sa.select(sa.func.count()).select_from(TaskInstance)) == 0
            assert s.scalar(sa.select(sa.func.count()).select_from(DagRun)) == 0
            with pytest.raises(NotFound):
                dags.get_dag(s, "etl")

    # -- import errors -------------------------------------------------------------------------

    def test_import_errors_are_replaced_per_file_set(self, db: Database) -> None:
        from tradewind.dag_processing.parser import ImportErrorInfo

        with db.session() as s:
            dags.sync_dag(s, dag_document(), now=NOW)
            fileloc = dags.get_dag(s, "etl").fileloc
            assert fileloc
            broken = ImportErrorInfo(path=fileloc, message="boom", line=3, traceback="tb")
            other = ImportErrorInfo(path="/dags/other.py", message="bad", relative_path="other.py")
            import_errors.replace_import_errors(s, [fileloc], [broken, other], now=NOW)
        with db.session() as s:
            stored = import_errors.list_import_errors(s)
            assert [(e.filename, e.line, e.message) for e in stored] == sorted(
                [(fileloc, 3, "boom"), ("/dags/other.py", None, "bad")]
            )
            assert dags.get_dag(s, "etl").has_import_errors is True
            # when the file is fixed
            import_errors.replace_import_errors(s, [fileloc], [], now=NOW)
        with db.session() as s:
            assert import_errors.count_import_errors(s) == 1
            assert dags.get_dag(s, "etl").has_import_errors is False

    # -- runs ----------------------------------------------------------------------------------

    def test_create_run_makes_created_task_instances_with_placeholders(self, db: Database) -> None:
        _add_run(db)
        with db.session() as s:
            run = db_runs.get_run(s, "etl", "r1")
            rows = tis.list_tis(s, "etl", "r1")
        assert run.state is RunState.RUNNING and run.start_date == NOW and run.conf == {}
        assert run.data_interval_end == NOW + timedelta(days=1)
        by_task = {t.task_id: t for t in rows}
        assert sorted(by_task) == ["a", "b", "m", "z"]
        assert all(t.state is T.CREATED and t.map_index == -1 and t.try_number == 0 for t in rows)
        assert by_task["a"].max_tries == 1
        assert (by_task["b"].pool, by_task["b"].pool_slots) == ("p1", 2)
        assert by_task["a"].priority_weight == 4  # downstream weight rule: a, b, m, z
        assert by_task["m"].operator and by_task["a"].dag_version_id == run.dag_version_id
        assert len({t.id for t in rows}) == 4 and all(len(t.id) == 32 for t in rows)

    def test_create_run_refuses_duplicates(self, db: Database) -> None:
        _add_run(db)
        with pytest.raises(AlreadyExists, match="r1"):
            _add_run(db)
        with pytest.raises(AlreadyExists, match="logical date"):
            _add_run(db, "r2")
        _add_run(db, "r3", logical_date=None)
        _add_run(db, "r4", logical_date=None)  # runs without a logical date never collide

    def test_list_count_and_find_runs(self, db: Database) -> None:
        day = timedelta(days=1)
        _add_run(db, "r1", logical_date=NOW, state=RunState.SUCCESS)
        _add_run(db, "r2", logical_date=NOW + day, state=RunState.RUNNING)
        _add_run(db, "r3", logical_date=NOW + 2 * day, state=RunState.QUEUED)
        _add_run(db, "o1", dag_id="other", logical_date=NOW, state=RunState.QUEUED)
        with db.session() as s:
            assert [r.run_id for r in db_runs.list_runs(s, dag_id="etl")] == ["r3", "r2", "r1"]
            assert [
                r.run_id for r in db_runs.list_runs(s, states=[RunState.QUEUED], newest_first=False)
            ] == ["o1", "r3"]
            assert [r.run_id for r in db_runs.list_runs(s, dag_id="etl", limit=1, offset=1)] == [
                "r2"
            ]
            assert db_runs.active_run_counts(s) == {"etl": 2, "other": 1}
            assert db_runs.active_run_counts(s, states=[RunState.RUNNING]) == {"etl": 1}
            assert db_runs.count_runs_by_state(s, dag_ids=["etl"]) == {
                "etl": {RunState.SUCCESS: 1, RunState.RUNNING: 1, RunState.QUEUED: 1}
            }
            latest = db_runs.get_latest_run(s, "etl")
            previous = db_runs.get_previous_run(s, "etl", NOW + day)
            assert latest is not None and latest.run_id == "r3"
            assert previous is not None and previous.run_id == "r1"
            assert db_runs.get_previous_run(s, "etl", NOW) is None
            db_runs.set_run_fields(s, latest.id, last_scheduling_decision=NOW)
            with pytest.raises(InvalidArgumentError):
                db_runs.set_run_fields(s, latest.id, state="failed")
        with db.session() as s:
            assert db_runs.get_run_by_id(s, latest.id).last_scheduling_decision == NOW
            db_runs.delete_run(s, "etl", "r1")
        with db.session() as s:
            with pytest.raises(NotFound):
                db_runs.get_run(s, "etl", "r1")
            assert tis.list_tis(s, "etl", "r1") == []

    # -- state changes -------------------------------------------------------------------------

    def test_transition_task_is_a_compare_and_set(self, db: Database) -> None:
        _add_run(db)
        ti_id = _ti_id(db, "a")
        with db.session() as s:
            ti = tis.get_ti(s, ti_id)  # loaded before the change
            assert transition_task(s, ti_id, T.CREATED, T.SCHEDULED, now=NOW, try_number=1)
            # the loaded object shows the new state
            assert ti.state is T.SCHEDULED and ti.try_number == 1 and ti.updated_at == NOW
            # a second actor expecting the old state loses
            assert not transition_task(s, ti_id, T.CREATED, T.SCHEDULED, now=NOW)
            # a condition on the try that does not hold loses too
            assert not transition_task(
                s, ti_id, T.SCHEDULED, T.QUEUED, now=NOW, where={"try_number": 2}
            )
            assert transition_task(s, ti_id, {T.SCHEDULED}, T.QUEUED, now=NOW)

    def test_illegal_transitions_and_columns_are_refused(self, db: Database) -> None:
        _add_run(db)
        ti_id = _ti_id(db, "a")
        with db.session() as s:
            with pytest.raises(InvalidTransition) as info:
                transition_task(s, ti_id, T.CREATED, T.RUNNING, now=NOW)
            assert info.value.current == "created" and info.value.new == "running"
            with pytest.raises(InvalidTransition):
                transition_task(s, ti_id, {T.CREATED, T.SUCCESS}, T.SCHEDULED, now=NOW)
            with pytest.raises(InvalidArgumentError, match="bogus"):
                transition_task(s, ti_id, T.CREATED, T.SCHEDULED, now=NOW, bogus=1)
            with pytest.raises(InvalidTransition):
                transition_run(s, 1, RunState.QUEUED, RunState.QUEUED, now=NOW)

    def test_ending_a_try_writes_a_history_row(self, db: Database) -> None:
        _add_run(db)
        ti_id = _ti_id(db, "a")
        with db.session() as s:
            for old, new in [(T.CREATED, T.SCHEDULED), (T.SCHEDULED, T.QUEUED)]:
                assert transition_task(s, ti_id, old, new, now=NOW, try_number=1)
            assert transition_task(s, ti_id, T.QUEUED, T.RUNNING, now=NOW, start_date=NOW)
            end = NOW + timedelta(seconds=5)
            assert transition_task(
                s, ti_id, T.RUNNING, T.UP_FOR_RETRY, now=end, end_date=end, last_error="boom"
            )
        with db.session() as s:
            history = list(s.scalars(sa.select(TaskInstanceHistory)))
        assert [(h.ti_id, h.try_number, h.state, h.last_error) for h in history] == [
            (ti_id, 1, T.UP_FOR_RETRY, "boom")
        ]
        assert history[0].start_date == NOW and history[0].pool == "default_pool"

    def test_transition_tasks_returns_the_ids_it_moved(self, db: Database) -> None:
        _add_run(db)
        ids = [_ti_id(db, t) for t in ("a", "b", "z")]
        _set_state(db, ids[1], T.SCHEDULED)
        with db.session() as s:
            won = transition_tasks(s, ids, T.CREATED, T.SCHEDULED, now=NOW, scheduled_at=NOW)
            assert won == [ids[0], ids[2]]
            assert tis.get_ti(s, ids[0]).scheduled_at == NOW

    def test_transition_run(self, db: Database) -> None:
        run_pk = _add_run(db, state=RunState.QUEUED)
        with db.session() as s:
            assert transition_run(
                s, run_pk, RunState.QUEUED, RunState.RUNNING, now=NOW, start_date=NOW
            )
            assert not transition_run(s, run_pk, RunState.QUEUED, RunState.RUNNING, now=NOW)
            assert db_runs.get_run_by_id(s, run_pk).state is RunState.RUNNING

    def test_concurrent_compare_and_set_has_exactly_one_winner(self, db: Database) -> None:
        # given task instances in state queued
        _add_run(db)
        ids = [_ti_id(db, t) for t in ("a", "b", "z")]
        for ti_id in ids:
            _set_state(db, ti_id, T.SCHEDULED, T.QUEUED)
        for ti_id in ids:
            # when two sessions in two threads race queued -> running
            barrier = threading.Barrier(2)
            results: list[bool] = []
            errors: list[BaseException] = []

            def race(ti_id: str = ti_id, barrier: threading.Barrier = barrier) -> None:
                try:
                    barrier.wait(timeout=10)
                    with db.session() as s:
                        results.append(transition_task(s, ti_id, T.QUEUED, T.RUNNING, now=NOW))
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=race) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            # expect exactly one of them to win
            assert errors == []
            assert sorted(results) == [False, True]

    # -- task instances ------------------------------------------------------------------------

    def test_counts_by_state_and_group(self, db: Database) -> None:
        _add_run(db)
        _set_state(db, _ti_id(db, "a"), T.SCHEDULED, T.QUEUED)
        _set_state(db, _ti_id(db, "b"), T.SCHEDULED, T.QUEUED, T.RUNNING)
        with db.session() as s:
            assert tis.count_by_state(s, "etl", "r1") == {T.CREATED: 2, T.QUEUED: 1, T.RUNNING: 1}
            assert tis.count_tis(s, ["dag_id", "run_id"], states=[T.QUEUED, T.RUNNING]) == {
                ("etl", "r1"): 2
            }
            assert tis.count_tis(s, ["pool"], states=[T.RUNNING], sum_pool_slots=True) == {
                ("p1",): 2
            }
            assert [t.task_id for t in tis.list_tis_in_states(s, [T.QUEUED, T.RUNNING])] == [
                "a",
                "b",
            ]
            assert [t.task_id for t in tis.list_tis(s, "etl", "r1", states=[T.CREATED])] == [
                "m",
                "z",
            ]
            with pytest.raises(InvalidArgumentError):
                tis.count_tis(s, ["password"])
            with pytest.raises(NotFound, match=r"etl/r1/m\[3\]"):
                tis.get_ti_by_key(s, "etl", "r1", "m", 3)

    def test_set_task_fields_never_touches_the_state(self, db: Database) -> None:
        _add_run(db)
        ti_id = _ti_id(db, "a")
        with db.session() as s:
            assert tis.set_task_fields(s, ti_id, pid=42, rendered_fields={"cmd": "echo"})
            with pytest.raises(InvalidArgumentError, match="state"):
                tis.set_task_fields(s, ti_id, state=T.SUCCESS)
        with db.session() as s:
            ti = tis.get_ti(s, ti_id)
            assert (ti.pid, ti.rendered_fields, ti.state) == (42, {"cmd": "echo"}, T.CREATED)

    def test_expand_mapped_task(self, db: Database) -> None:
        _add_run(db)
        placeholder = _ti_id(db, "m")
        with db.session() as s:
            expanded = tis.expand_mapped(s, "etl", "r1", "m", 3, now=NOW)
            assert [t.map_index for t in expanded] == [0, 1, 2]
            assert expanded[0].id == placeholder  # the placeholder becomes index 0
            assert all(t.state is T.CREATED and t.pool == "default_pool" for t in expanded)
            # expanding again changes nothing
            again = tis.expand_mapped(s, "etl", "r1", "m", 5, now=NOW)
            assert [t.id for t in again] == [t.id for t in expanded]

    def test_expand_mapped_task_of_length_zero_skips_it(self, db: Database) -> None:
        _add_run(db)
        with db.session() as s:
            [ti] = tis.expand_mapped(s, "etl", "r1", "m", 0, now=NOW)
        assert (ti.map_index, ti.state, ti.end_date) == (-1, T.SKIPPED, NOW)

    def test_task_map_records(self, db: Database) -> None:
        _add_run(db)
        with db.session() as s:
            tis.record_task_map(s, "etl", "r1", "b", -1, 3)
            tis.record_task_map(s, "etl", "r1", "b", -1, 2, ["x", "y"])
        with db.session() as s:
            row = tis.get_task_map(s, "etl", "r1", "b")
            assert row is not None and (row.length, row.keys) == (2, ["x", "y"])
            assert tis.get_task_map(s, "etl", "r1", "a") is None

    def test_clear_downstream_and_only_failed(self, db: Database) -> None:
        # given a finished failed run: a success, b failed (try 1), m upstream_failed, z running
        run_pk = _add_run(db)
        _set_state(db, _ti_id(db, "a"), T.SUCCESS)
        b = _ti_id(db, "b")
        with db.session() as s:
            transition_task(s, b, T.CREATED, T.SCHEDULED, now=NOW, try_number=1)
        _set_state(db, b, T.QUEUED, T.RUNNING, T.FAILED)
        _set_state(db, _ti_id(db, "m"), T.UPSTREAM_FAILED)
        _set_state(db, _ti_id(db, "z"), T.SCHEDULED, T.QUEUED, T.RUNNING)
        with db.session() as s:
            transition_run(s, run_pk, RunState.RUNNING, RunState.FAILED, now=NOW, end_date=NOW)
        doc = dag_document()
        with db.session() as s:
            # a dry run changes nothing
            preview = tis.clear_task_instances(s, doc, ["r1"], ["b"], now=NOW, dry_run=True)
            assert [t.task_id for t in preview] == ["b"]
            # when b is cleared with its downstream tasks, failed ones only
            cleared = tis.clear_task_instances(
                s, doc, ["r1"], ["b"], now=NOW, downstream=True, only_failed=True
            )
        assert sorted(t.task_id for t in cleared) == ["b", "m"]
        with db.session() as s:
            states = {t.task_id: t for t in tis.list_tis(s, "etl", "r1")}
            run = db_runs.get_run_by_id(s, run_pk)
        # expect them back to created, b with its retries again, the run queued
        assert states["b"].state is T.CREATED and states["b"].max_tries == 1
        assert states["b"].end_date is None
        assert states["m"].state is T.CREATED
        assert states["a"].state is T.SUCCESS and states["z"].state is T.RUNNING
        assert (run.state, run.clear_number, run.end_date) == (RunState.QUEUED, 1, None)
        with db.session() as s:
            # clearing the upstream of z (a, b, m) plus z: z is running, so restarting
            tis.clear_task_instances(s, doc, ["r1"], ["z"], now=NOW, upstream=True)
            states = {t.task_id: t.state for t in tis.list_tis(s, "etl", "r1")}
        assert states == {"a": T.CREATED, "b": T.CREATED, "m": T.CREATED, "z": T.RESTARTING}

    def test_mark_state(self, db: Database) -> None:
        _add_run(db)
        ids = [_ti_id(db, "a"), _ti_id(db, "b")]
        _set_state(db, ids[1], T.SCHEDULED)  # scheduled cannot become success directly
        with db.session() as s:
            assert tis.mark_state(s, ids, T.SUCCESS, now=NOW) == [ids[0]]
            assert tis.get_ti(s, ids[0]).end_date == NOW
            assert tis.mark_state(s, ids, T.FAILED, now=NOW) == ids

    # -- xcom ----------------------------------------------------------------------------------

    def test_xcom_round_trip_replace_list_delete(self, db: Database) -> None:
        _add_run(db)
        value = {"n": Decimal("1.5"), "when": NOW, "pair": (1, 2), "tags": {"x"}}
        with db.session() as s:
            db_xcom.set_xcom(s, "etl", "r1", "a", "return_value", -1, value, now=NOW)
            db_xcom.set_xcom(s, "etl", "r1", "a", "return_value", -1, [1], now=NOW)
            db_xcom.set_xcom(s, "etl", "r1", "a", "return_value", -1, value, now=NOW)
            for index in (2, 0):
                db_xcom.set_xcom(s, "etl", "r1", "m", "return_value", index, index, now=NOW)
        with db.session() as s:
            assert db_xcom.get_xcom(s, "etl", "r1", "a", "return_value") == value
            assert db_xcom.get_xcom_map_indexes(s, "etl", "r1", "m", "return_value") == [0, 2]
            with pytest.raises(KeyError, match="other"):
                db_xcom.get_xcom(s, "etl", "r1", "a", "other")
            rows = db_xcom.list_xcoms(s, "etl", "r1")
            assert [(r.task_id, r.map_index) for r in rows] == [("a", -1), ("m", 0), ("m", 2)]
            assert db_xcom.delete_xcoms(s, "etl", "r1", task_id="m", map_index=2) == 1
            assert db_xcom.get_xcom_map_indexes(s, "etl", "r1", "m", "return_value") == [0]

    def test_xcom_size_limit(self, db: Database) -> None:
        _add_run(db)
        with db.session() as s:
            with pytest.raises(XComError, match="limit of 10 bytes"):
                db_xcom.set_xcom(s, "etl", "r1", "a", "big", -1, "x" * 50, now=NOW, max_size=10)
            assert db_xcom.list_xcoms(s, "etl", "r1") == []

    # -- variables and connections -------------------------------------------------------------

    def test_variables_are_encrypted_at_rest(self, db: Database) -> None:
        fernet = fernet_from_keys(generate_key())
        with db.session() as s:
            db_variables.set_variable(
                s, "api_key", "s3cret-value", fernet=fernet, now=NOW, description="d"
            )
        with db.engine.connect() as conn:
            raw, flag = conn.execute(
                sa.text("SELECT val, is_encrypted FROM variable WHERE key = 'api_key'")
            ).one()
        assert "s3cret" not in raw and bool(flag) is True
        with db.session() as s:
            assert db_variables.get_variable(s, "api_key", fernet=fernet) == "s3cret-value"
            # a different key cannot read it, and says why
            with pytest.raises(TradewindError, match="another key"):
                db_variables.get_variable(s, "api_key", fernet=fernet_from_keys(generate_key()))
            with pytest.raises(TradewindError, match="no Fernet key"):
                db_variables.get_variable(s, "api_key", fernet=None)

    def test_variables_crud(self, db: Database) -> None:
        with db.session() as s:
            db_variables.set_variable(s, "b", "1", fernet=None, now=NOW)
            db_variables.set_variable(s, "a", "x", fernet=None, now=NOW, description="first")
            db_variables.set_variable(s, "a", "y", fernet=None, now=NOW)
        with db.session() as s:
            rows = db_variables.list_variables(s)
            assert [(r.key, r.description, r.is_encrypted) for r in rows] == [
                ("a", "first", False),
                ("b", None, False),
            ]
            assert db_variables.get_variable(s, "a", fernet=None) == "y"
            db_variables.delete_variable(s, "a")
            with pytest.raises(VariableNotFound):
                db_variables.delete_variable(s, "a")
            with pytest.raises(KeyError):
                db_variables.get_variable(s, "a", fernet=None)

    def test_key_rotation_re_encrypts(self, db: Database) -> None:
        old, new = generate_key(), generate_key()
        with db.session() as s:
            db_variables.set_variable(s, "v", "value", fernet=fernet_from_keys(old), now=NOW)
            conn = Connection("c", conn_type="http", password="pw")
            db_connections.add_connection(s, conn, fernet=fernet_from_keys(old), now=NOW)
        both = fernet_from_keys(f"{new},{old}")
        with db.session() as s:
            assert db_variables.rotate_variables(s, both) == 1
            assert db_connections.rotate_connections(s, both, now=NOW) == 1
        with db.session() as s:
            only_new = fernet_from_keys(new)
            assert db_variables.get_variable(s, "v", fernet=only_new) == "value"
            assert db_connections.get_connection(s, "c", fernet=only_new).password == "pw"

    def test_connections_crud_and_encryption(self, db: Database) -> None:
        fernet = fernet_from_keys(generate_key())
        conn = Connection.from_uri("warehouse", "postgres://etl:p%40ss@db:5432/sales?sslmode=req")
        conn.description = "main db"
        with db.session() as s:
            db_connections.add_connection(s, conn, fernet=fernet, now=NOW)
            with pytest.raises(AlreadyExists):
                db_connections.add_connection(s, conn, fernet=fernet, now=NOW)
            db_connections.set_connection(s, Connection("http_api", "http"), fernet=fernet, now=NOW)
        with db.engine.connect() as conn_:
            raw = conn_.execute(
                sa.text("SELECT password, extra FROM connection WHERE conn_id = 'warehouse'")
            ).one()
        assert "p@ss" not in raw[0] and "sslmode" not in raw[1]
        with db.session() as s:
            back = db_connections.get_connection(s, "warehouse", fernet=fernet)
            assert back.to_dict() == conn.to_dict()
            assert [c.conn_id for c in db_connections.list_connections(s, fernet=fernet)] == [
                "http_api",
                "warehouse",
            ]
            db_connections.delete_connection(s, "warehouse")
            with pytest.raises(ConnectionNotFound):
                db_connections.get_connection(s, "warehouse", fernet=fernet)

    # -- pools ---------------------------------------------------------------------------------

    def test_pools_crud_and_occupancy(self, db: Database) -> None:
        _add_run(db)
        with db.session() as s:
            pools.set_pool(s, "p1", 5, description="small")
            pools.set_pool(s, "p1", 4)  # keeps the description
            with pytest.raises(InvalidArgumentError):
                pools.set_pool(s, "bad", -1)
        _set_state(db, _ti_id(db, "b"), T.SCHEDULED, T.QUEUED)  # 2 slots of p1
        _set_state(db, _ti_id(db, "a"), T.SCHEDULED, T.QUEUED, T.RUNNING)  # 1 of default
        with db.session() as s:
            stats = {p.pool: p for p in pools.pool_stats(s)}
            assert (stats["p1"].slots, stats["p1"].description) == (4, "small")
            assert (stats["p1"].queued, stats["p1"].open) == (2, 2)
            assert (stats["default_pool"].running, stats["default_pool"].open) == (1, 127)
            assert pools.occupied_slots(s, ["p1"]) == {"p1": 2}
            with pytest.raises(InvalidArgumentError, match="default_pool"):
                pools.delete_pool(s, "default_pool")
            pools.delete_pool(s, "p1")
            with pytest.raises(NotFound):
                pools.get_pool(s, "p1")
            assert [p.pool for p in pools.list_pools(s)] == ["default_pool"]

    # -- audit ---------------------------------------------------------------------------------

    def test_audit_log_appends_and_lists_newest_first(self, db: Database) -> None:
        with db.session() as s:
            audit.record(s, "cli.variables.set", actor="ann", when=NOW, extra={"key": "a"})
            audit.record(s, "cli.dags.pause", actor="bob", when=NOW + timedelta(1), dag_id="etl")
        with db.session() as s:
            rows = audit.list_audit(s)
            assert [r.event for r in rows] == ["cli.dags.pause", "cli.variables.set"]
            assert rows[1].extra == {"key": "a"} and rows[1].when == NOW
            assert [r.actor for r in audit.list_audit(s, event_prefix="cli.var")] == ["ann"]
            assert [r.event for r in audit.list_audit(s, dag_id="etl")] == ["cli.dags.pause"]

    # -- assets --------------------------------------------------------------------------------

    def test_asset_events_queue_runs_for_consumers(self, db: Database) -> None:
        with db.session() as s:
            dags.sync_dag(s, dag_document("consumer"), now=NOW)
            asset = assets.upsert_asset(s, uri="s3://b/orders", group="data", now=NOW)
            again = assets.upsert_asset(s, uri="s3://b/orders", group="data", now=NOW)
            assert again.id == asset.id and asset.name == "s3://b/orders"
            assets.set_schedule_references(s, "consumer", [asset.id], now=NOW)
            assets.record_asset_event(s, asset.id, now=NOW, source_dag_id="etl")
            assets.record_asset_event(s, asset.id, now=NOW + timedelta(1))
        with db.session() as s:
            assert assets.list_queued(s) == {"consumer": {asset.id: NOW}}
            assert len(assets.list_asset_events(s, asset_id=asset.id)) == 2
            assert assets.get_asset(s, uri="s3://b/orders").group == "data"
            assert assets.clear_queue(s, "consumer") == 1
            assets.set_schedule_references(s, "consumer", [], now=NOW)
            assets.record_asset_event(s, asset.id, now=NOW)
            assert assets.list_queued(s) == {}
            assert [a.uri for a in assets.list_assets(s)] == ["s3://b/orders"]

    # -- backfills -----------------------------------------------------------------------------

    def test_backfill_lifecycle(self, db: Database) -> None:
        with db.session() as s:
            dags.sync_dag(s, dag_document(), now=NOW)
            with pytest.raises(InvalidArgumentError):
                backfills.create_backfill(s, "etl", NOW, NOW - timedelta(1), now=NOW)
            with pytest.raises(InvalidArgumentError):
                backfills.create_backfill(s, "etl", NOW, NOW, now=NOW, reprocess_behavior="x")
            backfill = backfills.create_backfill(
                s, "etl", NOW - timedelta(3), NOW, now=NOW, reprocess_behavior="failed"
            )
            with pytest.raises(AlreadyExists):
                backfills.create_backfill(s, "etl", NOW, NOW, now=NOW)
        queued = _add_run(db, "b1", state=RunState.QUEUED, backfill_id=backfill.id)
        _add_run(db, "b2", logical_date=NOW - timedelta(1), backfill_id=backfill.id)
        with db.session() as s:
            assert backfills.set_backfill_paused(s, backfill.id, True, now=NOW).is_paused
            assert backfills.cancel_backfill(s, backfill.id, now=NOW) == [queued]
            assert db_runs.get_run(s, "etl", "b1").state is RunState.FAILED
            assert db_runs.get_run(s, "etl", "b2").state is RunState.RUNNING
            assert backfills.list_backfills(s, active_only=True) == []
            assert [b.id for b in backfills.list_backfills(s, dag_id="etl")] == [backfill.id]
            assert not backfills.complete_backfill(s, backfill.id, now=NOW)

    # -- jobs ----------------------------------------------------------------------------------

    def test_job_heartbeats_and_stale_jobs(self, db: Database) -> None:
        with db.session() as s:
            old = jobs.start_job(s, "scheduler", hostname="h", pid=1, now=NOW)
            new = jobs.start_job(s, "scheduler", hostname="h", pid=2, now=NOW)
            assert jobs.heartbeat(s, new.id, now=NOW + timedelta(seconds=60))
            stale = jobs.find_stale_jobs(s, older_than=NOW + timedelta(seconds=30))
            assert [j.id for j in stale] == [old.id]
            assert jobs.end_job(s, old.id, now=NOW, state=jobs.JOB_FAILED)
            assert not jobs.heartbeat(s, old.id, now=NOW)  # declared dead: stop
            latest = jobs.latest_job(s, "scheduler")
            assert latest is not None and latest.id == new.id
            assert jobs.get_job(s, old.id).state == "failed"

    # -- retention -----------------------------------------------------------------------------

    def test_clean_deletes_old_finished_rows_in_batches(self, db: Database) -> None:
        # given an old running run, three old finished runs, and old audit rows
        old = NOW - timedelta(days=100)
        _add_run(db, "running", logical_date=old - timedelta(days=5), now=old)
        for i in range(3):
            pk = _add_run(db, f"old{i}", logical_date=old + timedelta(i), now=old)
            with db.session() as s:
                transition_run(s, pk, RunState.RUNNING, RunState.SUCCESS, now=old, end_date=old)
                db_xcom.set_xcom(s, "etl", f"old{i}", "a", "k", -1, i, now=old)
        with db.session() as s:
            for i in range(5):
                audit.record(s, "x", actor="a", when=old + timedelta(minutes=i))
            audit.record(s, "new", actor="a", when=NOW)
        before = NOW - timedelta(days=30)
        # when cleaning in dry-run mode
        dry = retention.clean(db.session_factory, before, dry_run=True)
        # expect counts, and nothing deleted (the newest run, old2, is kept)
        assert dry["dag_run"] == 2 and dry["task_instance"] == 8 and dry["xcom"] == 2
        assert dry["audit_log"] == 5
        with db.session() as s:
            assert len(db_runs.list_runs(s)) == 4
        # when cleaning for real with tiny batches
        calls: list[tuple[str, int]] = []
        done = retention.clean(
            db.session_factory, before, batch_size=2, progress=lambda t, n: calls.append((t, n))
        )
        assert done == dry
        assert ("audit_log", 2) in calls and ("audit_log", 4) in calls
        with db.session() as s:
            assert sorted(r.run_id for r in db_runs.list_runs(s)) == ["old2", "running"]
            assert [r.event for r in audit.list_audit(s)] == ["new"]
            assert len(tis.list_tis(s, "etl", "old0")) == 0
        with pytest.raises(InvalidArgumentError):
            retention.clean(db.session_factory, before, tables=["dag"])

    def test_clean_one_table_keeps_the_runs(self, db: Database) -> None:
        old = NOW - timedelta(days=100)
        for i in range(2):
            pk = _add_run(db, f"old{i}", logical_date=old + timedelta(i), now=old)
            with db.session() as s:
                transition_run(s, pk, RunState.RUNNING, RunState.FAILED, now=old, end_date=old)
                db_xcom.set_xcom(s, "etl", f"old{i}", "a", "k", -1, i, now=old)
        done = retention.clean(db.session_factory, NOW, tables=["xcom"])
        assert done == {"xcom": 1}
        with db.session() as s:
            assert len(db_runs.list_runs(s)) == 2

    # -- task data service and secrets backend -------------------------------------------------

    def test_task_data_service(self, db: Database) -> None:
        from dataclasses import dataclass

        @dataclass(frozen=True)
        class Key:
            dag_id: str
            run_id: str
            task_id: str
            map_index: int = -1
            try_number: int = 1

        _add_run(db)
        ti_id = _ti_id(db, "a")
        with db.session() as s:
            transition_task(s, ti_id, T.CREATED, T.SCHEDULED, now=NOW, try_number=1)
            transition_task(s, ti_id, T.SCHEDULED, T.QUEUED, now=NOW)
            db_xcom.set_xcom(s, "etl", "r1", "a", "stale", -1, "old try", now=NOW)
        fernet = fernet_from_keys(generate_key())
        with db.session() as s:
            db_variables.set_variable(s, "v", "value", fernet=fernet, now=NOW)
            db_connections.add_connection(
                s, Connection("c", "http", password="pw"), fernet=fernet, now=NOW
            )
        service = DbTaskDataService(
            db.session_factory, fernet=fernet, xcom_max_size=100, now=lambda: NOW
        )
        # the wrong try does not start; the right one starts once
        assert not service.start_task(
            ti_id, Key("etl", "r1", "a", try_number=2), pid=7, hostname="h", now=NOW
        )
        assert service.start_task(ti_id, Key("etl", "r1", "a"), pid=7, hostname="h", now=NOW)
        assert not service.start_task(ti_id, Key("etl", "r1", "a"), pid=7, hostname="h", now=NOW)
        with db.session() as s:  # committed, visible to another session
            ti = tis.get_ti(s, ti_id)
            assert (ti.state, ti.pid, ti.hostname, ti.start_date) == (T.RUNNING, 7, "h", NOW)
        with pytest.raises(KeyError):
            service.get_xcom("etl", "r1", "a", "stale", -1)  # the old try's XCom is gone
        service.set_xcom("etl", "r1", "a", "return_value", -1, {"rows": 3})
        assert service.get_xcom("etl", "r1", "a", "return_value", -1) == {"rows": 3}
        assert service.get_xcom_map_indexes("etl", "r1", "a", "return_value") == [-1]
        with pytest.raises(XComError):
            service.set_xcom("etl", "r1", "a", "big", -1, "x" * 200)
        assert service.get_variable("v") == "value"
        assert service.get_connection("c").password == "pw"
        with pytest.raises(VariableNotFound):
            service.get_variable("nope")
        with pytest.raises(ConnectionNotFound):
            service.get_connection("nope")

    def test_secrets_backend_serves_variable_get(self, db: Database) -> None:
        from tradewind.sdk import secrets
        from tradewind.sdk.variable import Variable

        with db.session() as s:
            db_variables.set_variable(s, "tw_contract_var", "from-db", fernet=None, now=NOW)
            conn = Connection("tw_contract_conn", "http", host="example")
            db_connections.add_connection(s, conn, fernet=None, now=NOW)
        backend = DbSecretsBackend(db.session_factory, fernet=None)
        secrets.register_backend(backend)
        try:
            assert Variable.get("tw_contract_var") == "from-db"
            assert secrets.get_connection("tw_contract_conn").host == "example"
            assert Variable.get("tw_contract_missing", default="d") == "d"
            assert backend.get_connection("missing") is None
        finally:
            secrets.unregister_backend(backend)


def table_counts(db: Database) -> dict[str, Any]:
    """Rows per table (debugging aid for failing contract tests)."""
    with db.engine.connect() as conn:
        return {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar() for t in TABLES}
