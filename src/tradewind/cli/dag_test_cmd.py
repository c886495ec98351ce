"""``tradewind dags test``: one DAG run in this process, through the real scheduler code.

The DAG is imported from its file here (only the files that mention its id are imported),
then :func:`tradewind.scheduler.dag_test.test_dag` runs it with the inline executor and a
throw-away SQLite database: the real metadata database is never touched. Task logs and a line
per finished task instance go to stderr as they happen.

Exit codes: 0 when the run succeeds, 1 when it fails (or the DAG's file does not import),
2 for bad input: an unknown DAG, a bad ``--logical-date``, ``--conf`` that is not a JSON
object, or a conf value its param rejects.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

import click

from tradewind.cli._engine import load_live_dag, parse_conf, parse_when, stdout_to_stderr
from tradewind.cli._output import ExitCode, echo_err, fail, output_option, print_json, print_table
from tradewind.cli._state import CliState, dag_source_options, pass_state

__all__ = ["test_cmd"]


@click.command("test")
@click.argument("dag_id")
@click.option(
    "--logical-date",
    "-e",
    "logical_date_text",
    metavar="ISO",
    default=None,
    help="Logical date of the run (default: now); naive values are in core.default_timezone.",
)
@click.option("--conf", "-c", "conf_text", metavar="JSON", help="dag_run.conf as a JSON object.")
@output_option
@dag_source_options
@pass_state
def test_cmd(
    state: CliState,
    dag_id: str,
    logical_date_text: str | None,
    conf_text: str | None,
    output: str,
) -> None:
    """Run DAG_ID once in this process, without the metadata database.

    \b
    tradewind dags test etl
    tradewind dags test etl --logical-date 2024-01-31 --conf '{"limit": 10}'
    tradewind dags test etl --output json | jq .state
    """
    settings = state.settings()
    logical_date = parse_when(logical_date_text, settings, "--logical-date")
    conf = parse_conf(conf_text)
    started = time.monotonic()
    guard = stdout_to_stderr() if output == "json" else contextlib.nullcontext()
    with guard:
        dag = load_live_dag(state, dag_id)
        result = _run(dag, logical_date, conf)
    elapsed = time.monotonic() - started
    counts: dict[str, int] = {}
    for ti in result.task_instances:
        counts[ti["state"]] = counts.get(ti["state"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    echo_err(
        f"Run {result.run_id} of {dag_id}: {result.state} ({summary or 'no tasks'}) "
        f"in {elapsed:.2f} s"
    )
    if output == "json":
        print_json(result.to_dict())
    else:
        print_table(
            ["task_id", "map_index", "state", "try", "start", "end"],
            [
                [
                    t["task_id"],
                    t["map_index"] if t["map_index"] >= 0 else "",
                    t["state"],
                    t["try_number"],
                    t["start_date"],
                    t["end_date"],
                ]
                for t in result.task_instances
            ],
        )
    if not result.succeeded:
        raise click.exceptions.Exit(int(ExitCode.FAILURE))


def _run(dag: Any, logical_date: Any, conf: dict[str, Any]) -> Any:
    from tradewind.errors import InvalidArgumentError, ParamValidationError
    from tradewind.scheduler.dag_test import default_progress, test_dag

    echo_err(f"Testing DAG {dag.dag_id} ({len(dag.task_dict)} tasks)")
    try:
        return test_dag(
            dag,
            logical_date=logical_date,
            conf=conf,
            log_stream=sys.stderr,
            on_progress=default_progress(sys.stderr),
        )
    except ParamValidationError as exc:
        fail(f"--conf: {exc}", ExitCode.USAGE)
    except InvalidArgumentError as exc:
        fail(str(exc), ExitCode.USAGE)
