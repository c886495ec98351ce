"""DAG serialization: a DAG as a versioned JSON document, readable without the DAG file.

::

    from tradewind.serialization import serialize_dag, deserialize_dag, dag_hash, to_json

    document = serialize_dag(dag)          # {"__version": 1, "dag": {...}}
    version_hash = dag_hash(document)      # sha256, stable across machines and processes
    text = to_json(document)               # compact JSON for the database
    view = deserialize_dag(from_json(text))
    view.get_task("load").retries, view.timetable, view.topological_sort()

The document's shape, and which fields must serialize exactly, are described in
:mod:`tradewind.serialization.serialized_dag`; typed values in
:mod:`tradewind.serialization.values`.
"""

from __future__ import annotations

from tradewind.serialization.serialized_dag import dag_hash, from_json, serialize_dag, to_json
from tradewind.serialization.views import (
    SERIALIZATION_VERSION,
    SerializedDAG,
    SerializedTask,
    SerializedTaskGroup,
    deserialize_dag,
)

__all__ = [
    "SERIALIZATION_VERSION",
    "SerializedDAG",
    "SerializedTask",
    "SerializedTaskGroup",
    "dag_hash",
    "deserialize_dag",
    "from_json",
    "serialize_dag",
    "to_json",
]
