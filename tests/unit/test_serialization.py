"""DAG serialization: round trips, the read-only views, hashes and errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import pytest
from dateutil.relativedelta import relativedelta

import tradewind.serialization as serialization
from tradewind import DAG, Label, Param, TaskGroup, TriggerRule, WeightRule, task, task_group
from tradewind.errors import DagDefinitionError, NotFound, SerializationError
from tradewind.operators.empty import EmptyOperator
from tradewind.operators.python import BranchPythonOperator, PythonOperator
from tradewind.sdk.assets import Asset
from tradewind.sdk.baseoperator import BaseOperator
from tradewind.serialization import (
    SERIALIZATION_VERSION,
    SerializedDAG,
    SerializedTask,
    SerializedTaskGroup,
    dag_hash,
    deserialize_dag,
    from_json,
    serialize_dag,
    to_json,
)
from tradewind.serialization.values import (
    CallableRef,
    MappedArgumentRef,
    MapXComRef,
    ParamRef,
    ReprValue,
    XComRef,
    ZipXComRef,
)
from tradewind.timetables import CronTriggerTimetable, create_timetable

START = datetime(2024, 1, 1, tzinfo=UTC)


def round_trip(dag: DAG) -> tuple[dict[str, Any], SerializedDAG]:
    """serialize -> JSON -> deserialize -> serialize again; every step must agree."""
    document = serialize_dag(dag)
    text = to_json(document)
    assert from_json(text) == document, "the document must survive JSON unchanged"
    view = deserialize_dag(from_json(text))
    again = serialize_dag(view)
    assert again == document
    assert to_json(again) == text
    assert dag_hash(again) == dag_hash(document)
    return document, view


def task_doc(document: dict[str, Any], task_id: str) -> dict[str, Any]:
    return next(t for t in document["dag"]["tasks"] if t["task_id"] == task_id)


class Echo(BaseOperator):
    """A classic operator with templated fields, for mapping and template-value tests."""

    template_fields: ClassVar[tuple[str, ...]] = ("message", "extra")
    template_ext: ClassVar[tuple[str, ...]] = (".txt",)
    ui_color = "#abcdef"

    def __init__(self, *, message: Any = "", extra: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message
        self.extra = extra

    def execute(self, context: Any) -> Any:
        return self.message


def double(x: int) -> int:
    return 2 * x


def noop(*args: Any, **kwargs: Any) -> None:
    return None


# -- public surface ----------------------------------------------------------------------------


def test_public_exports_are_pinned() -> None:
    assert sorted(serialization.__all__) == sorted(
        [
            "serialize_dag",
            "deserialize_dag",
            "dag_hash",
            "to_json",
            "from_json",
            "SerializedDAG",
            "SerializedTask",
            "SerializedTaskGroup",
            "SERIALIZATION_VERSION",
        ]
    )
    assert SERIALIZATION_VERSION == 1


# -- DAG-level fields --------------------------------------------------------------------------


def test_dag_fields_round_trip_and_read_back_typed() -> None:
    # given a DAG using most DAG-level settings
    with DAG(
        "settings",
        description="all the knobs",
        doc_md="# Settings",
        schedule="@daily",
        start_date=datetime(2024, 1, 1, 6, tzinfo=timezone(timedelta(hours=2))),
        end_date=datetime(2025, 1, 1),
        catchup=True,
        tags=["b", "a"],
        max_active_runs=3,
        max_active_tasks=7,
        max_consecutive_failed_dag_runs=4,
        dagrun_timeout=timedelta(hours=1),
        template_searchpath=["/opt/sql"],
        render_template_as_native_obj=True,
        is_paused_upon_creation=False,
        owner_links={"ops": "https://example.com/ops"},
        dag_display_name="All settings",
        on_failure_callback=noop,
        fail_fast=True,
    ) as dag:
        EmptyOperator(task_id="only")
    # when it round-trips
    document, view = round_trip(dag)
    body = document["dag"]
    # expect dates in UTC text, timeout in seconds, callbacks as flags
    assert body["start_date"] == "2024-01-01T04:00:00+00:00"
    assert body["end_date"] == "2025-01-01T00:00:00+00:00"
    assert body["timezone"] == "+02:00"
    assert body["dagrun_timeout"] == 3600.0
    assert body["has_on_failure_callback"] is True
    assert body["has_on_success_callback"] is False
    assert body["schedule"]["display"] == "0 0 * * *"
    # and the view exposes the live names with typed values
    assert view.dag_id == "settings"
    assert view.description == "all the knobs"
    assert view.doc_md == "# Settings"
    assert view.start_date == dag.start_date
    assert view.end_date == dag.end_date
    assert view.timezone.utcoffset(None) == timedelta(hours=2)
    assert view.catchup is True
    assert view.tags == ["a", "b"]
    assert (view.max_active_runs, view.max_active_tasks) == (3, 7)
    assert view.max_consecutive_failed_dag_runs == 4
    assert view.dagrun_timeout == timedelta(hours=1)
    assert view.template_searchpath == ["/opt/sql"]
    assert view.render_template_as_native_obj is True
    assert view.is_paused_upon_creation is False
    assert view.owner_links == {"ops": "https://example.com/ops"}
    assert view.dag_display_name == "All settings"
    assert view.has_on_failure_callback is True
    assert view.fail_fast is True
    assert view.timetable == create_timetable("@daily", timezone=dag.timezone)


@pytest.mark.parametrize(
    ("schedule", "display"),
    [
        (None, "None"),
        ("@once", "@once"),
        ("@continuous", "@continuous"),
        ("@hourly", "0 * * * *"),
        ("*/5 * * * 1-5", "*/5 * * * 1-5"),
        (timedelta(hours=6), "every 6:00:00"),
        (relativedelta(months=1), "every 1 month"),
        (Asset("s3://lake/orders"), "asset: s3://lake/orders"),
        ([Asset("s3://lake/a"), Asset("s3://lake/b")], "asset: s3://lake/a & s3://lake/b"),
        (Asset("s3://lake/a") | Asset("s3://lake/b"), "asset: s3://lake/a | s3://lake/b"),
        (CronTriggerTimetable("0 6 * * *", timezone="Europe/Amsterdam"), None),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_every_schedule_kind_round_trips_to_the_same_timetable(
    schedule: Any, display: str | None
) -> None:
    # given a DAG with this schedule
    with DAG("scheduled", schedule=schedule, start_date=START) as dag:
        EmptyOperator(task_id="t")
    # when it round-trips
    document, view = round_trip(dag)
    # expect the rebuilt timetable to equal the one built from the live schedule
    expected = create_timetable(schedule, timezone=dag.timezone)
    assert view.timetable == expected
    assert document["dag"]["schedule"]["timetable"] == expected.to_dict()
    if display is not None:
        assert view.schedule == display


def test_timezone_named_zone_is_kept() -> None:
    from zoneinfo import ZoneInfo

    # given a start date in a named zone
    with DAG(
        "tz",
        schedule="0 6 * * *",
        start_date=datetime(2024, 3, 1, tzinfo=ZoneInfo("Europe/Amsterdam")),
    ) as dag:
        EmptyOperator(task_id="t")
    # when it round-trips / expect the zone name, and UTC text for the date
    document, view = round_trip(dag)
    assert document["dag"]["timezone"] == "Europe/Amsterdam"
    assert document["dag"]["start_date"] == "2024-02-29T23:00:00+00:00"
    assert str(view.timezone) == "Europe/Amsterdam"


# -- TaskFlow and XCom -------------------------------------------------------------------------


def test_taskflow_xcom_references_and_multiple_outputs() -> None:
    # given TaskFlow tasks passing results, one with multiple outputs
    with DAG("taskflow", start_date=START) as dag:

        @task(multiple_outputs=True)
        def split() -> dict[str, int]:
            return {"a": 1, "b": 2}

        @task
        def combine(a: int, b: int, scale: int = 1) -> int:
            """Add them up."""
            return (a + b) * scale

        parts = split()
        combine(parts["a"], b=parts["b"], scale=3)
    # when it round-trips
    document, view = round_trip(dag)
    # expect references written structurally
    values = task_doc(document, "combine")["template_values"]
    assert values["op_args"] == [{"__xcomarg": {"task_id": "split", "key": "a"}}]
    assert values["op_kwargs"] == {"b": {"__xcomarg": {"task_id": "split", "key": "b"}}, "scale": 3}
    # and read back as references
    combine = view.get_task("combine")
    assert combine.template_values["op_args"] == [XComRef("split", "a")]
    assert combine.template_values["op_kwargs"]["b"] == XComRef("split", "b")
    assert combine.upstream_task_ids == {"split"}
    assert view.get_task("split").downstream_task_ids == {"combine"}
    assert view.get_task("split").multiple_outputs is True
    assert combine.multiple_outputs is False
    assert combine.operator_name == "@task"
    assert combine.operator_class == "tradewind.operators.python.DecoratedPythonOperator"
    assert combine.doc_md == "Add them up."
    assert combine.template_fields == ("templates_dict", "op_args", "op_kwargs")
    assert dict(combine.iter_template_values())["op_kwargs"]["scale"] == 3


def test_classic_operator_template_values_keep_raw_templates_and_types() -> None:
    # given classic operators with templated fields holding templates, files and typed values
    with DAG("classic", start_date=START) as dag:
        first = Echo(task_id="first", message="{{ ds }}", extra={"when": START, "ids": (1, 2)})
        second = Echo(task_id="second", message="hello.txt", extra=first.output)
        PythonOperator(task_id="py", python_callable=noop, op_kwargs={"fn": double})
        first >> second
    # when it round-trips
    document, view = round_trip(dag)
    # expect the raw (unrendered) values
    first_view = view.get_task("first")
    assert first_view.template_values["message"] == "{{ ds }}"
    assert first_view.template_values["extra"] == {"when": START, "ids": (1, 2)}
    assert first_view.template_ext == (".txt",)
    assert first_view.ui_color == "#abcdef"
    assert first_view.operator_class.endswith(".Echo")
    assert view.get_task("second").template_values["extra"] == XComRef("first")
    # and callables by dotted name
    fn = view.get_task("py").template_values["op_kwargs"]["fn"]
    assert fn == CallableRef(f"{double.__module__}.double")
    assert task_doc(document, "py")["template_values"]["op_kwargs"]["fn"]["__type"] == "callable"


def test_unserializable_template_value_is_shown_as_repr_without_address() -> None:
    # given a template field holding an arbitrary object (display only)
    class Opaque:
        pass

    with DAG("opaque", start_date=START) as dag:
        Echo(task_id="t", message=Opaque())
    # when it round-trips
    _document, view = round_trip(dag)
    # expect a repr, without the memory address that would change the hash every parse
    value = view.get_task("t").template_values["message"]
    assert isinstance(value, ReprValue)
    assert "Opaque object" in value.text
    assert " at 0x" not in value.text


# -- groups ------------------------------------------------------------------------------------


def test_nested_task_groups_keep_tree_labels_and_order() -> None:
    # given nested groups with display settings, one without prefixes
    with DAG("groups", start_date=START) as dag:
        start = EmptyOperator(task_id="start")
        with TaskGroup("outer", tooltip="outer box", ui_color="#111", ui_fgcolor="#eee") as outer:
            a = EmptyOperator(task_id="a")
            with TaskGroup("inner", group_display_name="Inner!") as inner:
                b = EmptyOperator(task_id="b")
                c = EmptyOperator(task_id="c")
            with TaskGroup("flat", prefix_group_id=False):
                d = EmptyOperator(task_id="d")
            a >> inner >> d
        start >> outer
    # when it round-trips
    _document, view = round_trip(dag)
    # expect the same tree, in definition order
    root = view.task_group
    assert isinstance(root, SerializedTaskGroup) and root.is_root
    assert list(root.children) == ["start", "outer"]
    outer_view = root.children["outer"]
    assert isinstance(outer_view, SerializedTaskGroup)
    assert list(outer_view.children) == ["outer.a", "outer.inner", "outer.flat"]
    assert (outer_view.tooltip, outer_view.ui_color, outer_view.ui_fgcolor) == (
        "outer box",
        "#111",
        "#eee",
    )
    inner_view = view.task_group_dict["outer.inner"]
    assert inner_view.parent_group is outer_view
    assert inner_view.label == "inner"
    assert inner_view.group_display_name == "Inner!"
    assert list(inner_view.children) == ["outer.inner.b", "outer.inner.c"]
    assert view.task_group_dict["outer.flat"].prefix_group_id is False
    # tasks know their group and label
    b_view = view.get_task(b.task_id)
    assert b_view.task_group is inner_view
    assert b_view.task_group_id == "outer.inner"
    assert b_view.label == "b"
    assert view.get_task(d.task_id).task_id == "outer.d"
    assert view.get_task(d.task_id).label == "outer.d"
    # and group roots/leaves match the live ones
    assert [t.task_id for t in inner_view.roots] == [t.task_id for t in inner.roots]
    assert [t.task_id for t in outer_view.leaves] == [t.task_id for t in outer.leaves]
    assert {t.task_id for t in outer_view.iter_tasks()} == {t.task_id for t in outer.iter_tasks()}
    assert b_view.upstream_task_ids == {"outer.a"}
    assert c.task_id in view.task_ids


# -- mapping -----------------------------------------------------------------------------------


def test_mapped_tasks_literal_upstream_cross_product_and_expand_kwargs() -> None:
    # given every flavour of mapping
    with DAG("mapping", start_date=START) as dag:

        @task
        def numbers() -> list[int]:
            return [1, 2, 3]

        @task
        def add(x: int, y: int = 0) -> int:
            return x + y

        add.expand(x=[1, 2, 3])  # literal
        add.partial(y=10).expand(x=numbers())  # upstream
        add.expand(x=[1, 2], y={"a": 1, "b": 2, "c": 3})  # cross product (dict items)
        add.expand_kwargs([{"x": 1}, {"x": 2, "y": 5}])  # list of dicts
        Echo.partial(task_id="echo", retries=2).expand(message=["a", "b"])  # classic operator
    # when it round-trips
    document, view = round_trip(dag)
    literal, upstream, cross, kwargs = (
        view.get_task(t) for t in ("add", "add__1", "add__2", "add__3")
    )
    # expect mapping info and literal lengths
    assert literal.is_mapped and literal.expand_input is not None
    assert literal.expand_input.kind == "dict_of_lists"
    assert literal.expand_input.value == {"x": [1, 2, 3]}
    assert literal.expand_input.literal_length() == 3
    assert literal.mapped_into == "op_kwargs"
    assert literal.partial_kwargs["python_callable"].name.endswith(".add")
    assert upstream.expand_input is not None
    assert upstream.expand_input.value == {"x": XComRef("numbers")}
    assert upstream.expand_input.literal_length() is None
    assert list(upstream.expand_input.iter_references()) == [("numbers", "return_value")]
    assert upstream.template_values["op_kwargs"] == {"y": 10}
    assert upstream.upstream_task_ids == {"numbers"}
    assert cross.expand_input is not None and cross.expand_input.literal_length() == 6
    assert kwargs.expand_input is not None
    assert kwargs.expand_input.kind == "list_of_dicts"
    assert kwargs.expand_input.value == [{"x": 1}, {"x": 2, "y": 5}]
    assert kwargs.expand_input.literal_length() == 2
    echo = view.get_task("echo")
    assert echo.is_mapped and echo.retries == 2
    assert echo.mapped_into is None
    assert echo.operator_class.endswith(".Echo")
    assert echo.template_fields == ("message", "extra")
    assert not view.get_task("numbers").is_mapped
    assert task_doc(document, "numbers").get("mapping") is None


def test_mapping_over_zip_and_map_references() -> None:
    # given expansions over transformed references
    with DAG("zipmap", start_date=START) as dag:

        @task
        def left() -> list[int]:
            return [1, 2]

        @task
        def right() -> list[int]:
            return [3, 4]

        @task
        def show(value: Any) -> None:
            print(value)

        lhs, rhs = left(), right()
        show.expand(value=lhs.zip(rhs, fillvalue=0))
        show.expand(value=lhs.map(double))
        show.expand(value=lhs.concat(rhs))
    # when it round-trips
    document, view = round_trip(dag)
    zipped = view.get_task("show").expand_input
    mapped = view.get_task("show__1").expand_input
    concat = view.get_task("show__2").expand_input
    # expect the transforms described with their inputs
    assert zipped is not None and zipped.value["value"] == ZipXComRef(
        (XComRef("left"), XComRef("right")), 0, True
    )
    assert mapped is not None
    assert mapped.value["value"] == MapXComRef(XComRef("left"), (f"{double.__module__}.double",))
    assert concat is not None
    assert sorted(concat.iter_references()) == [("left", "return_value"), ("right", "return_value")]
    assert (
        task_doc(document, "show__1")["mapping"]["expand_input"]["value"]["value"]["__xcomarg"][
            "type"
        ]
        == "map"
    )
    assert view.get_task("show").upstream_task_ids == {"left", "right"}


def test_mapped_task_group_expand_input_and_mapped_arguments() -> None:
    # given a mapped task group whose tasks use the group's argument
    with DAG("mapped_group", start_date=START) as dag:

        @task
        def files() -> list[str]:
            return ["a", "b"]

        @task
        def process(name: str) -> str:
            return name

        @task_group
        def per_file(name: str) -> None:
            process(name)

        per_file.expand(name=files())
    # when it round-trips
    _document, view = round_trip(dag)
    # expect the group's expansion and the argument reference in its task
    group = view.task_group_dict["per_file"]
    assert group.is_mapped
    assert group.expand_input is not None
    assert group.expand_input.value == {"name": XComRef("files")}
    inner = view.get_task("per_file.process")
    assert inner.template_values["op_args"] == [MappedArgumentRef("per_file", "name")]
    assert inner.task_group is group
    assert inner.upstream_task_ids == {"files"}


def test_dag_function_arguments_are_param_references() -> None:
    from tradewind import dag as dag_decorator

    @dag_decorator(start_date=START)
    def with_args(limit: int = 5) -> None:
        @task
        def use(n: int) -> int:
            return n

        use(limit)

    # given a @dag function passing its argument to a task
    built = with_args()
    # when it round-trips / expect a param reference and the param itself
    _, view = round_trip(built)
    assert view.get_task("use").template_values["op_args"] == [ParamRef("limit")]
    assert view.params["limit"].value == 5


# -- branching, labels, setup/teardown ---------------------------------------------------------


def test_branching_and_edge_labels() -> None:
    # given a branch whose edges carry labels
    with DAG("branching", start_date=START) as dag:

        @task.branch
        def choose() -> str:
            return "yes"

        pick = choose()
        classic = BranchPythonOperator(task_id="classic", python_callable=noop)
        yes = EmptyOperator(task_id="yes")
        no = EmptyOperator(task_id="no")
        join = EmptyOperator(task_id="join", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
        pick >> Label("yes please") >> yes >> join
        pick >> Label("no thanks") >> no >> join
        classic >> join
    # when it round-trips
    document, view = round_trip(dag)
    # expect labels on the edges and the branch operators named
    assert document["dag"]["edge_info"]["choose"] == {
        "yes": {"label": "yes please"},
        "no": {"label": "no thanks"},
    }
    assert view.get_edge_info("choose", "no") == {"label": "no thanks"}
    assert view.get_edge_info("yes", "join") == {}
    assert view.get_task("choose").operator_name == "@task.branch"
    assert view.get_task("classic").operator_name == "BranchPythonOperator"
    assert view.get_task("join").trigger_rule is TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS
    assert view.get_task("choose").downstream_task_ids == {"yes", "no"}
    assert view.get_task("choose").inherits_from_skipmixin
    assert view.get_task("classic").inherits_from_skipmixin
    assert not view.get_task("join").inherits_from_skipmixin


def test_setup_and_teardown_flags() -> None:
    # given a setup/teardown pair around work
    with DAG("setup_teardown", start_date=START) as dag:
        create = EmptyOperator(task_id="create")
        work = EmptyOperator(task_id="work")
        delete = EmptyOperator(task_id="delete")
        create >> work >> delete
        delete.as_teardown(setups=create, on_failure_fail_dagrun=True)
    # when it round-trips
    _, view = round_trip(dag)
    # expect the roles and the teardown trigger rule
    assert view.get_task("create").is_setup and not view.get_task("create").is_teardown
    teardown = view.get_task("delete")
    assert teardown.is_teardown and teardown.on_failure_fail_dagrun
    assert teardown.trigger_rule is TriggerRule.ALL_DONE_SETUP_SUCCESS
    assert teardown.upstream_task_ids == {"create", "work"}


# -- params ------------------------------------------------------------------------------------


def test_params_with_schemas_keep_order_and_required() -> None:
    # given DAG params with schemas, a required one, and task params
    with DAG(
        "params",
        start_date=START,
        params={
            "region": Param("eu", enum=["eu", "us"], description="where"),
            "limit": Param(10, type="integer", minimum=1),
            "token": Param(type="string"),
            "plain": [1, 2],
        },
    ) as dag:
        Echo(task_id="t", params={"local": Param(True, type="boolean")})
    # when it round-trips
    document, view = round_trip(dag)
    # expect params in declaration order, the required one without a value
    entries = document["dag"]["params"]
    assert [e["name"] for e in entries] == ["region", "limit", "token", "plain"]
    assert entries[2] == {"name": "token", "description": None, "schema": {"type": "string"}}
    assert entries[0] == {
        "name": "region",
        "value": "eu",
        "description": "where",
        "schema": {"enum": ["eu", "us"]},
    }
    assert list(view.params) == ["region", "limit", "token", "plain"]
    assert view.params["limit"].value == 10
    assert view.params["limit"].schema == {"type": "integer", "minimum": 1}
    assert not view.params["token"].has_value
    assert view.params_schema == dag.params.to_schema()
    assert view.params_schema["required"] == ["token"]
    assert view.get_task("t").params["local"].value is True
    assert view.get_task("t").params["local"].schema == {"type": "boolean"}


# -- task arguments ----------------------------------------------------------------------------


def test_only_non_default_task_arguments_are_written_in_plain_forms() -> None:
    # given a task with many non-default settings and one with none
    with DAG("args", start_date=START) as dag:
        EmptyOperator(task_id="plain")
        Echo(
            task_id="busy",
            owner="data",
            email=["a@example.com"],
            retries=3,
            retry_delay=timedelta(minutes=2),
            retry_exponential_backoff=True,
            max_retry_delay=timedelta(hours=1),
            execution_timeout=timedelta(seconds=90),
            trigger_rule="all_done",
            depends_on_past=True,
            pool="small",
            pool_slots=2,
            queue="gpu",
            priority_weight=5,
            weight_rule="absolute",
            max_active_tis_per_dag=2,
            executor_config={"cpu": 2},
            do_xcom_push=False,
            on_failure_callback=noop,
            on_retry_callback=[noop],
            pre_execute=noop,
            start_date=datetime(2024, 6, 1),
            task_display_name="Busy task",
            outlets=[Asset("s3://lake/out")],
        )
    # when it round-trips
    document, view = round_trip(dag)
    # expect nothing written for the plain task, plain forms for the busy one
    assert task_doc(document, "plain")["args"] == {}
    args = task_doc(document, "busy")["args"]
    assert args["retry_delay"] == 120.0
    assert args["execution_timeout"] == 90.0
    assert args["retry_exponential_backoff"] == 2.0
    assert args["trigger_rule"] == "all_done"
    assert args["weight_rule"] == "absolute"
    assert args["start_date"] == "2024-06-01T00:00:00+00:00"
    assert args["has_on_failure_callback"] is True
    assert args["has_on_retry_callback"] is True
    assert args["has_pre_execute"] is True
    assert "has_on_success_callback" not in args
    assert "end_date" not in args and "ignore_first_depends_on_past" not in args
    # and the view reads typed values with defaults for the rest
    busy = view.get_task("busy")
    assert busy.owner == "data" and busy.email == ["a@example.com"]
    assert busy.retries == 3
    assert busy.retry_delay == timedelta(minutes=2)
    assert busy.max_retry_delay == timedelta(hours=1)
    assert busy.execution_timeout == timedelta(seconds=90)
    assert busy.trigger_rule is TriggerRule.ALL_DONE
    assert busy.weight_rule is WeightRule.ABSOLUTE
    assert busy.depends_on_past is True
    assert (busy.pool, busy.pool_slots, busy.queue) == ("small", 2, "gpu")
    assert busy.max_active_tis_per_dag == 2
    assert busy.executor_config == {"cpu": 2}
    assert busy.do_xcom_push is False
    assert busy.has_on_failure_callback and busy.has_on_retry_callback and busy.has_pre_execute
    assert not busy.has_on_success_callback
    assert busy.start_date == datetime(2024, 6, 1, tzinfo=UTC)
    assert busy.task_display_name == "Busy task"
    assert busy.outlets == [Asset("s3://lake/out")]
    plain = view.get_task("plain")
    assert plain.retries == 0 and plain.retry_delay == timedelta(minutes=5)
    assert plain.pool == "default_pool" and plain.trigger_rule is TriggerRule.ALL_SUCCESS
    assert plain.start_date == START  # the DAG's, as on the live task
    assert plain.executor_config == {} and list(plain.outlets) == []


def test_is_empty_only_for_empty_operators_that_would_do_nothing() -> None:
    # given empty operators with and without things that would happen when run
    with DAG("empties", start_date=START) as dag:
        EmptyOperator(task_id="empty")
        EmptyOperator(task_id="with_retries", retries=2)
        EmptyOperator(task_id="with_callback", on_success_callback=noop)
        EmptyOperator(task_id="with_execute_callback", on_execute_callback=noop)
        EmptyOperator(task_id="with_outlet", outlets=[Asset("s3://lake/x")])
        Echo(task_id="echo")
    # when it round-trips
    _, view = round_trip(dag)
    # expect only the empty ones that do nothing to be skippable
    flags = {t.task_id: t.is_empty for t in view.tasks}
    assert flags == {
        "empty": True,
        "with_retries": True,
        "with_callback": False,
        "with_execute_callback": False,
        "with_outlet": False,
        "echo": False,
    }


# -- priority weights --------------------------------------------------------------------------


def _diamond(rule: str, weights: dict[str, int]) -> DAG:
    with DAG(f"diamond_{rule}", start_date=START) as dag:
        a, b, c, d = (
            EmptyOperator(task_id=n, priority_weight=weights[n], weight_rule=rule) for n in "abcd"
        )
        a >> [b, c]
        [b, c] >> d
    return dag


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        # every descendant counted once, even d which two paths reach
        ("downstream", {"a": 1 + 2 + 3 + 4, "b": 2 + 4, "c": 3 + 4, "d": 4}),
        ("upstream", {"a": 1, "b": 2 + 1, "c": 3 + 1, "d": 4 + 2 + 3 + 1}),
        ("absolute", {"a": 1, "b": 2, "c": 3, "d": 4}),
    ],
)
def test_priority_weight_totals_follow_the_weight_rule(rule: str, expected: dict[str, int]) -> None:
    # given a diamond with distinct weights
    dag = _diamond(rule, {"a": 1, "b": 2, "c": 3, "d": 4})
    # when it round-trips
    _, view = round_trip(dag)
    # expect each task's total to follow its rule
    assert {t.task_id: t.priority_weight_total for t in view.tasks} == expected


def test_priority_weight_totals_with_mixed_rules_negative_weights_and_clamping() -> None:
    # given mixed rules, a negative weight and weights that overflow int32
    with DAG("weights", start_date=START) as dag:
        a = EmptyOperator(task_id="a", priority_weight=-7)
        b = EmptyOperator(task_id="b", priority_weight=2**31 - 1, weight_rule="upstream")
        c = EmptyOperator(task_id="c", priority_weight=100, weight_rule="absolute")
        d = EmptyOperator(task_id="d", priority_weight=2**31 - 1)
        e = EmptyOperator(task_id="e", priority_weight=-(2**31), weight_rule="upstream")
        a >> b >> c
        d >> b
        a >> e
    # when it round-trips
    _, view = round_trip(dag)
    totals = {t.task_id: t.priority_weight_total for t in view.tasks}
    # expect the sums, clamped to the int32 range
    assert totals["a"] == -7 + (2**31 - 1) + 100 + (-(2**31))
    assert totals["b"] == 2**31 - 1  # (2**31 - 1) - 7 + (2**31 - 1) overflows: clamped
    assert totals["c"] == 100
    assert totals["d"] == 2**31 - 1  # clamped
    assert totals["e"] == -(2**31)  # -(2**31) - 7 underflows: clamped


def test_priority_weight_totals_match_a_brute_force_sum_on_random_dags() -> None:
    import random

    rng = random.Random(20240101)
    for round_no in range(5):
        # given a random DAG with random weights and rules
        with DAG(f"random_{round_no}", start_date=START) as dag:
            tasks = [
                EmptyOperator(
                    task_id=f"t{i}",
                    priority_weight=rng.randint(-50, 10**6),
                    weight_rule=rng.choice(["downstream", "upstream", "absolute"]),
                )
                for i in range(60)
            ]
            for i, current in enumerate(tasks[1:], start=1):
                for parent in rng.sample(tasks[:i], rng.randint(0, min(i, 3))):
                    parent >> current
        # when serialized
        document = serialize_dag(dag)
        # expect each total to be the weight plus the distinct relatives' weights by its rule
        for live in tasks:
            if live.weight_rule == "absolute":
                relatives: set[str] = set()
            else:
                relatives = live.get_flat_relative_ids(upstream=live.weight_rule == "upstream")
            expected = live.priority_weight + sum(
                dag.get_task(t).priority_weight for t in relatives
            )
            assert task_doc(document, live.task_id)["priority_weight_total"] == expected


def test_ten_thousand_task_chain_round_trips_without_recursion_error() -> None:
    # given a 10,000-task chain (deeper than the recursion limit)
    with DAG("long_chain", start_date=START) as dag:
        previous = None
        for i in range(10_000):
            current = EmptyOperator(task_id=f"t{i}")
            if previous is not None:
                previous >> current
            previous = current
    # when it round-trips
    _, view = round_trip(dag)
    # expect the totals of a downstream chain and a full topological order
    assert view.get_task("t0").priority_weight_total == 10_000
    assert view.get_task("t9999").priority_weight_total == 1
    order = view.topological_sort()
    assert [t.task_id for t in order[:3]] == ["t0", "t1", "t2"]
    assert len(order) == 10_000
    assert view.get_task("t5000").get_flat_relative_ids(upstream=True) == {
        f"t{i}" for i in range(5000)
    }


# -- the views ---------------------------------------------------------------------------------


def test_view_graph_helpers_match_the_live_dag() -> None:
    # given a small graph
    with DAG("graph", start_date=START) as dag:
        a, b, c, d = (EmptyOperator(task_id=n) for n in "abcd")
        a >> [c, b]
        c >> d
    # when read back
    _, view = round_trip(dag)
    # expect the same shape through the live attribute names
    assert view.task_ids == dag.task_ids
    assert [t.task_id for t in view.roots] == [t.task_id for t in dag.roots]
    assert [t.task_id for t in view.leaves] == [t.task_id for t in dag.leaves]
    assert [t.task_id for t in view.topological_sort()] == [
        t.task_id for t in dag.topological_sort()
    ]
    assert [t.task_id for t in view.get_task("a").downstream_list] == ["b", "c"]
    assert view.get_task("a").get_flat_relative_ids() == {"b", "c", "d"}
    assert isinstance(view.get_task("a"), SerializedTask)
    assert view.has_task("d") and not view.has_task("zz")
    assert view.owner == "tradewind"
    with pytest.raises(NotFound):
        view.get_task("zz")


def test_unknown_version_raises_a_clear_error() -> None:
    # given a document from a future format
    with DAG("versioned", start_date=START) as dag:
        EmptyOperator(task_id="t")
    document = serialize_dag(dag)
    document["__version"] = 99
    # when read / expect an error naming both versions and the DAG
    with pytest.raises(SerializationError) as info:
        deserialize_dag(document)
    assert "99" in str(info.value) and "version 1" in str(info.value)
    assert info.value.dag_id == "versioned"


def test_malformed_documents_raise_serialization_errors() -> None:
    with pytest.raises(SerializationError):
        deserialize_dag({"__version": 1, "dag": {"dag_id": "broken"}})
    with pytest.raises(SerializationError):
        deserialize_dag({"nothing": True})
    with pytest.raises(SerializationError):
        from_json("{not json")
    with pytest.raises(SerializationError):
        from_json("[1, 2]")


# -- errors ------------------------------------------------------------------------------------


class Custom:
    def __repr__(self) -> str:
        return "Custom()"


def test_error_names_dag_and_param_for_unserializable_dag_param() -> None:
    # given a DAG param holding a set of custom objects
    with DAG("bad_params", start_date=START, params={"things": {Custom(), Custom()}}) as dag:
        EmptyOperator(task_id="t")
    # when serialized / expect an error naming the DAG and the param
    with pytest.raises(SerializationError) as info:
        serialize_dag(dag)
    assert info.value.dag_id == "bad_params"
    assert info.value.task_id is None
    assert info.value.argument == "params['things']"
    assert "'bad_params'" in str(info.value) and "things" in str(info.value)


def test_error_names_dag_task_and_argument() -> None:
    # given a task param that is not JSON
    with DAG("bad_task", start_date=START) as dag:
        Echo(task_id="t", params={"when": {Custom()}})
    # when serialized / expect the DAG, the task and the argument named
    with pytest.raises(SerializationError) as info:
        serialize_dag(dag)
    assert (info.value.dag_id, info.value.task_id, info.value.argument) == (
        "bad_task",
        "t",
        "params['when']",
    )


def test_error_for_object_in_doc_md() -> None:
    # given a task whose doc_md is not text
    with DAG("bad_doc", start_date=START) as dag:
        Echo(task_id="t", doc_md=Custom())
    # when serialized / expect an error naming the argument
    with pytest.raises(SerializationError) as info:
        serialize_dag(dag)
    assert (info.value.dag_id, info.value.task_id, info.value.argument) == (
        "bad_doc",
        "t",
        "doc_md",
    )
    # and the same for the DAG's own doc_md
    with DAG("bad_dag_doc", start_date=START, doc_md=Custom()) as dag2:
        EmptyOperator(task_id="t")
    with pytest.raises(SerializationError) as info2:
        serialize_dag(dag2)
    assert (info2.value.dag_id, info2.value.task_id, info2.value.argument) == (
        "bad_dag_doc",
        None,
        "doc_md",
    )


def test_error_path_points_inside_executor_config() -> None:
    # given an executor_config the executor could not read
    with DAG("bad_config", start_date=START) as dag:
        Echo(task_id="t", executor_config={"pod": {"spec": [1, Custom()]}})
    # when serialized / expect the path to the bad part
    with pytest.raises(SerializationError) as info:
        serialize_dag(dag)
    assert info.value.argument == "executor_config['pod']['spec'][1]"
    assert info.value.task_id == "t"
    assert "Custom" in str(info.value)


def test_cycle_is_a_definition_error() -> None:
    # given a DAG with a cycle (not validated yet)
    dag = DAG("cyclic", start_date=START, auto_register=False)
    a = EmptyOperator(task_id="a", dag=dag)
    b = EmptyOperator(task_id="b", dag=dag)
    a >> b
    b >> a
    # when serialized / expect a definition error, not an endless loop
    with pytest.raises(DagDefinitionError):
        serialize_dag(dag)


# -- hash --------------------------------------------------------------------------------------


def test_hash_ignores_fileloc_but_not_relative_fileloc_or_content() -> None:
    # given two parses of the same DAG from different checkouts
    def build(fileloc: str, relative: str | None = "etl.py", retries: int = 0) -> dict[str, Any]:
        with DAG("hashing", start_date=START) as dag:
            EmptyOperator(task_id="t", retries=retries)
        dag.fileloc = fileloc
        dag.relative_fileloc = relative
        return serialize_dag(dag)

    first = build("/home/a/dags/etl.py")
    second = build("/srv/b/dags/etl.py")
    # expect the same hash; a moved file or a changed setting gives another
    assert dag_hash(first) == dag_hash(second)
    assert len(dag_hash(first)) == 64
    assert dag_hash(build("/x/etl.py", relative="sub/etl.py")) != dag_hash(first)
    assert dag_hash(build("/x/etl.py", retries=1)) != dag_hash(first)


_HASH_SCRIPT = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone
    from tradewind import DAG, task
    from tradewind.operators.empty import EmptyOperator
    from tradewind.serialization import dag_hash, serialize_dag

    with DAG("seeded", start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
             params={"p": 1}, tags={"x", "y", "z", "alpha", "beta"}) as dag:
        @task
        def work(values, mapping):
            return values

        class Thing:
            pass

        out = work({"apple", "banana", "cherry", "damson"}, {frozenset({"k1", "k2"}): Thing()})
        out >> EmptyOperator(task_id="end")
    document = serialize_dag(dag)
    document["dag"]["fileloc"] = sys.argv[1]
    print(dag_hash(document))
    """
)


def test_hash_is_stable_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    # given the same DAG (with sets of strings, which iterate in seed-dependent order) built in
    # processes with different hash seeds and file locations
    script = tmp_path / "hash_dag.py"
    script.write_text(_HASH_SCRIPT)
    hashes = set()
    for seed, location in (("1", "/a/x.py"), ("2", "/b/x.py"), ("12345", "/c/x.py")):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, str(script), location],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        hashes.add(result.stdout.strip())
    # expect one hash
    assert len(hashes) == 1, hashes
