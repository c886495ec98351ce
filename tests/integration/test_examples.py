"""The example DAGs shipped in ``tradewind/examples/dags``: they parse, validate, show the idioms
they are there to teach, and (run task by task through the in-process runtime) really work."""

from __future__ import annotations

import ast
import json
import runpy
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import tradewind.examples
from tradewind import DAG, Param, TaskGroup
from tradewind.sdk import _context_stack
from tradewind.sdk.mapping import ListOfDictsExpandInput, MappedOperator
from tradewind.sdk.trigger_rule import TriggerRule

EXAMPLES_DIR = Path(tradewind.examples.__file__).parent / "dags"
EXAMPLE_FILES = sorted(EXAMPLES_DIR.glob("*.py"))

EXPECTED_TASKS: dict[str, set[str]] = {
    "example_daily_sqlite_load": {"create_tables", "extract", "load", "summarize"},
    "example_partitioned_etl": {
        "start",
        "publish_manifest",
        *(f"{p}.{step}" for p in ("emea", "americas", "apac") for step in ("extract", "transform", "load")),
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


def test_partitioned_etl_has_one_task_group_per_configured_partition(examples: dict[str, Any]) -> None:
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
