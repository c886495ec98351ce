"""TaskFlow (@task, @dag, @task_group) and dynamic task mapping, at definition time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tradewind import DAG, BaseOperator, TaskGroup, dag, task, task_group
from tradewind.errors import DagDefinitionError, InvalidArgumentError, MappingError
from tradewind.sdk.decorators import infer_multiple_outputs
from tradewind.sdk.mapping import (
    DictOfListsExpandInput,
    ListOfDictsExpandInput,
    MappedOperator,
    check_map_length,
    kwargs_for_index,
    map_length,
)
from tradewind.sdk.xcom_arg import PlainXComArg


class Op(BaseOperator):
    template_fields = ("x",)

    def __init__(self, *, x: Any = None, y: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.x = x
        self.y = y


def test_calling_a_task_returns_a_reference_and_wires_dependencies() -> None:
    @task
    def extract() -> list[int]:
        return [1, 2]

    @task(retries=2)
    def load(values: list[int], factor: int = 1) -> int:
        return sum(values) * factor

    with DAG("tf") as d:
        ref = extract()
        out = load(ref, factor=3)
    assert isinstance(ref, PlainXComArg)
    loader = d.get_task("load")
    assert loader.upstream_task_ids == {"extract"}
    assert loader.retries == 2
    assert loader.op_args == [ref]  # type: ignore[attr-defined]
    assert loader.op_kwargs == {"factor": 3}  # type: ignore[attr-defined]
    assert out.operator is loader


def test_repeated_calls_get_unique_ids_and_override_changes_arguments() -> None:
    @task
    def step() -> None: ...

    with DAG("ids") as d:
        step()
        step()
        step.override(task_id="custom", pool="p")()
    assert d.task_ids == ["step", "step__1", "custom"]
    assert d.get_task("custom").pool == "p"


def test_task_arguments_are_checked_against_the_function_signature() -> None:
    @task
    def f(a: int) -> None: ...

    with pytest.raises(InvalidArgumentError, match="f\\(\\)"), DAG("sig"):
        f(1, 2)


def test_context_parameters_must_default_to_none() -> None:
    with pytest.raises(InvalidArgumentError, match="'ds'"):

        @task
        def f(ds: str = "x") -> None: ...

    @task
    def g(x: int, ti: Any = None, params: Any = None) -> None: ...

    with DAG("ctx") as d:
        g(1)
    assert d.has_task("g")


def test_multiple_outputs_are_inferred_from_a_mapping_return_type() -> None:
    def a() -> dict[str, int]:
        return {}

    def b() -> list[int]:
        return []

    assert infer_multiple_outputs(a) is True
    assert infer_multiple_outputs(b) is False

    @task
    def pair() -> dict[str, int]:
        return {"a": 1}

    with DAG("mo") as d:
        p = pair()
        Op(task_id="use", x=p["a"])
    assert d.get_task("pair").multiple_outputs is True
    assert d.get_task("use").upstream_task_ids == {"pair"}


def test_dag_decorator_builds_the_dag_with_function_arguments_as_params() -> None:
    @dag(schedule="@daily", start_date=datetime(2024, 1, 1), tags=["x"])
    def pipeline(limit: int = 10) -> None:
        """Pipeline docs."""

        @task
        def use(n: int) -> int:
            return n

        use(limit)

    d = pipeline()
    assert d.dag_id == "pipeline"
    assert d.params.dump() == {"limit": 10}
    assert d.doc_md == "Pipeline docs."
    assert d.tags == ["x"]
    assert d.has_task("use")
    assert d.start_date == datetime(2024, 1, 1, tzinfo=UTC)


def test_task_group_decorator_prefixes_ids_and_returns_the_result() -> None:
    @task
    def one() -> int:
        return 1

    @task
    def two(x: int) -> int:
        return x

    @task_group
    def grp() -> Any:
        return two(one())

    with DAG("tg") as d:
        r1 = grp()
        r2 = grp()
    assert d.task_ids == ["grp.one", "grp.two", "grp__1.one", "grp__1.two"]
    assert isinstance(r1, PlainXComArg) and r1.operator.task_id == "grp.two"
    assert r2.operator.task_id == "grp__1.two"


def test_partial_expand_builds_a_mapped_operator() -> None:
    with DAG("map") as d:
        m = Op.partial(task_id="m", y=1, retries=4).expand(x=[1, 2, 3])
    assert isinstance(m, MappedOperator)
    assert d.get_task("m") is m
    assert m.retries == 4
    assert m.partial_kwargs == {"y": 1}
    assert isinstance(m.expand_input, DictOfListsExpandInput)
    assert m.expand_input.literal_length() == 3
    op = m.unmap({"x": 2})
    assert (op.task_id, op.x, op.y, op.retries) == ("m", 2, 1, 4)  # type: ignore[attr-defined]


def test_mapping_over_an_upstream_result_adds_the_dependency() -> None:
    @task
    def numbers() -> list[int]:
        return [1, 2]

    @task
    def double(n: int, factor: int) -> int:
        return n * factor

    with DAG("map_up") as d:
        nums = numbers()
        doubled = double.partial(factor=2).expand(n=nums)
    mapped = d.get_task("double")
    assert mapped.is_mapped
    assert mapped.upstream_task_ids == {"numbers"}
    assert doubled.operator is mapped
    assert mapped.expand_input.literal_length() is None  # type: ignore[attr-defined]


def test_cross_product_order_has_the_last_argument_varying_fastest() -> None:
    values = {"a": [1, 2], "b": ["x", "y", "z"]}
    assert map_length(values) == 6
    got = [kwargs_for_index(values, i) for i in range(6)]
    assert got[0] == {"a": 1, "b": "x"}
    assert got[1] == {"a": 1, "b": "y"}
    assert got[3] == {"a": 2, "b": "x"}
    assert got[5] == {"a": 2, "b": "z"}


def test_expand_kwargs_and_dict_inputs() -> None:
    with DAG("ek") as d:
        m = Op.partial(task_id="m").expand_kwargs([{"x": 1, "y": 2}, {"x": 3, "y": 4}])
        n = Op.partial(task_id="n").expand(x={"k1": "v1", "k2": "v2"})
    assert isinstance(m.expand_input, ListOfDictsExpandInput)
    assert m.expand_input.literal_length() == 2
    ctx: dict[str, Any] = {}
    assert n.expand_input.resolve_for_index(ctx, 1) == {"x": ("k2", "v2")}
    assert d.has_task("n")


def test_invalid_mapping_is_reported_with_the_other_problems() -> None:
    with pytest.raises(DagDefinitionError) as err, DAG("badmap"):
        Op.partial(task_id="a", x=1).expand(x=[1])
        Op.partial(task_id="b").expand(nope=[1])
        Op.partial(task_id="c").expand(x=5)
        Op.partial(task_id="d").expand(retries=[1, 2])
    msgs = " | ".join(p.message for p in err.value.problems)
    assert "'a': argument 'x' is given to both partial() and expand()" in msgs
    assert "'b': cannot map over unknown argument 'nope'" in msgs
    assert "'c': argument 'x' must be a list" in msgs
    assert "'d': argument 'retries' cannot be mapped" in msgs


def test_map_length_limit_is_clear() -> None:
    with pytest.raises(MappingError, match="maximum map length 3"):
        check_map_length(4, "t", max_length=3)
    with pytest.raises(DagDefinitionError, match="maximum map length"), DAG("too_long"):
        Op.partial(task_id="big").expand(x=list(range(2000)))


def test_zip_and_map_references() -> None:
    @task
    def a() -> list[int]:
        return [1, 2]

    @task
    def b() -> list[str]:
        return ["x", "y"]

    @task
    def use(pair: Any) -> None: ...

    with DAG("zip") as d:
        use.expand(pair=a().zip(b()))
        use.override(task_id="use_map").expand(pair=a().map(lambda v: v + 1))
    assert d.get_task("use").upstream_task_ids == {"a", "b"}
    assert d.get_task("use_map").upstream_task_ids == {"a__1"}


def test_mapped_task_group_marks_its_tasks_and_wires_the_input() -> None:
    @task
    def sources() -> list[str]:
        return ["s1", "s2"]

    @task
    def fetch(src: str) -> str:
        return src

    @task
    def store(data: str) -> None: ...

    @task_group
    def per_source(src: str) -> None:
        store(fetch(src))

    with DAG("mtg") as d:
        per_source.expand(src=sources())
    group = d.task_group.find_group("per_source")
    assert isinstance(group, TaskGroup) and group.is_mapped
    assert d.get_task("per_source.fetch").upstream_task_ids == {"sources"}
    assert d.get_task("per_source.store").upstream_task_ids == {"per_source.fetch"}


def test_iterating_a_reference_at_definition_time_explains_what_to_do() -> None:
    @task
    def items() -> list[int]:
        return []

    with DAG("iter"):
        ref = items()
        with pytest.raises(TypeError, match="expand"):
            list(ref)


def test_unknown_task_decorator_lists_the_known_ones() -> None:
    with pytest.raises(AttributeError, match="available: bash, branch"):
        task.nope
