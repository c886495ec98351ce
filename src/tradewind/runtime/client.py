"""The narrow interface a running task uses to reach the outside world.

A task try reads upstream XComs, variables and connections, and writes its own XComs, only
through a :class:`TaskClient`. The runtime code is the same under every executor; only the
client's transport differs (in-process dictionaries, a pipe to the local executor, the API
server's task-execution endpoints). Values cross the client as Python objects; each transport
encodes them with :mod:`tradewind.serialization.xcom`.

:class:`InMemoryTaskClient` keeps everything in dictionaries (tests, ``tradewind dags test``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from tradewind.errors import ConnectionNotFound, VariableNotFound
from tradewind.sdk.connection import Connection
from tradewind.serialization import xcom

__all__ = ["InMemoryTaskClient", "TaskClient", "XComKey"]

#: (dag_id, run_id, task_id, key, map_index)
XComKey = tuple[str, str, str, str, int]


@runtime_checkable
class TaskClient(Protocol):
    """What a task try may ask of the engine. ``map_index`` is -1 for an unmapped task.

    A client may also have a ``hold_xcom_pushes()`` method: the runtime calls it once the
    task's work is done (before it pushes the return value), and the client may then send
    later pushes together with the try's outcome, as long as reads still see them.
    """

    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int) -> Any:
        """The decoded value; raises ``KeyError`` when there is none."""
        ...

    def get_xcom_map_indexes(self, dag_id: str, run_id: str, task_id: str, key: str) -> list[int]:
        """The map indexes (ascending) for which ``task_id`` has a value under ``key``."""
        ...

    def set_xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int, value: Any
    ) -> None:
        """Store ``value`` (replacing any earlier one); raises ``XComError`` if it cannot be."""
        ...

    def get_variable(self, key: str) -> str:
        """The variable's raw value; raises ``VariableNotFound`` (a ``KeyError``)."""
        ...

    def get_connection(self, conn_id: str) -> Connection:
        """The connection; raises ``ConnectionNotFound`` (a ``KeyError``)."""
        ...


class InMemoryTaskClient:
    """A :class:`TaskClient` over dictionaries.

    XCom values are stored *encoded* (JSON text), so what a task reads back is exactly what a
    real transport would give. ``variables`` and ``connections`` (a :class:`Connection` or a
    connection URI per id) are consulted first; a miss falls back to
    :mod:`tradewind.sdk.secrets` (environment variables and registered backends).

    Example::

        client = InMemoryTaskClient(variables={"bucket": "s3://tmp"})
        run_task(extract, dag=dag, run=run, ti=TaskInstanceInfo(...), client=client)
        client.get_xcom(dag.dag_id, run.run_id, "extract", "return_value", -1)
    """

    def __init__(
        self,
        *,
        variables: Mapping[str, str] | None = None,
        connections: Mapping[str, Connection | str] | None = None,
        max_xcom_size: int | None = xcom.DEFAULT_MAX_SIZE,
    ) -> None:
        self.variables: dict[str, str] = dict(variables or {})
        self.connections: dict[str, Connection | str] = dict(connections or {})
        self.max_xcom_size = max_xcom_size
        self._xcoms: dict[XComKey, str] = {}
        self._lock = threading.Lock()

    # -- XCom --------------------------------------------------------------------------------
    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int) -> Any:
        """The decoded value; raises ``KeyError`` when there is none."""
        with self._lock:
            text = self._xcoms[(dag_id, run_id, task_id, key, map_index)]
        return xcom.decode(text)

    def get_xcom_map_indexes(self, dag_id: str, run_id: str, task_id: str, key: str) -> list[int]:
        """The map indexes (ascending) for which ``task_id`` has a value under ``key``."""
        with self._lock:
            return sorted(k[4] for k in self._xcoms if k[:4] == (dag_id, run_id, task_id, key))

    def get_xcom_values(self, dag_id: str, run_id: str, task_id: str, key: str) -> dict[int, Any]:
        """Every map index's value under ``key`` (ascending)."""
        indexes = self.get_xcom_map_indexes(dag_id, run_id, task_id, key)
        return {i: self.get_xcom(dag_id, run_id, task_id, key, i) for i in indexes}

    def set_xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int, value: Any
    ) -> None:
        """Encode and store ``value``; raises ``XComError`` naming the task and key."""
        text = xcom.encode(value, task_id=task_id, key=key, max_size=self.max_xcom_size)
        with self._lock:
            self._xcoms[(dag_id, run_id, task_id, key, map_index)] = text

    def get_raw_xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1
    ) -> str:
        """The stored JSON text (for tests and debugging); raises ``KeyError``."""
        with self._lock:
            return self._xcoms[(dag_id, run_id, task_id, key, map_index)]

    def xcom_keys(self) -> list[XComKey]:
        """Every stored (dag_id, run_id, task_id, key, map_index), in insertion order."""
        with self._lock:
            return list(self._xcoms)

    def clear_xcoms(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> None:
        """Forget one task instance's XComs (as the engine does before a new try)."""
        with self._lock:
            for k in [
                k for k in self._xcoms if k[:3] == (dag_id, run_id, task_id) and k[4] == map_index
            ]:
                del self._xcoms[k]

    # -- variables and connections -----------------------------------------------------------
    def get_variable(self, key: str) -> str:
        """The variable from :attr:`variables`, else from :mod:`tradewind.sdk.secrets`."""
        from tradewind.sdk import secrets

        value = self.variables.get(key)
        if value is None:
            return secrets.get_variable(key)
        if secrets.is_sensitive_key(key):
            secrets.mask_secret(value)
        return value

    def get_connection(self, conn_id: str) -> Connection:
        """The connection from :attr:`connections`, else from :mod:`tradewind.sdk.secrets`."""
        from tradewind.sdk import secrets

        value = self.connections.get(conn_id)
        if value is None:
            return secrets.get_connection(conn_id)
        conn = Connection.from_uri(conn_id, value) if isinstance(value, str) else value
        secrets.mask_secret(conn.password)
        return conn


def lookup_variable(client: TaskClient, key: str) -> str | None:
    """``client.get_variable(key)``, or None when it does not exist."""
    try:
        return client.get_variable(key)
    except (VariableNotFound, KeyError):
        return None


def lookup_connection(client: TaskClient, conn_id: str) -> Connection | None:
    """``client.get_connection(conn_id)``, or None when it does not exist."""
    try:
        return client.get_connection(conn_id)
    except (ConnectionNotFound, KeyError):
        return None
