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

from typing import TYPE_CHECKING

from tradewind._lazy import lazy_exports

# Loaded on first use, so the XCom codec (``tradewind.serialization.xcom``) can be imported
# by task processes without the DAG serializer and timetables.
_EXPORTS: dict[str, str] = {
    "SERIALIZATION_VERSION": "tradewind.serialization.views",
    "SerializedDAG": "tradewind.serialization.views",
    "SerializedTask": "tradewind.serialization.views",
    "SerializedTaskGroup": "tradewind.serialization.views",
    "deserialize_dag": "tradewind.serialization.views",
    "dag_hash": "tradewind.serialization.serialized_dag",
    "from_json": "tradewind.serialization.serialized_dag",
    "serialize_dag": "tradewind.serialization.serialized_dag",
    "to_json": "tradewind.serialization.serialized_dag",
}

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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:
    from tradewind.serialization.serialized_dag import dag_hash, from_json, serialize_dag, to_json
    from tradewind.serialization.views import (
        SERIALIZATION_VERSION,
        SerializedDAG,
        SerializedTask,
        SerializedTaskGroup,
        deserialize_dag,
    )
