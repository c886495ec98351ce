"""Run-time expansion length of mapped tasks from recorded upstream lengths."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tradewind import DAG, task, task_group
from tradewind.operators import PythonOperator
from tradewind.scheduler.decisions import ExpansionLength, expansion_length, mapping_source
from tradewind.serialization import deserialize_dag, serialize_dag
from tradewind.serialization.values import (
    ConcatXComRef,
    MapXComRef,
    ReprValue,
    XComRef,
    ZipXComRef,
)
from tradewind.serialization.views import SerializedExpandInput

A, B = XComRef("a"), XComRef("b")


def dict_input(**value: Any) -> SerializedExpandInput:
    return SerializedExpandInput("dict_of_lists", value, None)


def _noop(*args: Any) -> None:
    return None


@pytest.mark.parametrize(
    ("expand_input", "lengths", "expected"),
    [
        # literal inputs carry their length
        (SerializedExpandInput("dict_of_lists", {"x": [1, 2]}, 2), {}, 2),
        # a cross product multiplies
        (dict_input(x=A, y=B), {"a": 3, "b": 4}, 12),
        (dict_input(x=A, y=[1, 2]), {"a": 3}, 6),
        (dict_input(x=A, y={"k": 1, "j": 2, "i": 3}), {"a": 2}, 6),
        # zip takes the shorter, or the longer with a fillvalue; concat adds; map keeps
        (dict_input(x=ZipXComRef((A, B))), {"a": 3, "b": 5}, 3),
        (dict_input(x=ZipXComRef((A, B), None, True)), {"a": 3, "b": 5}, 5),
        (dict_input(x=ConcatXComRef((A, B))), {"a": 3, "b": 5}, 8),
        (dict_input(x=MapXComRef(A, ("m.f",))), {"a": 7}, 7),
        # expand_kwargs over a result, or over a literal list
        (SerializedExpandInput("list_of_dicts", A, None), {"a": 4}, 4),
        (SerializedExpandInput("list_of_dicts", [{"x": A}, {"x": 1}], None), {}, 2),
        # a key of a multiple_outputs result, and an empty result
        (dict_input(x=XComRef("a", "rows")), {("a", "rows"): 9}, 9),
        (dict_input(x=A, y=B), {"a": 0, "b": 4}, 0),
    ],
)
def test_lengths(
    expand_input: SerializedExpandInput, lengths: dict[Any, int], expected: int
) -> None:
    assert expansion_length(expand_input, lengths) == ExpansionLength(expected)


def test_missing_lengths_are_named() -> None:
    # given one recorded length out of three references
    result = expansion_length(dict_input(x=A, y=XComRef("c", "rows"), z=ZipXComRef((B,))), {"a": 1})
    # expect no length, and every missing result named
    assert result.length is None
    assert result.missing == ("c['rows']", "b")
    assert result.missing_task_ids == ("c", "b")


def test_unstored_literal_has_no_length() -> None:
    result = expansion_length(dict_input(x=ReprValue("<generator>")), {})
    assert result.length is None
    assert "not stored" in result.missing[0]


def test_mapping_source_of_tasks_and_groups() -> None:
    # given a mapped task, a task inside a mapped group and a plain task
    with DAG("d", start_date=datetime(2024, 1, 1, tzinfo=UTC)) as dag:
        PythonOperator.partial(task_id="mapped", python_callable=_noop).expand(op_args=[[1], [2]])
        PythonOperator(task_id="plain", python_callable=_noop)

        @task_group
        def group(v: int) -> None:
            @task
            def inner(v: int) -> int:
                return v

            inner(v)

        group.expand(v=[1, 2, 3])
    view = deserialize_dag(serialize_dag(dag))
    # expect the mapped task's own input, the group's input, and nothing
    own = mapping_source(view.get_task("mapped"))
    assert own is not None and own.literal_length() == 2
    grouped = mapping_source(view.get_task("group.inner"))
    assert grouped is not None and grouped.literal_length() == 3
    assert mapping_source(view.get_task("plain")) is None
