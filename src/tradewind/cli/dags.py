"""``tradewind dags``: list DAGs, show one's structure, and list import errors.

Every command here parses the DAGs folder (``-S/--dags-folder`` or ``core.dags_folder``) the
way DAG processing does: each file in its own process, with the configured time limit.
"""

from __future__ import annotations

import click

from tradewind.cli._dagview import (
    dag_summary,
    render_dot,
    render_tree,
    resolve_dag,
    warn_import_errors,
)
from tradewind.cli._output import ExitCode, echo_err, output_option, print_json, print_table
from tradewind.cli._state import CliState, dag_source_options, pass_state
from tradewind.cli.backfill import backfill_cmd
from tradewind.cli.dag_ops import (
    delete_cmd,
    next_execution_cmd,
    pause_cmd,
    reserialize_cmd,
    state_cmd,
    trigger_cmd,
    unpause_cmd,
)
from tradewind.cli.dag_test_cmd import test_cmd

__all__ = ["dags"]


@click.group()
def dags() -> None:
    """List, show, test, trigger, pause and backfill DAGs."""


@dags.command("list")
@output_option
@dag_source_options
@pass_state
def list_dags(state: CliState, output: str) -> None:
    """List every DAG: id, file, schedule, tags and number of tasks."""
    from tradewind.serialization import deserialize_dag

    collection = state.collect()
    rows = [dag_summary(deserialize_dag(collection.dags[d])) for d in sorted(collection.dags)]
    warn_import_errors(collection)
    if output == "json":
        print_json(rows)
        return
    print_table(
        ["dag_id", "file", "schedule", "tags", "tasks"],
        [[r["dag_id"], r["file"], r["schedule"], r["tags"], r["tasks"]] for r in rows],
        empty=f"No DAGs found in {state.effective_dags_folder()}.",
    )


@dags.command("list-import-errors")
@output_option
@dag_source_options
@pass_state
def list_import_errors(state: CliState, output: str) -> None:
    """List the DAG files that failed to import: file, line and error.

    The JSON form includes each traceback. Exits with code 1 when there are import errors, so
    CI can run it as a check.
    """
    collection = state.collect()
    errors = collection.import_errors
    if output == "json":
        print_json([e.to_dict() for e in errors])
    else:
        print_table(
            ["file", "line", "error"],
            [[e.display_path, e.line, e.message] for e in errors],
            empty="No import errors.",
        )
    if errors:
        raise click.exceptions.Exit(int(ExitCode.FAILURE))


@dags.command("show")
@click.argument("dag_id")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["tree", "dot", "json"]),
    default="tree",
    show_default=True,
    help="tree: readable task tree; dot: Graphviz DOT; json: the serialized DAG document.",
)
@dag_source_options
@pass_state
def show(state: CliState, dag_id: str, fmt: str) -> None:
    """Show the structure of DAG_ID: its tasks, groups and dependencies.

    \b
    tradewind dags show etl                            # tree in the terminal
    tradewind dags show etl --format dot | dot -Tsvg > etl.svg
    """
    dag = resolve_dag(state, dag_id)
    if fmt == "dot":
        click.echo(render_dot(dag))
    elif fmt == "json":
        print_json(state.collect().dags[dag_id])
    else:
        click.echo(render_tree(dag))
        if not dag.task_dict:
            echo_err(f"DAG {dag_id!r} has no tasks.")


# Commands that work on the metadata database or run a DAG live in their own modules.
for _command in (
    test_cmd,
    pause_cmd,
    unpause_cmd,
    trigger_cmd,
    state_cmd,
    next_execution_cmd,
    delete_cmd,
    reserialize_cmd,
    backfill_cmd,
):
    dags.add_command(_command)
