"""The example DAGs shipped in ``tradewind/examples/dags``: they parse, validate, show the idioms
they are there to teach, and (run task by task through the in-process runtime) really work."""

from __future__ import annotations

import ast
import gzip
import json
import runpy
import sqlite3
import sys
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import tradewind.examples
from tradewind import DAG, Param, TaskGroup
from tradewind.sdk import _context_stack
from tradewind.sdk.mapping import ListOfDictsExpandInput, MappedOperator
from tradewind.sdk.trigger_rule import TriggerRule
from tradewind.state import TaskState

EXAMPLES_DIR = Path(tradewind.examples.__file__).parent / "dags"
EXAMPLE_FILES = sorted(EXAMPLES_DIR.glob("*.py"))

EXPECTED_TASKS: dict[str, set[str]] = {
    "example_daily_sqlite_load": {"create_tables", "extract", "load", "summarize"},
    "example_partitioned_etl": {
        "start",
        "publish_manifest",
        *(
            f"{p}.{step}"
            for p in ("emea", "americas", "apac")
            for step in ("extract", "transform", "load")
        ),
    },
    "example_dynamic_mapping": {
        "stage_files",
        "count_paid",
        "sum_counts",
        "archive_file",
        "validate_file.read_header",
        "validate_file.check_header",
        "publish_report",
    },
    "example_branching": {
        "choose_load_strategy",
        "full_refresh.reload_orders",
        "full_refresh.rebuild_aggregates",
        "weekend_top_up",
        "publish",
        "is_month_end",
        "close_month",
    },
    "example_taskflow_xcom": {"extract", "transform", "load", "report"},
    "example_params_trigger": {"build_report", "announce", "should_send", "send_report"},
}


def load_example(path: Path) -> tuple[list[DAG], dict[str, Any]]:
    """Import one example file the way DAG processing does; return its DAGs and globals."""
    with _context_stack.collecting() as dags:
        namespace = runpy.run_path(str(path), run_name=f"tradewind_example_{path.stem}")
    return dags, namespace


@pytest.fixture(scope="module")
def examples() -> dict[str, tuple[DAG, dict[str, Any]]]:
    """dag_id -> (DAG, the globals of the file defining it)."""
    found: dict[str, tuple[DAG, dict[str, Any]]] = {}
    for path in EXAMPLE_FILES:
        dags, namespace = load_example(path)
        for dag in dags:
            found[dag.dag_id] = (dag, namespace)
    return found


# --- parsing -------------------------------------------------------------------------------------


def test_the_examples_folder_ships_every_example_and_its_config() -> None:
    names = {p.name for p in EXAMPLE_FILES}
    assert {f"{dag_id}.py" for dag_id in EXPECTED_TASKS} <= names
    assert (EXAMPLES_DIR / "partitions.json").is_file()


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_file_imports_cleanly_and_defines_valid_documented_dags(path: Path) -> None:
    # when the file is imported as DAG processing imports it
    dags, namespace = load_example(path)

    # expect at least one DAG, each valid, documented and tagged
    assert dags, f"{path.name} defines no DAG"
    assert namespace.get("__doc__"), f"{path.name} has no module docstring"
    for dag in dags:
        dag.validate()
        dag.params.validate()  # every default satisfies its schema
        assert dag.doc_md and len(dag.doc_md) > 200, f"{dag.dag_id} needs a real doc_md"
        assert "example" in dag.tags
        assert dag.catchup is False
        assert Path(dag.fileloc).resolve() == path.resolve()


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_imports_only_stdlib_and_the_public_tradewind_api(path: Path) -> None:
    allowed_tradewind = {"tradewind", "tradewind.operators", "tradewind.hooks", "tradewind.errors"}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            if top == "tradewind":
                assert module in allowed_tradewind, f"{path.name} imports {module}"
            else:
                assert top in sys.stdlib_module_names or top == "__future__", (
                    f"{path.name} imports the third-party module {module}"
                )


def test_parsing_the_examples_does_no_io_and_looks_up_no_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an empty TRADEWIND_HOME and a secrets lookup that must not be called
    from tradewind.sdk import secrets

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("TRADEWIND_HOME", str(home))

    def no_lookup(conn_id: str) -> Any:
        raise AssertionError(f"connection {conn_id!r} looked up at parse time")

    monkeypatch.setattr(secrets, "get_connection", no_lookup)

    # when every example is parsed
    for path in EXAMPLE_FILES:
        load_example(path)

    # expect nothing written under TRADEWIND_HOME
    assert list(home.iterdir()) == []


def test_expected_dags_and_tasks_exist(examples: dict[str, tuple[DAG, dict[str, Any]]]) -> None:
    assert set(EXPECTED_TASKS) <= set(examples)
    for dag_id, task_ids in EXPECTED_TASKS.items():
        dag, _ = examples[dag_id]
        assert set(dag.task_ids) == task_ids, dag_id


# --- the idioms each example is there to show -----------------------------------------------------


def test_daily_load_is_scheduled_daily_with_retries(examples: dict[str, Any]) -> None:
    dag, _ = examples["example_daily_sqlite_load"]
    assert dag.schedule == "@daily"
    assert dag.catchup is False
    for task in dag.tasks:
        assert task.retries == 2
        assert task.retry_delay == timedelta(minutes=5)
    assert dag.get_task("load").upstream_task_ids == {"create_tables", "extract"}


def test_partitioned_etl_has_one_task_group_per_configured_partition(
    examples: dict[str, Any],
) -> None:
    dag, _ = examples["example_partitioned_etl"]
    config = json.loads((EXAMPLES_DIR / "partitions.json").read_text(encoding="utf-8"))
    names = [p["name"] for p in config["partitions"]]
    groups = {g.group_id: g for g in dag.task_group.iter_groups()}
    assert set(groups) == set(names)
    for name in names:
        assert isinstance(groups[name], TaskGroup)
        assert dag.get_task(f"{name}.transform").upstream_task_ids == {f"{name}.extract"}
        assert dag.get_task(f"{name}.load").upstream_task_ids == {f"{name}.transform"}
        assert dag.get_task(f"{name}.extract").upstream_task_ids == {"start"}
    assert dag.get_task("publish_manifest").upstream_task_ids == {f"{n}.load" for n in names}


def test_dynamic_mapping_maps_a_task_with_partial_expand_kwargs_and_a_task_group(
    examples: dict[str, Any],
) -> None:
    dag, _ = examples["example_dynamic_mapping"]
    count = dag.get_task("count_paid")
    assert isinstance(count, MappedOperator)
    assert count.partial_kwargs["op_kwargs"] == {"status": "paid"}
    archive = dag.get_task("archive_file")
    assert isinstance(archive, MappedOperator)
    assert isinstance(archive.expand_input, ListOfDictsExpandInput)
    group = dag.task_group.find_group("validate_file")
    assert group is not None and group.is_mapped
    assert dag.get_task("sum_counts").upstream_task_ids == {"count_paid"}


def test_branching_uses_a_branch_task_labels_a_join_rule_and_a_short_circuit(
    examples: dict[str, Any],
) -> None:
    from tradewind.operators import ShortCircuitOperator

    dag, _ = examples["example_branching"]
    choose = dag.get_task("choose_load_strategy")
    assert getattr(choose, "inherits_from_skipmixin", False)
    assert "Branch" in type(choose).__name__
    assert dag.get_edge_info("choose_load_strategy", "full_refresh.reload_orders") == {
        "label": "Mon-Fri: full refresh"
    }
    assert dag.get_edge_info("choose_load_strategy", "weekend_top_up")["label"]
    assert dag.get_task("publish").trigger_rule == TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS
    assert isinstance(dag.get_task("is_month_end"), ShortCircuitOperator)


def test_taskflow_example_has_schema_params_multiple_outputs_and_a_templated_bash_task(
    examples: dict[str, Any],
) -> None:
    from tradewind.operators import BashOperator

    dag, _ = examples["example_taskflow_xcom"]
    sample_size = dag.params["sample_size"]
    assert isinstance(sample_size, Param)
    assert sample_size.value == 10
    assert sample_size.schema["type"] == "integer" and sample_size.schema["minimum"] == 1
    assert dag.get_task("transform").multiple_outputs is True
    report = dag.get_task("report")
    assert isinstance(report, BashOperator)
    assert "{{ ds }}" in report.bash_command and "ti.xcom_pull(" in report.bash_command


def test_params_example_is_manual_and_validates_its_params(examples: dict[str, Any]) -> None:
    from tradewind.errors import ParamValidationError

    dag, _ = examples["example_params_trigger"]
    assert dag.schedule is None
    top_n = dag.params["top_n"]
    assert top_n.resolve(3, name="top_n") == 3
    with pytest.raises(ParamValidationError):
        top_n.resolve(0, name="top_n")
    with pytest.raises(ParamValidationError):
        dag.params["region"].resolve("mars", name="region")


# --- running the examples task by task ------------------------------------------------------------


@dataclass
class DagRunResult:
    """What one in-process DAG run produced: states per task and the XComs it pushed."""

    dag: DAG
    run: Any
    client: Any
    states: dict[str, list[TaskState]] = field(default_factory=dict)

    def state(self, task_id: str) -> TaskState:
        """The task's state (for a mapped task, the state every instance ended in)."""
        found = set(self.states[task_id])
        assert len(found) == 1, f"{task_id} instances ended in different states: {found}"
        return found.pop()

    def value(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        return self.client.get_xcom(self.dag.dag_id, self.run.run_id, task_id, key, map_index)

    def values(self, task_id: str) -> list[Any]:
        """The return values of every instance of a mapped task, in map-index order."""
        indexes = self.client.get_xcom_map_indexes(
            self.dag.dag_id, self.run.run_id, task_id, "return_value"
        )
        return [self.value(task_id, map_index=i) for i in indexes]


def fresh_dag(dag_id: str) -> DAG:
    """A newly parsed copy of an example DAG, so no run sees another run's objects."""
    dags, _ = load_example(EXAMPLES_DIR / f"{dag_id}.py")
    return next(d for d in dags if d.dag_id == dag_id)


def scheduled_run(dag_id: str, day: str) -> Any:
    """The run of a daily schedule for the data interval [day, day + 1 day)."""
    from tradewind.runtime import RunInfo

    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    end = start + timedelta(days=1)
    return RunInfo(
        dag_id=dag_id,
        run_id=f"scheduled__{end.isoformat()}",
        run_type="scheduled",
        logical_date=start,
        data_interval_start=start,
        data_interval_end=end,
    )


def _mapped_group(task: Any) -> Any:
    group = task.task_group
    while group is not None:
        if group.expand_input is not None:
            return group
        group = group.parent_group
    return None


def _map_indexes(task: Any, dag: DAG, run: Any, client: Any) -> list[int]:
    """[-1] for a plain task; 0..N-1 once the expand input of a mapped task or group is known."""
    from tradewind.runtime import RuntimeTaskInstance, TaskInstanceInfo

    if isinstance(task, MappedOperator):
        expand_input = task.expand_input
    else:
        group = _mapped_group(task)
        if group is None:
            return [-1]
        expand_input = group.expand_input
    info = TaskInstanceInfo(dag_id=dag.dag_id, task_id=task.task_id, run_id=run.run_id)
    ti = RuntimeTaskInstance(info, task=task, client=client, max_tries=0)
    return list(range(expand_input.get_map_length({"ti": ti, "task": task})))


def _decide_without_running(
    task: Any, upstream: list[TaskState], skip_requested: set[str]
) -> TaskState | None:
    """SKIPPED when a branch/short-circuit asked for it or the trigger rule says so; None = run.

    Only the rules the examples use are known; any other rule fails the test rather than
    being guessed.
    """
    if task.task_id in skip_requested:
        return TaskState.SKIPPED
    rule = TriggerRule(task.trigger_rule)
    if rule == TriggerRule.ALL_SUCCESS:
        return TaskState.SKIPPED if TaskState.SKIPPED in upstream else None
    if rule == TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS:
        return None if TaskState.SUCCESS in upstream else TaskState.SKIPPED
    if rule in (TriggerRule.ALL_DONE, TriggerRule.ALWAYS):
        return None
    raise NotImplementedError(f"the test runner does not know trigger rule {rule!r}")


def run_dag(dag: DAG, run: Any) -> DagRunResult:
    """Run every task of ``dag`` once, in dependency order, sharing one in-memory client.

    Every try must succeed or be skipped: a failure ends the test with the task's error.
    """
    from tradewind.runtime import InMemoryTaskClient, TaskInstanceInfo, run_task

    result = DagRunResult(dag=dag, run=run, client=InMemoryTaskClient())
    skip_requested: set[str] = set()
    for task in dag.topological_sort():
        upstream = [s for up in task.upstream_task_ids for s in result.states[up]]
        decided = _decide_without_running(task, upstream, skip_requested)
        if decided is not None:
            result.states[task.task_id] = [decided]
            continue
        indexes = _map_indexes(task, dag, run, result.client)
        if not indexes:  # nothing to map over: the task is skipped, not failed
            result.states[task.task_id] = [TaskState.SKIPPED]
            continue
        states = []
        for index in indexes:
            info = TaskInstanceInfo(
                dag_id=dag.dag_id, task_id=task.task_id, run_id=run.run_id, map_index=index
            )
            outcome = run_task(task, dag=dag, run=run, ti=info, client=result.client)
            assert outcome.state in (TaskState.SUCCESS, TaskState.SKIPPED), (
                f"{task.task_id}[{index}] ended {outcome.state}: {outcome.error}\n"
                f"{outcome.traceback}"
            )
            skip_requested.update(outcome.skipped_task_ids)
            states.append(outcome.state)
        result.states[task.task_id] = states
    return result


def sqlite_rows(path: Path, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, parameters).fetchall()


# --- example_daily_sqlite_load ---------------------------------------------------------------------


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The examples' SQLite connection, pointed at a fresh file."""
    path = tmp_path / "warehouse.db"
    monkeypatch.setenv("TRADEWIND_CONN_TRADEWIND_EXAMPLES_SQLITE", f"sqlite:///{path}")
    return path


def test_daily_load_writes_exactly_the_rows_of_its_interval(warehouse: Path) -> None:
    # given the run for 2024-03-05
    dag = fresh_dag("example_daily_sqlite_load")

    # when it runs
    result = run_dag(dag, scheduled_run(dag.dag_id, "2024-03-05"))

    # expect one row per store and hour of that day, and nothing else
    rows = sqlite_rows(warehouse, "SELECT sold_at, store, units, revenue_cents FROM store_sales")
    assert len(rows) == 24 * 3
    assert {r[0][:10] for r in rows} == {"2024-03-05"}
    assert {r[0] for r in rows} == {f"2024-03-05T{h:02d}:00:00Z" for h in range(24)}
    assert {r[1] for r in rows} == {"harbour", "market_street", "old_town"}
    assert all(
        0 <= units <= 16 and 250 * units <= revenue <= 1149 * units for *_, units, revenue in rows
    )
    assert result.value("load") == 72
    summary = sqlite_rows(warehouse, "SELECT * FROM store_sales_daily")
    units_total = sum(r[2] for r in rows)
    revenue_total = sum(r[3] for r in rows)
    assert summary == [
        ("2024-03-05T00:00:00Z", "2024-03-06T00:00:00Z", 72, units_total, revenue_total)
    ]
    assert result.value("summarize") == {
        "row_count": 72,
        "units": units_total,
        "revenue_cents": revenue_total,
    }


def test_rerunning_a_day_reproduces_it_and_leaves_other_days_alone(warehouse: Path) -> None:
    # given 2024-03-04 and 2024-03-05 loaded, then the 5th damaged by hand
    run_dag(
        fresh_dag("example_daily_sqlite_load"),
        scheduled_run("example_daily_sqlite_load", "2024-03-04"),
    )
    run_dag(
        fresh_dag("example_daily_sqlite_load"),
        scheduled_run("example_daily_sqlite_load", "2024-03-05"),
    )
    everything = "SELECT * FROM store_sales ORDER BY sold_at, store"
    clean = sqlite_rows(warehouse, everything)
    assert len(clean) == 2 * 72
    with closing(sqlite3.connect(warehouse)) as conn, conn:
        conn.execute("INSERT INTO store_sales VALUES ('2024-03-05T12:30:00Z', 'ghost', 1, 1)")
        conn.execute("UPDATE store_sales SET units = 999 WHERE sold_at = '2024-03-05T08:00:00Z'")
        conn.execute("DELETE FROM store_sales WHERE sold_at = '2024-03-05T23:00:00Z'")

    # when the 5th runs again
    run_dag(
        fresh_dag("example_daily_sqlite_load"),
        scheduled_run("example_daily_sqlite_load", "2024-03-05"),
    )

    # expect the table exactly as the clean runs left it (the 4th untouched), summary included
    assert sqlite_rows(warehouse, everything) == clean
    days = sqlite_rows(
        warehouse, "SELECT interval_start, row_count FROM store_sales_daily ORDER BY 1"
    )
    assert days == [("2024-03-04T00:00:00Z", 72), ("2024-03-05T00:00:00Z", 72)]


def test_daily_load_defaults_to_a_file_under_tradewind_home_when_the_connection_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given no connection configured, and TRADEWIND_HOME set
    for prefix in ("TRADEWIND_CONN_", "AIRFLOW_CONN_"):
        monkeypatch.delenv(f"{prefix}TRADEWIND_EXAMPLES_SQLITE", raising=False)
    monkeypatch.setenv("TRADEWIND_HOME", str(tmp_path))

    # when a day runs
    run_dag(
        fresh_dag("example_daily_sqlite_load"),
        scheduled_run("example_daily_sqlite_load", "2024-03-05"),
    )

    # expect its rows in the default file
    default_db = tmp_path / "examples" / "tradewind_examples.db"
    assert sqlite_rows(default_db, "SELECT count(*) FROM store_sales") == [(72,)]


def test_daily_load_refuses_a_run_without_a_data_interval(warehouse: Path) -> None:
    from tradewind.runtime import InMemoryTaskClient, RunInfo, TaskInstanceInfo, run_task

    # given a manual run triggered without a logical date
    dag = fresh_dag("example_daily_sqlite_load")
    run = RunInfo(dag_id=dag.dag_id, run_id="manual__1", run_type="manual")
    info = TaskInstanceInfo(dag_id=dag.dag_id, task_id="extract", run_id=run.run_id, max_tries=0)

    # when extract runs, expect it to fail saying what is missing
    outcome = run_task(
        dag.get_task("extract"), dag=dag, run=run, ti=info, client=InMemoryTaskClient()
    )
    assert outcome.state == TaskState.FAILED
    assert "trigger it with a logical date" in (outcome.error or "")


# --- example_partitioned_etl -----------------------------------------------------------------------


def test_partitioned_etl_loads_every_partition_and_joins_them_in_a_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an empty TRADEWIND_HOME and the partitions of the shipped config
    monkeypatch.setenv("TRADEWIND_HOME", str(tmp_path))
    partitions = json.loads((EXAMPLES_DIR / "partitions.json").read_text(encoding="utf-8"))[
        "partitions"
    ]

    # when the day runs
    result = run_dag(
        fresh_dag("example_partitioned_etl"), scheduled_run("example_partitioned_etl", "2024-03-05")
    )

    # expect one file per partition whose totals follow from what its extract produced
    out = tmp_path / "examples" / "partitioned_etl" / "2024-03-05"
    expected_revenue = 0
    for p in partitions:
        orders = result.value(f"{p['name']}.extract")
        assert len(orders) == p["orders_per_day"]
        revenue = sum(round(o["amount_cents"] * p["to_eur"]) for o in orders)
        expected_revenue += revenue
        written = json.loads((out / f"{p['name']}.json").read_text(encoding="utf-8"))
        assert written["orders"] == p["orders_per_day"]
        assert written["revenue_eur_cents"] == revenue
        assert written["source_currency"] == p["currency"]
    # and a manifest that adds them up
    manifest = json.loads((out / "_manifest.json").read_text(encoding="utf-8"))
    assert manifest == {
        "ds": "2024-03-05",
        "partitions": sorted(p["name"] for p in partitions),
        "orders": 40 + 55 + 25,
        "revenue_eur_cents": expected_revenue,
    }
    assert result.value("publish_manifest") == manifest
    assert all(s == [TaskState.SUCCESS] for s in result.states.values())


# --- example_dynamic_mapping -----------------------------------------------------------------------


def test_dynamic_mapping_runs_one_instance_per_file_and_reduces_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an empty TRADEWIND_HOME
    monkeypatch.setenv("TRADEWIND_HOME", str(tmp_path))

    # when the day runs
    result = run_dag(
        fresh_dag("example_dynamic_mapping"), scheduled_run("example_dynamic_mapping", "2024-03-05")
    )

    # expect three staged files, counted by three mapped instances and summed
    files = result.value("stage_files")
    assert [Path(f).name for f in files] == [
        "orders_north.csv",
        "orders_south.csv",
        "orders_west.csv",
    ]
    paid_per_file = [
        sum(
            1
            for line in Path(f).read_text(encoding="utf-8").splitlines()[1:]
            if line.endswith(",paid")
        )
        for f in files
    ]
    assert paid_per_file == [90, 60, 33]
    assert len(result.states["count_paid"]) == 3
    assert result.values("count_paid") == paid_per_file
    assert result.value("sum_counts") == 183
    # expand_kwargs: one gzip archive per file, identical to its source
    archives = result.values("archive_file")
    assert [Path(a).name for a in archives] == [f"{Path(f).stem}.csv.gz" for f in files]
    for source, archive in zip(files, archives, strict=True):
        assert gzip.decompress(Path(archive).read_bytes()) == Path(source).read_bytes()
    # the mapped group: each instance checked the header of its own file
    checks = result.values("validate_file.check_header")
    assert [c["file"] for c in checks] == [Path(f).name for f in files]
    assert all(c["ok"] for c in checks)
    assert result.value("publish_report") == {"paid_orders": 183, "files_checked": 3, "archived": 3}


# --- example_branching -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "followed", "skipped_path", "month_end"),
    [
        ("2024-03-06", "full_refresh", "weekend_top_up", False),  # a Wednesday
        ("2024-03-09", "weekend_top_up", "full_refresh.reload_orders", False),  # a Saturday
        (
            "2024-03-29",
            "full_refresh",
            "weekend_top_up",
            False,
        ),  # a Friday, not the month's last day
        ("2024-03-31", "weekend_top_up", "full_refresh.reload_orders", True),  # a Sunday, last day
    ],
)
def test_branching_follows_the_path_of_the_logical_date(
    day: str, followed: str, skipped_path: str, month_end: bool
) -> None:
    # when the run for ``day`` runs
    result = run_dag(fresh_dag("example_branching"), scheduled_run("example_branching", day))

    # expect the branch chose by weekday, the other path skipped, and the join ran
    assert result.value("choose_load_strategy") == followed
    assert result.state(skipped_path) == TaskState.SKIPPED
    if followed == "full_refresh":
        assert (
            result.value("full_refresh.rebuild_aggregates")
            == f"aggregates rebuilt (orders reloaded for {day})"
        )
        assert result.state("full_refresh.rebuild_aggregates") == TaskState.SUCCESS
    else:
        assert result.value("weekend_top_up") == f"late orders appended for {day}"
        assert result.state("full_refresh.rebuild_aggregates") == TaskState.SKIPPED
    assert result.state("publish") == TaskState.SUCCESS
    assert result.value("publish") == f"dashboard published after {followed}"
    # and the short-circuit let the month close through only on the month's last day
    assert result.state("is_month_end") == TaskState.SUCCESS
    assert result.state("close_month") == (TaskState.SUCCESS if month_end else TaskState.SKIPPED)


# --- example_taskflow_xcom -------------------------------------------------------------------------


def test_taskflow_pipeline_passes_values_through_xcom_to_the_templated_report() -> None:
    # when the run for a Wednesday runs with the default params (10 orders, EUR)
    result = run_dag(
        fresh_dag("example_taskflow_xcom"), scheduled_run("example_taskflow_xcom", "2024-03-06")
    )

    # expect the totals of 10 orders (quantities 1,2,3,… times prices 12.5, 7, 30.25, 4.75, …)
    assert len(result.value("extract")) == 10
    assert result.value("transform", key="order_count") == 10
    assert result.value("transform", key="revenue") == 252.25
    assert result.value("load") == "10 orders worth 252.25 EUR"
    # and the Bash task rendered ds, two XComs and a param into its last line of output
    assert result.value("report") == "2024-03-06: 10 orders, revenue 252.25 EUR"


def test_taskflow_params_come_from_the_run_conf_and_are_validated() -> None:
    from tradewind.runtime import InMemoryTaskClient, TaskInstanceInfo, run_task

    # given a run whose conf asks for 4 orders in GBP
    dag = fresh_dag("example_taskflow_xcom")
    run = scheduled_run(dag.dag_id, "2024-03-06")
    run.conf = {"sample_size": 4, "currency": "GBP"}

    # when it runs, expect the report to follow the conf
    result = run_dag(dag, run)
    assert result.value("report") == "2024-03-06: 4 orders, revenue 122.0 GBP"

    # and a conf breaking the schema (minimum=1) fails the task instead of running it
    run.conf = {"sample_size": 0}
    info = TaskInstanceInfo(dag_id=dag.dag_id, task_id="extract", run_id=run.run_id, max_tries=0)
    outcome = run_task(
        dag.get_task("extract"), dag=dag, run=run, ti=info, client=InMemoryTaskClient()
    )
    assert outcome.state == TaskState.FAILED
    assert "sample_size" in (outcome.error or "")


# --- example_params_trigger ------------------------------------------------------------------------


def _manual_run(conf: dict[str, Any]) -> Any:
    from tradewind.runtime import RunInfo

    return RunInfo(
        dag_id="example_params_trigger", run_id="manual__1", run_type="manual", conf=conf
    )


def test_manual_report_is_a_dry_run_by_default() -> None:
    # when triggered with only a date, without a logical date (as a manual trigger may be)
    result = run_dag(
        fresh_dag("example_params_trigger"), _manual_run({"report_date": "2024-03-06"})
    )

    # expect the report built with the default params, announced, and not sent
    report = result.value("build_report")
    assert report["region"] == "emea" and report["day"] == "2024-03-06"
    assert len(report["top"]) == 3 and len(set(report["top"])) == 3
    assert result.value("announce") == "report for emea, top 3"
    assert result.value("should_send") is False
    assert result.state("send_report") == TaskState.SKIPPED


def test_manual_report_is_sent_when_the_conf_says_so() -> None:
    conf = {
        "report_date": "2024-03-06",
        "region": "apac",
        "top_n": 2,
        "dry_run": False,
        "recipients": ["ops@example.com"],
    }
    result = run_dag(fresh_dag("example_params_trigger"), _manual_run(conf))

    assert result.state("send_report") == TaskState.SUCCESS
    assert result.value("send_report") == "sent apac top 2 for 2024-03-06 to ops@example.com"
    assert result.value("announce") == "report for apac, top 2"


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_serializes_to_the_same_document_on_every_parse(path: Path) -> None:
    # DAG processing stores a new DAG version only when the serialized hash changes, so a file
    # that parses differently each time would create a version per parse.
    from tradewind.serialization.serialized_dag import dag_hash, serialize_dag

    first, _ = load_example(path)
    second, _ = load_example(path)
    assert [dag_hash(serialize_dag(d)) for d in first] == [
        dag_hash(serialize_dag(d)) for d in second
    ]
