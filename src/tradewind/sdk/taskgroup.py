"""Task groups: named, nestable boxes of tasks with shared defaults, usable as one endpoint in ``>>``.

Tasks inside a group get ids prefixed with the group id (``extract.orders``) unless the group
says ``prefix_group_id=False``. ``group_a >> group_b`` wires group_a's leaves (its tasks with no
downstream inside the group) to group_b's roots.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tradewind.errors import DagProblem, InvalidArgumentError
from tradewind.sdk import _context_stack
from tradewind.sdk._dependencies import DependencyMixin

if TYPE_CHECKING:
    from tradewind.sdk.abstractoperator import AbstractOperator
    from tradewind.sdk.dag_definition import DAG
    from tradewind.sdk.mapping import ExpandInput

_GROUP_ID_RE = re.compile(r"^[\w-]+$")


class TaskGroup(DependencyMixin):
    """A group of tasks (and nested groups) inside one DAG.

    Use as ``with TaskGroup("extract") as tg:`` inside a DAG, or pass ``dag=``.
    ``default_args`` apply to every task inside, over the DAG's and outer groups' defaults.
    """

    def __init__(
        self,
        group_id: str | None,
        *,
        prefix_group_id: bool = True,
        parent_group: TaskGroup | None = None,
        dag: DAG | None = None,
        default_args: dict[str, Any] | None = None,
        tooltip: str = "",
        ui_color: str = "CornflowerBlue",
        ui_fgcolor: str = "#000",
        add_suffix_on_collision: bool = False,
        group_display_name: str | None = None,
        _is_root: bool = False,
    ) -> None:
        self.children: dict[str, AbstractOperator | TaskGroup] = {}
        self.prefix_group_id = prefix_group_id
        self.default_args = dict(default_args or {})
        self.tooltip = tooltip
        self.ui_color = ui_color
        self.ui_fgcolor = ui_fgcolor
        self.group_display_name = group_display_name
        self.expand_input: ExpandInput | None = None
        if _is_root:
            self.group_id = None
            self._local_id = None
            self.parent_group = None
            self.dag = dag
            return
        if not isinstance(group_id, str) or not _GROUP_ID_RE.match(group_id):
            raise InvalidArgumentError(
                f"group_id must be a non-empty string of letters, digits, '_' and '-', got {group_id!r}"
            )
        dag = dag or (parent_group.dag if parent_group else None) or _context_stack.current_dag()
        if dag is None:
            raise InvalidArgumentError(
                f"TaskGroup {group_id!r} is not inside a DAG: create it in a `with DAG(...)` block "
                "or pass dag="
            )
        parent = parent_group or _context_stack.current_group(dag)
        assert parent is not None
        self.dag = dag
        self.parent_group = parent
        self._local_id = group_id
        full_id = parent.child_id(group_id)
        if add_suffix_on_collision:
            base, n = full_id, 0
            while dag.task_group.find_group(full_id) is not None:
                n += 1
                full_id = f"{base}__{n}"
        if dag.task_group.find_group(full_id) is not None or full_id in dag.task_dict:
            dag.add_problem(DagProblem("duplicate_group_id", f"group id {full_id!r} is used twice"))
        self.group_id = full_id
        parent.add(self)

    # -- ids ---------------------------------------------------------------------------------
    @property
    def is_root(self) -> bool:
        return self.group_id is None

    @property
    def label(self) -> str | None:
        """The id without the parent's prefix."""
        return self._local_id

    def child_id(self, local_id: str) -> str:
        """The full id of a child called ``local_id``."""
        if self.group_id and self.prefix_group_id:
            return f"{self.group_id}.{local_id}"
        # A non-prefixing group still passes its parents' prefix on.
        if self.parent_group is not None:
            return self.parent_group.child_id(local_id)
        return local_id

    def merged_default_args(self) -> dict[str, Any]:
        """default_args from the outermost group to this one (inner wins)."""
        chain: list[TaskGroup] = []
        g: TaskGroup | None = self
        while g is not None:
            chain.append(g)
            g = g.parent_group
        merged: dict[str, Any] = {}
        for g in reversed(chain):
            merged.update(g.default_args)
        return merged

    # -- membership --------------------------------------------------------------------------
    def add(self, child: AbstractOperator | TaskGroup) -> None:
        """Add a task or group to this group (done by their constructors)."""
        key = child.group_id if isinstance(child, TaskGroup) else child.task_id
        assert key is not None
        self.children[key] = child
        if not isinstance(child, TaskGroup):
            child.task_group = self

    def iter_tasks(self) -> Iterator[AbstractOperator]:
        """Every task inside, depth-first in definition order."""
        for child in self.children.values():
            if isinstance(child, TaskGroup):
                yield from child.iter_tasks()
            else:
                yield child

    def iter_groups(self) -> Iterator[TaskGroup]:
        """Every nested group, depth-first."""
        for child in self.children.values():
            if isinstance(child, TaskGroup):
                yield child
                yield from child.iter_groups()

    def find_group(self, group_id: str) -> TaskGroup | None:
        if self.group_id == group_id:
            return self
        for g in self.iter_groups():
            if g.group_id == group_id:
                return g
        return None

    def get_task_group_dict(self) -> dict[str | None, TaskGroup]:
        """Every group in this tree by id (the root under ``None``)."""
        return {self.group_id: self, **{g.group_id: g for g in self.iter_groups()}}

    @property
    def is_mapped(self) -> bool:
        """Whether this group (or an enclosing one) is expanded at run time."""
        g: TaskGroup | None = self
        while g is not None:
            if g.expand_input is not None:
                return True
            g = g.parent_group
        return False

    # -- dependencies ------------------------------------------------------------------------
    @property
    def roots(self) -> list[AbstractOperator]:
        """Tasks inside with no upstream task inside the group."""
        ids = {t.task_id for t in self.iter_tasks()}
        return [t for t in self.iter_tasks() if not (t.upstream_task_ids & ids)]

    @property
    def leaves(self) -> list[AbstractOperator]:
        """Tasks inside with no downstream task inside the group."""
        ids = {t.task_id for t in self.iter_tasks()}
        return [t for t in self.iter_tasks() if not (t.downstream_task_ids & ids)]

    def __enter__(self) -> TaskGroup:
        _context_stack.push_group(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _context_stack.pop_group(self)

    def __repr__(self) -> str:
        return f"<TaskGroup: {self.group_id}>"
