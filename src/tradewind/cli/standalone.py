"""``tradewind standalone``: everything needed to run pipelines on this machine, one command.

It makes ``$TRADEWIND_HOME`` (with its ``dags`` and ``logs`` folders), creates or upgrades the
metadata database, creates the Fernet key that encrypts stored secrets, then runs the DAG
processor and the scheduler (with the local executor) as supervised child processes, each a
``tradewind <command>`` of its own, restarted if it dies. The example DAGs are loaded unless
``core.load_examples`` is false (or ``--no-examples`` is given). Ctrl-C (or SIGTERM) stops
everything cleanly and exits 0.
"""

from __future__ import annotations

import click

from tradewind.cli._output import ExitCode, echo_err, fail
from tradewind.cli._state import CliState, dag_source_options, pass_state

__all__ = ["standalone"]


@click.command("standalone")
@dag_source_options
@pass_state
def standalone(state: CliState) -> None:
    """Run the DAG processor and the scheduler together on this machine (Ctrl-C stops).

    \b
    TRADEWIND_HOME=~/tradewind tradewind standalone
    """
    import subprocess
    import sys

    from tradewind.cli._supervisor import Component, Supervisor, components_env
    from tradewind.config import settings_as_dict

    settings = state.settings()
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    dags_folder = state.effective_dags_folder()
    if state.dags_folder is None:
        dags_folder.mkdir(parents=True, exist_ok=True)
    logs = settings.logging.base_log_folder
    logs.mkdir(parents=True, exist_ok=True)
    # The supervisor idles for as long as the stack runs: migrating (and creating the Fernet
    # key) in a child keeps SQLAlchemy and Alembic out of its memory.
    migrate = subprocess.run(
        [sys.executable, "-m", "tradewind.cli.main", "db", "migrate"],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if migrate.returncode != 0:
        fail("could not prepare the metadata database (see above)", ExitCode.FAILURE)
    echo_err(migrate.stdout.strip())
    examples = settings.core.load_examples if state.load_examples is None else state.load_examples
    env = {
        "TRADEWIND_HOME": str(home),
        "TRADEWIND__CORE__DAGS_FOLDER": str(dags_folder),
        "TRADEWIND__CORE__LOAD_EXAMPLES": "true" if examples else "false",
    }
    echo_err(
        "\n".join(
            [
                "Tradewind standalone",
                f"  home:      {home}",
                f"  database:  {settings_as_dict(settings)['database']['url']}",
                f"  DAGs:      {dags_folder}" + ("  (+ the example DAGs)" if examples else ""),
                f"  task logs: {logs}",
                "Press Ctrl-C to stop.",
            ]
        )
    )
    supervisor = Supervisor(
        [
            Component("dag-processor", ["dag-processor"]),
            Component("scheduler", ["scheduler"]),
        ],
        env=components_env(env),
    )
    code = supervisor.run()
    raise click.exceptions.Exit(code)
