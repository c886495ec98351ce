"""Defining DAGs: the three styles, default_args, dependencies, groups, labels and validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tradewind import (
    DAG,
    BaseOperator,
    Label,
    TaskGroup,
    TriggerRule,
    chain,
    chain_linear,
    cross_downstream,
)
from tradewind.errors import DagDefinitionError, InvalidArgumentError, NotFound
from tradewind.sdk import _context_stack


class Op(BaseOperator):
    template_fields = ("x",)

    def __init__(self, *, x: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.x = x

    def execute(self, context: Any) -> Any:
        return self.x


START = datetime(2024, 1, 1, tzinfo=UTC)


def test_with_block_plain_object_and_explicit_dag_are_equivalent() -> None:
    with DAG("a", start_date=START) as d1:
        Op(task_id="t1") >> Op(task_id="t2")
    d2 = DAG("b", start_date=START)
    t1 = Op(task_id="t1", dag=d2)
    t2 = Op(task_id="t2", dag=d2)
    t1.set_downstream(t2)
    for d in (d1, d2):
        assert d.task_ids == ["t1", "t2"]
        assert d.get_task("t2").upstream_task_ids == {"t1"}
        assert [t.task_id for t in d.roots] == ["t1"]
        assert [t.task_id for t in d.leaves] == ["t2"]


def test_naive_start_date_is_utc_and_timezone_follows_aware_start() -> None:
    d = DAG("naive", start_date=datetime(2024, 1, 1))
    assert d.start_date == START
    from zoneinfo import ZoneInfo

    ams = ZoneInfo("Europe/Amsterdam")
    d2 = DAG("aware", start_date=datetime(2024, 1, 1, tzinfo=ams))
    assert d2.timezone is ams


def test_defaults_match_the_documented_ones() -> None:
    d = DAG("defaults")
    assert d.schedule is None
    assert d.catchup is False
    with d:
        t = Op(task_id="t")
    assert t.retries == 0
    assert t.retry_delay == timedelta(seconds=300)
    assert t.trigger_rule == TriggerRule.ALL_SUCCESS
    assert t.pool == "default_pool"
    assert t.pool_slots == 1
    assert t.priority_weight == 1
    assert t.owner == "tradewind"


def test_default_args_fill_missing_arguments_with_inner_groups_winning() -> None:
    with DAG("da", default_args={"retries": 3, "x": 5, "bash_command": "ignored"}) as d:
        a = Op(task_id="a")
        with TaskGroup("g", default_args={"retries": 1}):
            b = Op(task_id="b")
            with TaskGroup("h", default_args={"x": 9}):
                c = Op(task_id="c", retries=7)
    assert (a.retries, a.x) == (3, 5)
    assert (b.retries, b.x) == (1, 5)
    assert (c.retries, c.x) == (7, 9)
    assert c.task_id == "g.h.c"
    assert d.has_task("g.h.c")


def test_unknown_argument_is_an_error_naming_it_and_suggesting_a_fix() -> None:
    with pytest.raises(InvalidArgumentError) as err, DAG("u"):
        Op(task_id="t", retires=3)
    assert "'retires'" in str(err.value)
    assert "did you mean 'retries'" in str(err.value)
    assert "Op(task_id='t')" in str(err.value)


def test_positional_arguments_are_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="keyword arguments only"):
        Op("t")  # type: ignore[misc]


def test_retry_settings_are_normalised() -> None:
    t = Op(task_id="t", retry_delay=30, retry_exponential_backoff=True, execution_timeout=5.5)
    assert t.retry_delay == timedelta(seconds=30)
    assert t.retry_exponential_backoff == 2.0
    assert t.execution_timeout == timedelta(seconds=5.5)
    w = Op(task_id="w", wait_for_downstream=True)
    assert w.depends_on_past is True


def test_dependency_operators_with_lists_and_return_values() -> None:
    with DAG("deps") as d:
        a, b, c, e = (Op(task_id=n) for n in "abce")
        result = a >> [b, c]
        [b, c] >> e
    assert result == [b, c]
    assert d.get_task("e").upstream_task_ids == {"b", "c"}
    assert a.downstream_task_ids == {"b", "c"}
    with DAG("deps2") as d2:
        x, y = Op(task_id="x"), Op(task_id="y")
        y << x
    assert d2.get_task("y").upstream_task_ids == {"x"}


def test_chain_cross_downstream_and_chain_linear() -> None:
    with DAG("chains") as d:
        a, b, c, e, f, g = (Op(task_id=n) for n in "abcefg")
        chain(a, [b, c], [e, f], g)
    assert d.get_task("e").upstream_task_ids == {"b"}
    assert d.get_task("f").upstream_task_ids == {"c"}
    assert d.get_task("g").upstream_task_ids == {"e", "f"}
    with DAG("cross") as d2:
        ups = [Op(task_id=f"u{i}") for i in range(2)]
        downs = [Op(task_id=f"d{i}") for i in range(3)]
        cross_downstream(ups, downs)
    assert all(d2.get_task(f"d{i}").upstream_task_ids == {"u0", "u1"} for i in range(3))
    with DAG("linear") as d3:
        p, q, r, s = (Op(task_id=n) for n in "pqrs")
        chain_linear(p, [q, r], s)
    assert d3.get_task("s").upstream_task_ids == {"q", "r"}
    with pytest.raises(InvalidArgumentError, match="different lengths"), DAG("bad_chain"):
        chain([Op(task_id="m")], [Op(task_id="n"), Op(task_id="o")])


def test_groups_wire_their_roots_and_leaves() -> None:
    with DAG("groups") as d:
        start = Op(task_id="start")
        with TaskGroup("g1") as g1:
            a = Op(task_id="a")
            b = Op(task_id="b")
            a >> b
            Op(task_id="c")
        with TaskGroup("g2") as g2:
            Op(task_id="x")
        end = Op(task_id="end")
        start >> g1 >> g2 >> end
    assert d.get_task("g1.a").upstream_task_ids == {"start"}
    assert d.get_task("g1.c").upstream_task_ids == {"start"}
    assert d.get_task("g2.x").upstream_task_ids == {"g1.b", "g1.c"}
    assert end.upstream_task_ids == {"g2.x"}
    assert [t.task_id for t in g1.roots] == ["g1.a", "g1.c"]
    assert d.get_task("g1.b").label == "b"


def test_labels_annotate_edges() -> None:
    with DAG("labels") as d:
        check, ok, bad = Op(task_id="check"), Op(task_id="ok"), Op(task_id="bad")
        check >> Label("valid") >> ok
        check >> Label("invalid") >> bad
    assert d.get_edge_info("check", "ok") == {"label": "valid"}
    assert d.get_edge_info("check", "bad") == {"label": "invalid"}
    assert ok.upstream_task_ids == {"check"}


def test_output_reference_in_a_template_field_adds_the_dependency() -> None:
    with DAG("xref"):
        a = Op(task_id="a")
        b = Op(task_id="b", x={"nested": [a.output["k"]]})
    assert b.upstream_task_ids == {"a"}


def test_every_problem_is_reported_at_once() -> None:
    # given a DAG with a bad schedule, bad dates, an unknown trigger rule, a duplicate id and a cycle
    with pytest.raises(DagDefinitionError) as err:
        with DAG(
            "broken",
            schedule="not a cron",
            start_date=datetime(2025, 1, 1),
            end_date=datetime(2024, 1, 1),
        ):
            x = Op(task_id="x", trigger_rule="bogus")
            y = Op(task_id="y")
            z = Op(task_id="z")
            x >> y >> z >> x
            Op(task_id="y")
    # expect one error listing them all, by kind, naming the tasks
    kinds = sorted(p.kind for p in err.value.problems)
    assert kinds == [
        "bad_dates",
        "bad_schedule",
        "cycle",
        "duplicate_task_id",
        "unknown_trigger_rule",
    ]
    text = str(err.value)
    assert "'bogus'" in text
    assert "'y' is used twice" in text
    assert "x >> y >> z >> x" in text
    assert "not a cron" in text
    assert err.value.dag_id == "broken"


def test_plain_dags_are_validated_on_request() -> None:
    d = DAG("plain")
    a, b = Op(task_id="a", dag=d), Op(task_id="b", dag=d)
    a >> b >> a
    with pytest.raises(DagDefinitionError, match="cycle"):
        d.validate()


def test_cycle_detection_scales_to_long_chains() -> None:
    d = DAG("long")
    prev = Op(task_id="t0", dag=d)
    for i in range(1, 5000):
        cur = Op(task_id=f"t{i}", dag=d)
        prev >> cur
        prev = cur
    d.validate()
    assert d.topological_sort()[-1].task_id == "t4999"


def test_unknown_task_lookup_names_dag_and_task() -> None:
    d = DAG("lookup")
    with pytest.raises(NotFound, match=r"lookup\.nope"):
        d.get_task("nope")


def test_invalid_ids_are_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="dag_id"):
        DAG("has space")
    with pytest.raises(InvalidArgumentError, match="task_id"):
        Op(task_id="bad id")
    with pytest.raises(InvalidArgumentError, match="not inside a DAG"):
        TaskGroup("orphan")


def test_cross_dag_dependency_is_refused() -> None:
    a = Op(task_id="a", dag=DAG("one"))
    b = Op(task_id="b", dag=DAG("two"))
    with pytest.raises(InvalidArgumentError, match="different DAGs"):
        a >> b


def test_dags_defined_during_collection_are_collected() -> None:
    with _context_stack.collecting() as found:
        with DAG("c1"):
            pass
        DAG("c2")
    assert [d.dag_id for d in found] == ["c1", "c2"]


def test_setup_and_teardown() -> None:
    with DAG("st") as d:
        create, work, delete = Op(task_id="create"), Op(task_id="work"), Op(task_id="delete")
        create >> work >> delete
        delete.as_teardown(setups=create)
    assert create.is_setup and delete.is_teardown
    assert delete.trigger_rule == TriggerRule.ALL_DONE_SETUP_SUCCESS
    assert d.get_task("delete").upstream_task_ids == {"work", "create"}


def test_dag_params_merge_default_args_params() -> None:
    d = DAG("p", params={"a": 1}, default_args={"params": {"a": 0, "b": 2}})
    assert d.params.dump() == {"a": 1, "b": 2}
