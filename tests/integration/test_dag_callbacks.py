"""DAG-level callbacks get the context an Airflow user expects: the template context of a task
instance of the finished run (the failed one for a failure), ``dag_run`` with its task
instances, ``var``/``conn`` from the metadata database, ``ti.xcom_pull`` and ``reason``.

Each callback writes what it saw to a JSON file; the tests read it back. Through the real
scheduler (real migrated SQLite database, DAG files parsed by the DAG processor) and through
``dags test`` (its throw-away database), for a successful and a failed run. The harness is the
one of ``test_scheduler_scenarios.py``.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_scheduler_scenarios import World, make_world

from tradewind.db import connections as db_connections
from tradewind.db import dags as db_dags
from tradewind.db import runs as db_runs
from tradewind.db import variables as db_variables
from tradewind.scheduler import decisions as d
from tradewind.scheduler.callbacks import callback_log_path, start_dag_callback, when_committed
from tradewind.sdk.connection import Connection
from tradewind.serialization import deserialize_dag

pytestmark = pytest.mark.timeout(120)

DAY = datetime(2024, 3, 5, tzinfo=UTC)
PASSWORD = "s3cret-password-123"

PIPELINES = """
import json
import logging

from tradewind import Param, get_current_context


def describe(context):
    ti = context["ti"]
    run = context["dag_run"]
    conn = context["conn"].get("warehouse", None)
    if conn is not None:
        logging.getLogger("tradewind.dag_callback").info("warehouse password: %s", conn.password)
    return {
        "pid": os.getpid(),
        "reason": context["reason"],
        "keys": sorted(context),
        "ti": [ti.task_id, ti.map_index, str(ti.state)],
        "ti_try_number": ti.try_number,
        "task": context["task"].task_id,
        "ti_is_task_instance": context["task_instance"] is ti,
        "run_id": context["run_id"],
        "run": {
            "run_id": run.run_id,
            "state": str(run.state),
            "run_type": run.run_type,
            "logical_date": run.logical_date.isoformat(),
            "data_interval": [
                run.data_interval_start.isoformat(),
                run.data_interval_end.isoformat(),
            ],
            "conf_limit": run.conf.get("limit"),
            "conf_blob": len(run.conf.get("blob", "")),
            "dates": run.start_date is not None and run.end_date >= run.start_date,
        },
        "tis": sorted(
            [t.task_id, t.map_index, str(t.state), t.end_date is not None]
            for t in run.get_task_instances()
        ),
        "failed": [t.task_id for t in run.get_task_instances(state="failed")],
        "extract_state": str(run.get_task_instance("extract").state),
        "ds": context["ds"],
        "ts": context["ts"],
        "params": sorted(context["params"]),
        "limit": context["params"]["limit"],
        "var": context["var"].value.get("greeting", "no variable"),
        "conn_host": conn.host if conn is not None else None,
        "tomorrow": context["macros"].ds_add(context["ds"], 1),
        "extract": ti.xcom_pull(task_ids="extract"),
        "doubled": ti.xcom_pull(task_ids="double"),
        "current_run_id": get_current_context()["run_id"],
    }


def recorder(name):
    def record(context):
        (OUT / f"{name}.json").write_text(json.dumps(describe(context)))

    return record


def boom(context):
    raise RuntimeError("the callback itself breaks")


def fail():
    raise RuntimeError("load failed")


def pipeline(dag_id, broken):
    with DAG(
        dag_id,
        schedule="@daily",
        start_date=datetime(2024, 1, 1),
        params={"limit": Param(5, type="integer")},
        on_success_callback=[boom, recorder(f"{dag_id}.success")],
        on_failure_callback=[boom, recorder(f"{dag_id}.failure")],
    ) as dag:

        @task
        def extract():
            return {"rows": 3}

        @task
        def double(x):
            return x * 2

        load = PythonOperator(
            task_id="load", python_callable=fail if broken else (lambda: "loaded")
        )
        extract() >> double.expand(x=[1, 2, 3]) >> load >> EmptyOperator(task_id="report")
    return dag


pipeline("cb_ok", broken=False)
pipeline("cb_broken", broken=True)
"""

#: Context keys a DAG callback always gets for a run with a logical date.
EXPECTED_KEYS = {
    "conn", "dag", "dag_run", "data_interval_end", "data_interval_start", "ds", "ds_nodash",
    "inlets", "logical_date", "macros", "map_index_template", "outlets", "params",
    "prev_data_interval_end_success", "prev_data_interval_start_success",
    "prev_end_date_success", "prev_start_date_success", "reason", "run_id", "task",
    "task_instance", "task_instance_key_str", "ti", "ts", "ts_nodash", "ts_nodash_with_tz", "var",
}  # fmt: skip


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    # The callback child loads settings: keep it away from the developer's ~/tradewind.
    monkeypatch.setenv("TRADEWIND_HOME", str(tmp_path / "home"))
    w = make_world(tmp_path)
    yield w
    w.close()


def trigger(world: World, dag_id: str, conf: dict[str, Any]) -> str:
    """A manual run for ``DAY`` with ``conf`` (as ``tradewind dags trigger --conf``)."""
    now = world.now()
    with world.db.session() as s:
        version = db_dags.get_latest_version(s, dag_id)
        view = deserialize_dag(version.document)
        interval = d.manual_run_interval(view.timetable, DAY)
        db_runs.create_run(
            s, view, run_id=f"manual__{dag_id}", run_type="manual", run_after=now, now=now,
            dag_version_id=version.id, logical_date=DAY,
            data_interval=(interval.start, interval.end), conf=conf,
        )  # fmt: skip
    return f"manual__{dag_id}"


def seen(world: World, name: str) -> dict[str, Any]:
    path = world.out / f"{name}.json"
    assert path.exists(), f"the callback wrote no {path.name}"
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def check_common(got: dict[str, Any], run_id: str) -> None:
    assert set(got["keys"]) >= EXPECTED_KEYS
    assert got["ti_is_task_instance"] and got["run_id"] == run_id == got["current_run_id"]
    assert got["pid"] != os.getpid()
    assert (got["ds"], got["ts"], got["tomorrow"]) == (
        "2024-03-05",
        "2024-03-05T00:00:00+00:00",
        "2024-03-06",
    )
    run = got["run"]
    assert (run["run_id"], run["run_type"], run["logical_date"]) == (
        run_id,
        "manual",
        "2024-03-05T00:00:00+00:00",
    )
    assert run["data_interval"] == ["2024-03-05T00:00:00+00:00", "2024-03-06T00:00:00+00:00"]
    assert run["dates"] and got["extract_state"] == "success"
    assert got["extract"] == {"rows": 3} and got["doubled"] == [2, 4, 6]


def check_success(got: dict[str, Any], run_id: str) -> None:
    check_common(got, run_id)
    # the instance that ended last: the run's final task
    assert got["reason"] == "success" and got["ti"] == ["report", -1, "success"]
    assert got["task"] == "report" and got["run"]["state"] == "success"
    assert got["failed"] == []
    assert got["tis"] == [
        ["double", 0, "success", True],
        ["double", 1, "success", True],
        ["double", 2, "success", True],
        ["extract", -1, "success", True],
        ["load", -1, "success", True],
        ["report", -1, "success", True],
    ]


def check_failure(got: dict[str, Any], run_id: str) -> None:
    check_common(got, run_id)
    # the failed instance, although its downstream ended after it
    assert got["reason"] == "task_failure" and got["ti"] == ["load", -1, "failed"]
    assert got["task"] == "load" and got["ti_try_number"] == 1
    assert got["run"]["state"] == "failed" and got["failed"] == ["load"]
    assert ["report", -1, "upstream_failed", True] in got["tis"]


def check_log(log_text: str, kind: str) -> None:
    # the broken callback is logged and the next one still runs; the password is masked
    assert f"DAG {kind} callback boom failed; the error is ignored" in log_text
    assert "RuntimeError: the callback itself breaks" in log_text
    assert f"running DAG {kind} callback recorder.<locals>.record" in log_text
    assert "partial context" not in log_text
    assert "warehouse password: ***" in log_text and PASSWORD not in log_text


# --- through the real scheduler ---------------------------------------------------------------


def test_the_scheduler_gives_dag_callbacks_the_full_context(world: World) -> None:
    # given two pipelines (one whose load fails), a variable and a connection in the database
    world.write_dag("pipelines", PIPELINES)
    world.sync()
    with world.db.session() as s:
        db_variables.set_variable(s, "greeting", "hello", fernet=None, now=world.now())
        warehouse = Connection(
            conn_id="warehouse", conn_type="postgres", host="db.example", password=PASSWORD
        )
        db_connections.add_connection(s, warehouse, fernet=None, now=world.now())
    # and runs whose conf overrides a param, one with a conf too large for a command line
    ok = trigger(world, "cb_ok", {"limit": 7, "blob": "x" * 20_000})
    broken = trigger(world, "cb_broken", {"limit": 9})
    sched = world.scheduler(create_scheduled_runs=False)
    # when both runs finish and their callbacks have run
    assert world.finish(sched, "cb_ok", ok) == "success"
    assert world.finish(sched, "cb_broken", broken) == "failed"
    assert sched.wait_for_callbacks(timeout=60)
    # expect the success callback to see the last instance, the run, XComs, var and conn
    got = seen(world, "cb_ok.success")
    check_success(got, ok)
    # (conf keys not declared as params become params, as in Airflow)
    assert got["params"] == ["blob", "limit"] and got["limit"] == got["run"]["conf_limit"] == 7
    assert got["run"]["conf_blob"] == 20_000  # read from the database, not the command line
    assert (got["var"], got["conn_host"]) == ("hello", "db.example")
    # and the failure callback to see the failed instance
    got = seen(world, "cb_broken.failure")
    check_failure(got, broken)
    assert got["limit"] == 9 and (got["var"], got["conn_host"]) == (
        "hello",
        "db.example",
    )
    # and no callback of the other kind
    assert not (world.out / "cb_ok.failure.json").exists()
    assert not (world.out / "cb_broken.success.json").exists()
    for dag_id, run_id, kind in (("cb_ok", ok, "success"), ("cb_broken", broken, "failure")):
        check_log(callback_log_path(world.logs, dag_id, run_id).read_text(), kind)


# --- through dags test ------------------------------------------------------------------------


def test_dags_test_gives_dag_callbacks_the_full_context(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradewind.dag_processing import load_dag_from_file
    from tradewind.scheduler.dag_test import test_dag

    # given the pipelines, with the variable and connection in the environment (a test run's
    # database is a throw-away one)
    path = world.write_dag("pipelines", PIPELINES)
    monkeypatch.setenv("TRADEWIND_VAR_GREETING", "hi from env")
    monkeypatch.setenv("TRADEWIND_CONN_WAREHOUSE", f"postgres://user:{PASSWORD}@db.example:5432/dw")
    for dag_id, kind, check in (
        ("cb_ok", "success", check_success),
        ("cb_broken", "failure", check_failure),
    ):
        dag = load_dag_from_file(str(path), dag_id)
        logs = io.StringIO()
        # when it is tested with a conf
        result = test_dag(dag, logical_date=DAY, conf={"limit": 3}, log_stream=logs)
        # expect its callback to have seen the whole context by the time the test returns
        assert result.state == ("success" if kind == "success" else "failed")
        got = seen(world, f"{dag_id}.{kind}")
        check(got, result.run_id)
        assert got["params"] == ["limit"] and got["limit"] == 3
        assert (got["var"], got["conn_host"]) == ("hi from env", "db.example")
        check_log(logs.getvalue(), kind)


# --- a context that cannot be built whole ---------------------------------------------------------


PARTIAL = """
import json


def record(context):
    (OUT / "partial.json").write_text(json.dumps({
        "keys": sorted(context),
        "no_ti": context["ti"] is None,
        "ds": context.get("ds"),
        "state": str(context["dag_run"].state),
        "conf": context["dag_run"].conf,
        "tis": len(context["dag_run"].get_task_instances()),
        "reason": context["reason"],
    }))


with DAG("partial", schedule=None, on_failure_callback=record):
    EmptyOperator(task_id="only")
"""


@pytest.mark.parametrize(
    ("database", "why"),
    [
        ("sqlite://", "the scheduler's database is in memory"),
        ("empty.db", "cannot read the run from the metadata database"),
    ],
)
def test_a_callback_without_its_run_in_the_database_runs_with_the_run_fields(
    world: World, database: str, why: str
) -> None:
    # given a DAG whose failure callback records what it got
    path = world.write_dag("partial", PARTIAL)
    url = database if "://" in database else f"sqlite:///{world.root / database}"
    # when its callback starts with a database that does not hold the run
    proc = start_dag_callback(
        fileloc=str(path),
        dag_id="partial",
        run_id="manual__1",
        kind="failure",
        reason="timed_out",
        log_folder=world.logs,
        run_info={"run_type": "manual", "state": "failed", "logical_date": DAY.isoformat(),
                  "conf": {"a": 1}},
        database_url=url,
    )  # fmt: skip
    assert proc.wait(timeout=60) == 0
    # expect the callback to run anyway, with the run's fields from the scheduler
    got = json.loads((world.out / "partial.json").read_text())
    keys = set(got.pop("keys"))
    assert got == {
        "no_ti": True,
        "ds": "2024-03-05",
        "state": "failed",
        "conf": {"a": 1},
        "tis": 0,
        "reason": "timed_out",
    }
    assert {"dag", "dag_run", "reason", "run_id", "macros", "var", "conn", "ts"} <= keys
    # and the log to say what is missing
    log_text = callback_log_path(world.logs, "partial", "manual__1").read_text()
    assert f"the callback gets a partial context (run fields only, no task instance): {why}" in (
        log_text
    )
    assert "running DAG failure callback record (reason: timed_out)" in log_text


# --- starting the child only once the run's end is committed ------------------------------------


def test_the_child_starts_after_commit_and_never_after_rollback(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []
    select_one = sa.text("SELECT 1")
    # given an action registered in a transaction that commits
    with world.db.session() as s:
        s.execute(select_one)
        when_committed(s, lambda: calls.append("committed"))
        # expect nothing before the commit, and the action once after it
        assert calls == []
    assert calls == ["committed"]
    # given one registered in a transaction that rolls back, on a session used again later
    s = world.db.session_factory()
    try:
        s.execute(select_one)
        when_committed(s, lambda: calls.append("rolled back"))
        s.rollback()
        s.execute(select_one)
        s.commit()
    finally:
        s.close()
    # expect it never to run
    assert calls == ["committed"]
    # and without a transaction, at once
    when_committed(None, lambda: calls.append("now"))
    assert calls == ["committed", "now"]
    # and an action that fails after the commit is logged, not raised
    with world.db.session() as s:
        s.execute(select_one)
        when_committed(s, lambda: [][0])
    assert "could not start a DAG callback" in caplog.text
