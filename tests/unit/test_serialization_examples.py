"""Every example DAG shipped in ``tradewind/examples/dags`` serializes and round-trips."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

import tradewind
from tradewind.sdk import _context_stack
from tradewind.sdk.dag_definition import DAG
from tradewind.serialization import dag_hash, deserialize_dag, from_json, serialize_dag, to_json

EXAMPLES = Path(tradewind.__file__).parent / "examples" / "dags"
EXAMPLE_FILES = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def load_dags(path: Path) -> list[DAG]:
    """Import a DAG file the way DAG processing does, collecting the DAGs it defines."""
    with _context_stack.collecting() as dags:
        runpy.run_path(str(path), run_name=f"tradewind_example_{path.stem}")
    return list(dags)


def test_examples_folder_defines_dags() -> None:
    # given the examples folder / expect at least one file that defines at least one DAG
    assert EXAMPLE_FILES, f"no example DAG files in {EXAMPLES}"
    assert any(load_dags(path) for path in EXAMPLE_FILES), f"no DAGs defined in {EXAMPLES}"


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_dags_round_trip(path: Path) -> None:
    # given every DAG in one example file
    dags = load_dags(path)
    for dag in dags:
        # when serialized, written as JSON, read back and serialized again
        document = serialize_dag(dag)
        text = to_json(document)
        view = deserialize_dag(from_json(text))
        again = serialize_dag(view)
        # expect the same document, text and hash, and the same tasks and schedule
        assert again == document, dag.dag_id
        assert to_json(again) == text
        assert dag_hash(again) == dag_hash(document)
        assert view.task_ids == dag.task_ids
        assert view.timetable.to_dict() == document["dag"]["schedule"]["timetable"]
        for task in dag.tasks:
            assert view.get_task(task.task_id).upstream_task_ids == task.upstream_task_ids
