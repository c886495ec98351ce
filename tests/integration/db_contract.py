"""The metadata-database contract: every query function, run against SQLite and PostgreSQL.

Test bodies live in :class:`DbContract` (schema, DAGs, runs, state changes, task instances) and
``db_contract_data.DataContract`` (the other aggregates). ``test_db_contract_sqlite.py`` (here)
and ``tests/services/test_db_contract_postgres.py`` subclass it and provide the ``db`` fixture:
a freshly migrated, empty database per test.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from db_contract_data import DataContract
from db_contract_support import NOW, TABLES, T, add_run, dag_document, set_state, ti_id_of

from tradewind.db import dags, import_errors, pools
from tradewind.db import runs as db_runs
from tradewind.db import task_instances as tis
from tradewind.db.database import Database
from tradewind.db.migrate import HEAD_REVISION, check
from tradewind.db.models import Base, DagRun, TaskInstance, TaskInstanceHistory
from tradewind.db.state_changes import transition_run, transition_task, transition_tasks
from tradewind.errors import AlreadyExists, InvalidArgumentError, InvalidTransition, NotFound
from tradewind.state import RunState

__all__ = ["TABLES", "DbContract"]


class DbContract(DataContract):
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
        add_run(db, logical_date=datetime(2024, 5, 1, 2, 0, tzinfo=plus2))
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
        add_run(db)
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
        add_run(db)
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
        add_run(db)
        with pytest.raises(AlreadyExists, match="r1"):
            add_run(db)
        with pytest.raises(AlreadyExists, match="logical date"):
            add_run(db, "r2")
        add_run(db, "r3", logical_date=None)
        add_run(db, "r4", logical_date=None)  # runs without a logical date never collide

    def test_list_count_and_find_runs(self, db: Database) -> None:
        day = timedelta(days=1)
        add_run(db, "r1", logical_date=NOW, state=RunState.SUCCESS)
        add_run(db, "r2", logical_date=NOW + day, state=RunState.RUNNING)
        add_run(db, "r3", logical_date=NOW + 2 * day, state=RunState.QUEUED)
        add_run(db, "o1", dag_id="other", logical_date=NOW, state=RunState.QUEUED)
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
        add_run(db)
        ti_id = ti_id_of(db, "a")
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
        add_run(db)
        ti_id = ti_id_of(db, "a")
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
        add_run(db)
        ti_id = ti_id_of(db, "a")
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
        add_run(db)
        ids = [ti_id_of(db, t) for t in ("a", "b", "z")]
        set_state(db, ids[1], T.SCHEDULED)
        with db.session() as s:
            won = transition_tasks(s, ids, T.CREATED, T.SCHEDULED, now=NOW, scheduled_at=NOW)
            assert won == [ids[0], ids[2]]
            assert tis.get_ti(s, ids[0]).scheduled_at == NOW

    def test_transition_run(self, db: Database) -> None:
        run_pk = add_run(db, state=RunState.QUEUED)
        with db.session() as s:
            assert transition_run(
                s, run_pk, RunState.QUEUED, RunState.RUNNING, now=NOW, start_date=NOW
            )
            assert not transition_run(s, run_pk, RunState.QUEUED, RunState.RUNNING, now=NOW)
            assert db_runs.get_run_by_id(s, run_pk).state is RunState.RUNNING

    def test_concurrent_compare_and_set_has_exactly_one_winner(self, db: Database) -> None:
        # given task instances in state queued
        add_run(db)
        ids = [ti_id_of(db, t) for t in ("a", "b", "z")]
        for ti_id in ids:
            set_state(db, ti_id, T.SCHEDULED, T.QUEUED)
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

    def test_skip_locked_lets_a_second_scheduler_pass_claimed_rows(self, db: Database) -> None:
        from tradewind.db.engine import is_postgres, skip_locked

        add_run(db, "r1")
        add_run(db, "r2", logical_date=NOW + timedelta(days=1))
        first = db.session_factory()
        second = db.session_factory()
        try:
            statement = sa.select(DagRun.run_id).order_by(DagRun.run_id).limit(1)
            claimed = first.scalars(skip_locked(statement, first)).all()
            if is_postgres(first):
                # given the first scheduler holds r1, the second one gets r2 without waiting
                others = second.scalars(skip_locked(statement, second)).all()
                assert (claimed, others) == (["r1"], ["r2"])
            else:
                # SQLite has one writer: the clause is left out and the first transaction
                # holds the write lock, so there is nothing to skip
                assert "FOR UPDATE" not in str(skip_locked(statement, first))
                assert claimed == ["r1"]
        finally:
            first.rollback()
            second.rollback()
            first.close()
            second.close()

    # -- task instances ------------------------------------------------------------------------

    def test_counts_by_state_and_group(self, db: Database) -> None:
        add_run(db)
        set_state(db, ti_id_of(db, "a"), T.SCHEDULED, T.QUEUED)
        set_state(db, ti_id_of(db, "b"), T.SCHEDULED, T.QUEUED, T.RUNNING)
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
        add_run(db)
        ti_id = ti_id_of(db, "a")
        with db.session() as s:
            assert tis.set_task_fields(s, ti_id, pid=42, rendered_fields={"cmd": "echo"})
            with pytest.raises(InvalidArgumentError, match="state"):
                tis.set_task_fields(s, ti_id, state=T.SUCCESS)
        with db.session() as s:
            ti = tis.get_ti(s, ti_id)
            assert (ti.pid, ti.rendered_fields, ti.state) == (42, {"cmd": "echo"}, T.CREATED)

    def test_expand_mapped_task(self, db: Database) -> None:
        add_run(db)
        placeholder = ti_id_of(db, "m")
        with db.session() as s:
            expanded = tis.expand_mapped(s, "etl", "r1", "m", 3, now=NOW)
            assert [t.map_index for t in expanded] == [0, 1, 2]
            assert expanded[0].id == placeholder  # the placeholder becomes index 0
            assert all(t.state is T.CREATED and t.pool == "default_pool" for t in expanded)
            # expanding again changes nothing
            again = tis.expand_mapped(s, "etl", "r1", "m", 5, now=NOW)
            assert [t.id for t in again] == [t.id for t in expanded]

    def test_expand_mapped_task_of_length_zero_skips_it(self, db: Database) -> None:
        add_run(db)
        with db.session() as s:
            [ti] = tis.expand_mapped(s, "etl", "r1", "m", 0, now=NOW)
        assert (ti.map_index, ti.state, ti.end_date) == (-1, T.SKIPPED, NOW)

    def test_task_map_records(self, db: Database) -> None:
        add_run(db)
        with db.session() as s:
            tis.record_task_map(s, "etl", "r1", "b", -1, 3)
            tis.record_task_map(s, "etl", "r1", "b", -1, 2, ["x", "y"])
        with db.session() as s:
            row = tis.get_task_map(s, "etl", "r1", "b")
            assert row is not None and (row.length, row.keys) == (2, ["x", "y"])
            assert tis.get_task_map(s, "etl", "r1", "a") is None

    def test_clear_downstream_and_only_failed(self, db: Database) -> None:
        # given a finished failed run: a success, b failed (try 1), m upstream_failed, z running
        run_pk = add_run(db)
        set_state(db, ti_id_of(db, "a"), T.SUCCESS)
        b = ti_id_of(db, "b")
        with db.session() as s:
            transition_task(s, b, T.CREATED, T.SCHEDULED, now=NOW, try_number=1)
        set_state(db, b, T.QUEUED, T.RUNNING, T.FAILED)
        set_state(db, ti_id_of(db, "m"), T.UPSTREAM_FAILED)
        set_state(db, ti_id_of(db, "z"), T.SCHEDULED, T.QUEUED, T.RUNNING)
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
        add_run(db)
        ids = [ti_id_of(db, "a"), ti_id_of(db, "b")]
        set_state(db, ids[1], T.SCHEDULED)  # scheduled cannot become success directly
        with db.session() as s:
            assert tis.mark_state(s, ids, T.SUCCESS, now=NOW) == [ids[0]]
            assert tis.get_ti(s, ids[0]).end_date == NOW
            assert tis.mark_state(s, ids, T.FAILED, now=NOW) == ids
