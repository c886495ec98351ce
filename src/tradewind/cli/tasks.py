"""``tradewind tasks``: the tasks of one DAG."""

from __future__ import annotations

import click

from tradewind.cli._dagview import group_tree_json, render_tree, resolve_dag, task_json
from tradewind.cli._output import output_option, print_json, print_table
from tradewind.cli._state import CliState, dag_source_options, pass_state
from tradewind.cli.task_ops import clear_cmd, mark_cmd, state_cmd, test_cmd, why_cmd

__all__ = ["tasks"]


@click.group()
def tasks() -> None:
    """List, test, clear, mark and explain tasks."""


@tasks.command("list")
@click.argument("dag_id")
@click.option("--tree", is_flag=True, help="Show tasks nested in their task groups.")
@output_option
@dag_source_options
@pass_state
def list_tasks(state: CliState, dag_id: str, tree: bool, output: str) -> None:
    """List the tasks of DAG_ID in dependency order (upstream tasks first)."""
    dag = resolve_dag(state, dag_id)
    if tree:
        if output == "json":
            print_json(group_tree_json(dag.task_group))
        else:
            click.echo(render_tree(dag))
        return
    ordered = dag.topological_sort()
    if output == "json":
        print_json([task_json(t) for t in ordered])
        return
    rows = []
    for task in ordered:
        data = task_json(task)
        marks = [
            m
            for m, on in (
                ("mapped", task.is_mapped),
                ("setup", task.is_setup),
                ("teardown", task.is_teardown),
            )
            if on
        ]
        rows.append(
            [
                task.task_id,
                task.operator_name,
                data["upstream_task_ids"],
                data["trigger_rule"],
                marks,
            ]
        )
    print_table(
        ["task_id", "operator", "upstream", "trigger_rule", "notes"],
        rows,
        empty=f"DAG {dag_id!r} has no tasks.",
    )


# Commands that run a task or work on task instances in the database live in task_ops.
for _command in (test_cmd, state_cmd, clear_cmd, mark_cmd, why_cmd):
    tasks.add_command(_command)
