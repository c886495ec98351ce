"""Text views of a serialized DAG for the CLI: a task tree, Graphviz DOT, and plain rows.

Everything here reads a :class:`~tradewind.serialization.SerializedDAG` (never the DAG file),
so the views show exactly what the scheduler will see.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tradewind.cli._output import ExitCode, fail, warn

if TYPE_CHECKING:
    from tradewind.cli._state import CliState
    from tradewind.dag_processing import DagCollection
    from tradewind.serialization import SerializedDAG, SerializedTask, SerializedTaskGroup

__all__ = [
    "dag_summary",
    "group_tree_json",
    "render_dot",
    "render_tree",
    "resolve_dag",
    "task_json",
    "warn_import_errors",
]


# --- finding the DAG ---------------------------------------------------------------------------


def warn_import_errors(collection: DagCollection) -> None:
    """Tell (on stderr) that some files failed, so a missing DAG is not a mystery."""
    count = len({e.path for e in collection.import_errors})
    if count:
        warn(
            f"{count} DAG file(s) could not be imported; "
            "run `tradewind dags list-import-errors` to see why"
        )


def resolve_dag(state: CliState, dag_id: str) -> SerializedDAG:
    """The parsed DAG ``dag_id``, or exit 2 naming it and listing close matches."""
    from tradewind.serialization import deserialize_dag

    collection = state.collect()
    document = collection.dags.get(dag_id)
    if document is None:
        folder = state.effective_dags_folder()
        close = collection.close_matches(dag_id)
        suggestion = f"; did you mean: {', '.join(close)}?" if close else ""
        warn_import_errors(collection)
        fail(f"DAG {dag_id!r} not found in {folder}{suggestion}", ExitCode.USAGE)
    return deserialize_dag(document)


# --- rows and JSON -----------------------------------------------------------------------------


def dag_summary(dag: SerializedDAG) -> dict[str, Any]:
    """The fields ``dags list`` shows, JSON-ready."""
    return {
        "dag_id": dag.dag_id,
        "file": dag.relative_fileloc or dag.fileloc,
        "fileloc": dag.fileloc,
        "schedule": dag.schedule,
        "tags": list(dag.tags),
        "tasks": len(dag.task_dict),
        "description": dag.description,
        "catchup": dag.catchup,
        "start_date": dag.start_date.isoformat() if dag.start_date else None,
    }


def _trigger_rule(task: SerializedTask) -> str:
    rule = task.trigger_rule
    return str(getattr(rule, "value", rule))


def _markers(task: SerializedTask) -> list[str]:
    marks = []
    if task.is_mapped:
        marks.append("mapped")
    if task.task_group is not None and not task.task_group.is_root and task.task_group.is_mapped:
        marks.append("in mapped group")
    if task.is_setup:
        marks.append("setup")
    if task.is_teardown:
        marks.append("teardown")
    return marks


def task_json(task: SerializedTask) -> dict[str, Any]:
    """One task for ``--output json``: identity, operator, dependencies (with edge labels)."""
    dag = task.dag
    labels = {
        up: dag.get_edge_info(up, task.task_id).get("label")
        for up in sorted(task.upstream_task_ids)
        if dag.get_edge_info(up, task.task_id).get("label")
    }
    return {
        "task_id": task.task_id,
        "label": task.label,
        "operator": task.operator_name,
        "operator_class": task.operator_class,
        "task_group_id": task.task_group_id,
        "upstream_task_ids": sorted(task.upstream_task_ids),
        "downstream_task_ids": sorted(task.downstream_task_ids),
        "upstream_edge_labels": labels,
        "trigger_rule": _trigger_rule(task),
        "is_mapped": task.is_mapped,
        "is_setup": task.is_setup,
        "is_teardown": task.is_teardown,
    }


def group_tree_json(group: SerializedTaskGroup) -> dict[str, Any]:
    """A task group and everything inside it, nested, for ``tasks list --tree --output json``."""
    from tradewind.serialization import SerializedTaskGroup

    children: list[dict[str, Any]] = []
    for child in group.children.values():
        if isinstance(child, SerializedTaskGroup):
            children.append(group_tree_json(child))
        else:
            children.append({"type": "task", **task_json(child)})
    return {
        "type": "group",
        "group_id": group.group_id,
        "label": group.label,
        "is_mapped": group.expand_input is not None,
        "children": children,
    }


# --- tree --------------------------------------------------------------------------------------


def _dependency_text(task: SerializedTask) -> str:
    if not task.upstream_task_ids:
        return ""
    parts = []
    for up in sorted(task.upstream_task_ids):
        label = task.dag.get_edge_info(up, task.task_id).get("label")
        parts.append(f'{up} "{label}"' if label else up)
    return "  <- " + ", ".join(parts)


def _task_line(task: SerializedTask) -> str:
    marks = _markers(task)
    mark_text = f" ({', '.join(marks)})" if marks else ""
    rule = _trigger_rule(task)
    rule_text = f" {{{rule}}}" if rule != "all_success" else ""
    return f"{task.task_id} [{task.operator_name}]{mark_text}{rule_text}{_dependency_text(task)}"


def _group_line(group: SerializedTaskGroup) -> str:
    mapped = " (mapped)" if group.expand_input is not None else ""
    return f"{group.group_id}/ (task group){mapped}"


def render_tree(dag: SerializedDAG) -> str:
    """The DAG as an indented tree: groups nest, each task shows its operator and upstreams.

    Example::

        etl (schedule: 0 0 * * *, 3 tasks, file: etl.py)
        ├── extract [PythonOperator]
        ├── transform/ (task group)
        │   └── transform.clean [PythonOperator]  <- extract
        └── load [PythonOperator] (mapped) {all_done}  <- transform.clean "cleaned"

    ``(mapped)`` marks a task (or group) expanded at run time, ``{rule}`` a trigger rule other
    than ``all_success``, and quoted text after an upstream id the edge's label.
    """
    from tradewind.serialization import SerializedTaskGroup

    lines = [
        f"{dag.dag_id} (schedule: {dag.schedule}, {len(dag.task_dict)} tasks, "
        f"file: {dag.relative_fileloc or dag.fileloc})"
    ]

    def walk(group: SerializedTaskGroup, prefix: str) -> None:
        children = list(group.children.values())
        for i, child in enumerate(children):
            last = i == len(children) - 1
            branch, extension = ("└── ", "    ") if last else ("├── ", "│   ")
            if isinstance(child, SerializedTaskGroup):
                lines.append(prefix + branch + _group_line(child))
                walk(child, prefix + extension)
            else:
                lines.append(prefix + branch + _task_line(child))

    walk(dag.task_group, "")
    return "\n".join(lines)


# --- Graphviz ----------------------------------------------------------------------------------


def _q(text: str) -> str:
    """A DOT double-quoted string (``\\n`` inside ``text`` must already be escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _label(*lines: str) -> str:
    # DOT reads a backslash-n inside a quoted label as a line break.
    escaped = [line.replace("\\", "\\\\").replace('"', '\\"') for line in lines]
    return '"' + "\\n".join(escaped) + '"'


def render_dot(dag: SerializedDAG) -> str:
    """The DAG in Graphviz DOT: one box per task, a cluster per task group, labelled edges.

    Render with ``tradewind dags show DAG --format dot | dot -Tsvg > dag.svg``.
    """
    from tradewind.serialization import SerializedTaskGroup

    out = [
        f"digraph {_q(dag.dag_id)} {{",
        f"  graph [rankdir=LR, label={_q(dag.dag_id)}, labelloc=t, fontname=Helvetica];",
        '  node [shape=box, style="rounded,filled", fontname=Helvetica, fontsize=11];',
        "  edge [fontname=Helvetica, fontsize=9];",
    ]

    def emit(group: SerializedTaskGroup, indent: str) -> None:
        for child in group.children.values():
            if isinstance(child, SerializedTaskGroup):
                mapped = " [mapped]" if child.expand_input is not None else ""
                out.append(f"{indent}subgraph {_q('cluster_' + str(child.group_id))} {{")
                out.append(f"{indent}  label={_q(str(child.label or child.group_id) + mapped)};")
                out.append(f'{indent}  style="rounded,dashed";')
                emit(child, indent + "  ")
                out.append(f"{indent}}}")
            else:
                marks = _markers(child)
                extra = [f"({', '.join(marks)})"] if marks else []
                label = _label(child.label, child.operator_name, *extra)
                attrs = f"label={label}, fillcolor={_q(child.ui_color)}, fontcolor={_q(child.ui_fgcolor)}"
                if child.is_mapped:
                    attrs += ", peripheries=2"
                out.append(f"{indent}{_q(child.task_id)} [{attrs}];")

    emit(dag.task_group, "  ")
    for task in dag.topological_sort():
        for down in sorted(task.downstream_task_ids):
            label = dag.get_edge_info(task.task_id, down).get("label")
            attrs = f" [label={_q(str(label))}]" if label else ""
            out.append(f"  {_q(task.task_id)} -> {_q(down)}{attrs};")
    out.append("}")
    return "\n".join(out)
