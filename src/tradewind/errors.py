"""Every error Tradewind raises on purpose, in one hierarchy.

::

    TradewindError                      base of everything below
    ├── ConfigError                     a bad setting (key, value, what is allowed)
    ├── DagDefinitionError              a DAG breaks the rules; lists every problem at once
    │   └── (problems: DagProblem)      one each: cycle (task ids in order), duplicate id, …
    ├── InvalidArgumentError            (also TypeError) an unknown or ill-typed argument
    ├── ScheduleError                   a schedule that cannot be parsed
    ├── ParamValidationError            a Param value fails its JSON schema (names the param)
    ├── TemplateError                   a template that does not render (field, task)
    ├── MappingError                    a mapping that is invalid or too long
    ├── SerializationError              a value that cannot be serialized (dag, task, argument)
    ├── DagFileError                    a DAG file that cannot be imported (path, line)
    ├── ConnectionNotFound              no connection with that id (also KeyError)
    ├── VariableNotFound                no variable with that key (also KeyError)
    ├── NotFound                        an unknown DAG, run or task id (also KeyError)
    ├── AlreadyExists                   a row with that id exists already (kind, ident)
    ├── InvalidTransition               a state change the state machine forbids (from, to)
    ├── TaskSkipped                     raised by task code: mark this try skipped
    ├── TaskFailed                      raised by task code: fail this try without retrying
    ├── TaskTimeout                     execution_timeout elapsed
    ├── XComError                       an XCom value that cannot be stored (task, key)
    └── CommandFailed                   a task's command exited non-zero (exit_code)

Errors carry the ids they are about as attributes (``dag_id``, ``task_id``, ``key`` …) so
callers (the CLI, the API's one error mapper) never parse messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class TradewindError(Exception):
    """Base class for every error Tradewind raises on purpose."""


class ConfigError(TradewindError):
    """A configuration value is invalid; names the key, the value and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str, *, source: str | None = None) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        #: where the value came from, e.g. "environment variable TRADEWIND__API__PORT"
        self.source = source
        origin = f" (from {source})" if source else ""
        super().__init__(f"invalid setting {key}={value!r}{origin}: {allowed}")


@dataclass(frozen=True)
class DagProblem:
    """One problem found while validating a DAG definition."""

    kind: str
    message: str
    task_id: str | None = None
    location: str | None = None

    def __str__(self) -> str:
        where = f" ({self.location})" if self.location else ""
        return f"[{self.kind}] {self.message}{where}"


class DagDefinitionError(TradewindError):
    """A DAG definition is invalid. ``problems`` lists every problem found, not just the first."""

    def __init__(self, dag_id: str | None, problems: Iterable[DagProblem]) -> None:
        self.dag_id = dag_id
        self.problems = list(problems)
        head = f"DAG {dag_id!r} is invalid" if dag_id else "invalid DAG"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{head}: {len(self.problems)} problem(s)\n{lines}")


class InvalidArgumentError(TradewindError, TypeError):
    """An argument that is unknown or has the wrong type or value."""

    def __init__(self, message: str, *, argument: str | None = None, owner: str | None = None):
        self.argument = argument
        self.owner = owner
        super().__init__(message)


class ScheduleError(TradewindError, ValueError):
    """A ``schedule`` value that cannot be turned into a timetable."""

    def __init__(self, schedule: object, reason: str) -> None:
        self.schedule = schedule
        self.reason = reason
        super().__init__(f"invalid schedule {schedule!r}: {reason}")


class ParamValidationError(TradewindError, ValueError):
    """A param value does not satisfy its schema (or a required param has no value)."""

    def __init__(self, param: str, reason: str, value: object = None) -> None:
        self.param = param
        self.reason = reason
        self.value = value
        super().__init__(f"param {param!r} is invalid: {reason}")


class TemplateError(TradewindError):
    """A templated field could not be rendered."""

    def __init__(self, message: str, *, task_id: str | None = None, field: str | None = None):
        self.task_id = task_id
        self.field = field
        where = ""
        if task_id or field:
            where = f" (task {task_id!r}, field {field!r})"
        super().__init__(f"{message}{where}")


class MappingError(TradewindError, ValueError):
    """Dynamic task mapping that is invalid, or an input longer than the allowed maximum."""

    def __init__(self, message: str, *, task_id: str | None = None) -> None:
        self.task_id = task_id
        super().__init__(message)


class SerializationError(TradewindError):
    """A DAG holds a value that cannot be serialized; names the DAG, task and argument."""

    def __init__(
        self,
        message: str,
        *,
        dag_id: str | None = None,
        task_id: str | None = None,
        argument: str | None = None,
    ) -> None:
        self.dag_id = dag_id
        self.task_id = task_id
        self.argument = argument
        parts = [
            f"{k} {v!r}"
            for k, v in (("DAG", dag_id), ("task", task_id), ("argument", argument))
            if v
        ]
        where = f" ({', '.join(parts)})" if parts else ""
        super().__init__(f"{message}{where}")


class DagFileError(TradewindError):
    """A DAG file failed to import."""

    def __init__(self, path: str, message: str, line: int | None = None, traceback: str = ""):
        self.path = path
        self.line = line
        self.traceback = traceback
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}")


class NotFound(TradewindError, KeyError):
    """An unknown id (DAG, run, task, connection, variable …)."""

    def __init__(self, kind: str, ident: str) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"{kind} {ident!r} not found")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class ConnectionNotFound(NotFound):
    """No connection with this id is defined."""

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        super().__init__("connection", conn_id)


class VariableNotFound(NotFound):
    """No variable with this key is defined."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__("variable", key)


class AlreadyExists(TradewindError):
    """A DAG run, connection, backfill … with this id exists already."""

    def __init__(self, kind: str, ident: str, message: str | None = None) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(message or f"{kind} {ident!r} already exists")


class InvalidTransition(TradewindError, ValueError):
    """A requested state change that ``tradewind.state``'s transition table does not allow.

    ``kind`` is ``"task"`` or ``"run"``; ``ident`` the row id; ``current`` the state(s) the
    change was requested from and ``new`` the target state.
    """

    def __init__(self, kind: str, ident: object, current: object, new: object) -> None:
        self.kind = kind
        self.ident = ident
        self.current = current
        self.new = new
        super().__init__(f"{kind} {ident!r}: illegal state change from {current} to {new}")


class TaskSkipped(TradewindError):
    """Raised inside a task to mark the current try ``skipped``."""


class TaskFailed(TradewindError):
    """Raised inside a task to fail the current try without retrying."""


class TaskTimeout(TradewindError):
    """A task ran longer than its ``execution_timeout``."""


class XComError(TradewindError):
    """An XCom value cannot be stored: not encodable as JSON, or larger than the size limit."""

    def __init__(self, message: str, *, task_id: str | None = None, key: str | None = None):
        self.task_id = task_id
        self.key = key
        parts = [f"{k} {v!r}" for k, v in (("task", task_id), ("key", key)) if v]
        where = f" ({', '.join(parts)})" if parts else ""
        super().__init__(f"{message}{where}")


class CommandFailed(TradewindError):
    """A command run by a task (``bash -c ...``) exited with a non-zero code."""

    def __init__(self, message: str, *, exit_code: int, command: str | None = None) -> None:
        self.exit_code = exit_code
        self.command = command
        super().__init__(message)
