"""Jinja templating of task fields: environment, recursion, files, native mode, errors."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import pytest

from tradewind.errors import TaskSkipped, TemplateError, VariableNotFound
from tradewind.sdk.context import Context, build_context
from tradewind.sdk.params import Param
from tradewind.sdk.templating import (
    create_template_env,
    render_template_fields,
    render_template_string,
    render_value,
)

UTC = dt.UTC

# -- stand-ins ---------------------------------------------------------------------------------


@dataclass
class StubTI:
    dag_id: str = "sales"
    task_id: str = "load"
    run_id: str = "scheduled__2024-01-02T00:00:00+00:00"
    map_index: int = -1
    try_number: int = 1
    pushed: dict[str, Any] = field(default_factory=dict)

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value") -> Any:
        return {("extract", "return_value"): [1, 2, 3], ("extract", "rows"): 7}.get(
            (task_ids or "", key)
        )

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


@dataclass
class StubDagRun:
    run_id: str = "scheduled__2024-01-02T00:00:00+00:00"
    run_type: str = "scheduled"
    logical_date: dt.datetime | None = dt.datetime(2024, 1, 1, tzinfo=UTC)
    data_interval_start: dt.datetime | None = dt.datetime(2024, 1, 1, tzinfo=UTC)
    data_interval_end: dt.datetime | None = dt.datetime(2024, 1, 2, tzinfo=UTC)
    conf: dict[str, Any] = field(default_factory=dict)
    start_date: dt.datetime | None = None


class StubDag:
    dag_id = "sales"

    def __init__(self, env: Any = None) -> None:
        self.env = env
        self.calls = 0

    def get_template_env(self) -> Any:
        self.calls += 1
        return self.env


class StubTask:
    template_fields: ClassVar[tuple[str, ...]] = ("command", "env", "args")
    template_ext: ClassVar[tuple[str, ...]] = (".sh", ".sql")

    def __init__(self, command: Any = "", env: Any = None, args: Any = None, dag: Any = None):
        self.task_id = "load"
        self.command = command
        self.env = env
        self.args = args
        self.dag = dag
        self.inlets: list[Any] = []
        self.outlets: list[Any] = []
        self.map_index_template = None


class Nested:
    """An object inside a templated field that has template fields of its own."""

    template_fields = ("query",)

    def __init__(self, query: Any, untouched: str) -> None:
        self.query = query
        self.untouched = untouched


class XComRef:
    """Stands in for an XCom reference: resolves from the context."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id

    def resolve(self, context: Any) -> Any:
        return context["ti"].xcom_pull(task_ids=self.task_id)


class Point(NamedTuple):
    x: Any
    y: Any


VARIABLES = {"env": "prod", "cfg": '{"limit": 10}'}
CONNECTIONS = {"warehouse": {"host": "db.internal", "port": 5432}}


def get_variable(key: str) -> Any:
    if key not in VARIABLES:
        raise VariableNotFound(key)
    return VARIABLES[key]


def make_context(dag_run: StubDagRun | None = None, **params: Any) -> Context:
    return build_context(
        dag=StubDag(),
        task=StubTask(),
        ti=StubTI(),
        dag_run=dag_run or StubDagRun(),
        params=params or {"region": "eu", "limit": 5},
        get_variable=get_variable,
        get_connection=CONNECTIONS.__getitem__,
    )


@pytest.fixture
def ctx() -> Context:
    return make_context()


@pytest.fixture
def env() -> Any:
    return create_template_env()


# -- expressions against the context ----------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ ds }}", "2024-01-01"),
        ("{{ ds_nodash }}/{{ ts_nodash }}", "20240101/20240101T000000"),
        ("{{ ts }}", "2024-01-01T00:00:00+00:00"),
        ("{{ params.region }}-{{ params['limit'] }}", "eu-5"),
        ("{{ macros.ds_add(ds, 7) }}", "2024-01-08"),
        ("{{ macros.ds_format(ds, '%Y-%m-%d', '%d/%m') }}", "01/01"),
        ("{{ macros.timedelta(days=1).days }}", "1"),
        ("{{ var.value.env }}", "prod"),
        ("{{ var.value.get('missing', 'dflt') }}", "dflt"),
        ("{{ var.json.cfg.limit }}", "10"),
        ("{{ conn.warehouse.host }}:{{ conn.get('warehouse').port }}", "db.internal:5432"),
        ("{{ ti.xcom_pull(task_ids='extract') | sum }}", "6"),
        ("{{ task_instance.xcom_pull(task_ids='extract', key='rows') }}", "7"),
        ("{{ task_instance_key_str }}", "sales__load__20240101"),
        ("{{ run_id }}", "scheduled__2024-01-02T00:00:00+00:00"),
        ("{{ data_interval_end | ds }}", "2024-01-02"),
        ("{{ data_interval_end | ts_nodash_with_tz }}", "20240102T000000+0000"),
        ("{{ logical_date.add(days=1) | ds_nodash }}", "20240102"),
        ("{{ params | tojson }}", '{"limit": 5, "region": "eu"}'),
        ("{% for i in range(3) %}{{ i }}{% endfor %}", "012"),
        ("{% set x = [] %}{% do x.append(1) %}{{ x }}", "[1]"),
        ("{{ yesterday_ds }} {{ next_ds }}", "2023-12-31 2024-01-02"),
    ],
)
def test_templates_render_against_the_context(
    template: str, expected: str, ctx: Context, env: Any
) -> None:
    assert render_value(template, ctx, env) == expected


def test_xcom_push_from_a_template(ctx: Context, env: Any) -> None:
    render_value("{{ ti.xcom_push(key='k', value=ds) }}", ctx, env)
    assert ctx["ti"].pushed == {"k": "2024-01-01"}


def test_missing_variable_in_a_template_is_a_template_error(ctx: Context, env: Any) -> None:
    with pytest.raises(TemplateError, match="variable 'nope' not found") as info:
        render_value("{{ var.value.nope }}", ctx, env)
    assert isinstance(info.value.__cause__, VariableNotFound)


def test_strict_undefined_and_lenient_mode(ctx: Context) -> None:
    with pytest.raises(TemplateError, match="'foo' is undefined"):
        render_value("{{ foo }}", ctx, create_template_env())
    lenient = create_template_env(undefined_strict=False)
    assert render_value("[{{ foo }}]", ctx, lenient) == "[]"


def test_run_without_logical_date_fails_on_ds(env: Any) -> None:
    ctx = make_context(StubDagRun(logical_date=None, data_interval_start=None))
    with pytest.raises(TemplateError, match="'ds' is undefined"):
        render_value("{{ ds }}", ctx, env)


def test_sandbox_blocks_dunder_attributes_but_allows_single_underscore(
    ctx: Context, env: Any
) -> None:
    class Obj:
        _private = "ok"

    ctx = Context(ctx, obj=Obj())
    assert render_value("{{ obj._private }}", ctx, env) == "ok"
    with pytest.raises(TemplateError, match="unsafe"):
        render_value("{{ obj.__class__.__mro__ }}", ctx, env)


# -- structure -------------------------------------------------------------------------------


def test_nested_containers_render_recursively_and_keys_stay(ctx: Context, env: Any) -> None:
    value = {
        "{{ ds }}": ["{{ ds }}", ("{{ params.region }}", 3)],
        "set": {"{{ ds_nodash }}"},
        "point": Point("{{ ds }}", None),
        "plain": "no markup\n",
        "num": 1.5,
    }
    assert render_value(value, ctx, env) == {
        "{{ ds }}": ["2024-01-01", ("eu", 3)],
        "set": {"20240101"},
        "point": Point("2024-01-01", None),
        "plain": "no markup\n",
        "num": 1.5,
    }


def test_nested_objects_with_template_fields_render_in_place(ctx: Context, env: Any) -> None:
    nested = Nested("select * from t where day = '{{ ds }}'", "{{ ds }}")
    result = render_value([nested], ctx, env)
    assert result[0] is nested
    assert nested.query == "select * from t where day = '2024-01-01'"
    assert nested.untouched == "{{ ds }}"


def test_self_referencing_nested_objects_do_not_loop(ctx: Context, env: Any) -> None:
    nested = Nested("{{ ds }}", "")
    nested.query = [nested, "{{ ds }}"]
    render_value(nested, ctx, env)
    assert nested.query[1] == "2024-01-01"


def test_xcom_references_resolve_and_are_not_rendered(ctx: Context, env: Any) -> None:
    ctx["ti"].xcom_pull = lambda task_ids=None, key="return_value": "{{ ds }}"
    assert render_value({"rows": XComRef("extract")}, ctx, env) == {"rows": "{{ ds }}"}


def test_params_objects_are_left_alone(ctx: Context, env: Any) -> None:
    param = Param("{{ ds }}")
    assert render_value(param, ctx, env) is param


# -- template files ----------------------------------------------------------------------------


def test_template_file_by_extension_from_the_search_path(tmp_path: Path, ctx: Context) -> None:
    # given a SQL file in the second search-path folder
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (second / "report.sql").write_text("select * from sales where day = '{{ ds }}'")
    env = create_template_env(searchpath=[str(first), str(second)])
    task = StubTask(command="report.sql", env={"X": "{{ ds_nodash }}"})
    # when the task's fields are rendered
    render_template_fields(task, ctx, env)
    # expect the file's rendered contents, and the other fields rendered too
    assert task.command == "select * from sales where day = '2024-01-01'"
    assert task.env == {"X": "20240101"}


def test_extension_only_applies_to_the_task_template_ext(tmp_path: Path, ctx: Context) -> None:
    env = create_template_env(searchpath=[str(tmp_path)])
    assert render_value("notes.txt", ctx, env, template_ext=(".sql",)) == "notes.txt"


def test_missing_template_file_names_task_field_and_search_path(
    tmp_path: Path, ctx: Context
) -> None:
    env = create_template_env(searchpath=[str(tmp_path)])
    task = StubTask(command="missing.sh")
    with pytest.raises(TemplateError) as info:
        render_template_fields(task, ctx, env)
    assert info.value.task_id == "load"
    assert info.value.field == "command"
    assert "'missing.sh' not found" in str(info.value)
    assert str(tmp_path) in str(info.value)


def test_template_file_syntax_error_names_the_file(tmp_path: Path, ctx: Context) -> None:
    (tmp_path / "bad.sql").write_text("select {{ ds ")
    env = create_template_env(searchpath=[str(tmp_path)])
    with pytest.raises(TemplateError, match=r"syntax error at line 1 of bad\.sql"):
        render_value("bad.sql", ctx, env, template_ext=(".sql",))


# -- render_template_fields ------------------------------------------------------------------


def test_undefined_name_error_names_task_and_field(ctx: Context, env: Any) -> None:
    task = StubTask(command="echo {{ ds }}", env={"A": "{{ foo }}"})
    with pytest.raises(TemplateError) as info:
        render_template_fields(task, ctx, env)
    assert info.value.task_id == "load"
    assert info.value.field == "env"
    assert "'foo' is undefined" in str(info.value)
    assert "task 'load'" in str(info.value) and "field 'env'" in str(info.value)


def test_render_template_fields_skips_empty_values(ctx: Context, env: Any) -> None:
    task = StubTask(command="", env=None, args=["{{ ds }}"])
    render_template_fields(task, ctx, env)
    assert (task.command, task.env, task.args) == ("", None, ["2024-01-01"])


def test_listed_field_that_does_not_exist_is_reported(ctx: Context, env: Any) -> None:
    task = StubTask()
    del task.args
    with pytest.raises(TemplateError, match="'args' is listed in template_fields") as info:
        render_template_fields(task, ctx, env)
    assert info.value.field == "args"


def test_env_comes_from_the_dag_when_not_given(ctx: Context) -> None:
    dag = StubDag(create_template_env(user_defined_macros={"shout": str.upper}))
    task = StubTask(command="{{ shout(params.region) }}", dag=dag)
    render_template_fields(task, ctx)
    assert task.command == "EU"
    assert dag.calls == 1


def test_default_env_when_the_task_has_no_dag(ctx: Context) -> None:
    task = StubTask(command="{{ ds }}")
    render_template_fields(task, ctx)
    assert task.command == "2024-01-01"


def test_skip_raised_from_a_macro_passes_through(ctx: Context) -> None:
    def skip() -> None:
        raise TaskSkipped("nothing to do")

    env = create_template_env(user_defined_macros={"skip": skip})
    with pytest.raises(TaskSkipped):
        render_template_fields(StubTask(command="{{ skip() }}"), ctx, env)


# -- environment options ---------------------------------------------------------------------


def test_user_defined_filters(ctx: Context) -> None:
    env = create_template_env(user_defined_filters={"twice": lambda s: s * 2})
    assert render_value("{{ params.region | twice }}", ctx, env) == "eueu"


def test_native_mode_returns_python_objects(ctx: Context) -> None:
    env = create_template_env(native=True)
    assert render_value("{{ [1, 2] }}", ctx, env) == [1, 2]
    assert render_value("{{ params.limit }}", ctx, env) == 5
    assert render_value({"ids": "{{ ti.xcom_pull(task_ids='extract') }}"}, ctx, env) == {
        "ids": [1, 2, 3]
    }
    assert render_value("123", ctx, env) == "123"  # no markup: left as it is


def test_native_mode_stays_sandboxed(ctx: Context) -> None:
    env = create_template_env(native=True)
    with pytest.raises(TemplateError, match="unsafe"):
        render_value("{{ ''.__class__ }}", ctx, env)


def test_environments_are_cached_by_options() -> None:
    user_macros = {"a": 1}
    first = create_template_env(searchpath=("/x",), user_defined_macros=user_macros)
    assert create_template_env(searchpath=["/x"], user_defined_macros=user_macros) is first
    assert create_template_env(searchpath=("/x",), user_defined_macros={"a": 1}) is not first
    assert create_template_env(searchpath=("/x",), native=True) is not first


def test_render_template_string(ctx: Context) -> None:
    assert render_template_string("{{ ds }}!", ctx) == "2024-01-01!"
    native = create_template_env(native=True)
    assert render_template_string("{{ 1 + 1 }}", ctx, native) == 2


def test_native_mode_still_fails_on_undefined_names(ctx: Context) -> None:
    # native rendering would hand back an Undefined object; it must fail like string mode
    env = create_template_env(native=True)
    with pytest.raises(TemplateError, match="'foo' is undefined"):
        render_value("{{ foo }}", ctx, env)
    with pytest.raises(TemplateError, match="'foo' is undefined"):
        render_value("{{ [1, foo] }}", ctx, env)
    lenient = create_template_env(native=True, undefined_strict=False)
    assert render_value("{{ [1, foo] }}", ctx, lenient) == [1, None]
