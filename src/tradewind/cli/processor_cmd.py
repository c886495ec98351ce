"""``tradewind dag-processor``: keeps the database in step with the DAG files, in the
foreground (see :mod:`tradewind.dag_processing.service`). Logs go to stderr; SIGTERM or Ctrl-C
stops it cleanly."""

from __future__ import annotations

import click

from tradewind.cli._engine import StopFlag, database_at_head, setup_logging
from tradewind.cli._output import echo_err
from tradewind.cli._state import CliState, dag_source_options, pass_state

__all__ = ["dag_processor"]


@click.command("dag-processor")
@click.option("--once", is_flag=True, help="Parse everything once, write it, and exit.")
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between looks for changed files.",
)
@dag_source_options
@pass_state
def dag_processor(state: CliState, once: bool, poll_interval: float) -> None:
    """Parse DAG files and write DAGs, versions and import errors to the database.

    Changed, new and deleted files are noticed within seconds; everything is re-parsed every
    scheduler.min_file_process_interval seconds.
    """
    import logging

    from tradewind.dag_processing import ParseOptions
    from tradewind.dag_processing.service import DagProcessor

    settings = state.settings()
    setup_logging(settings)
    log = logging.getLogger("tradewind.dag_processor")
    database = database_at_head(settings)
    folder = state.effective_dags_folder()
    if not folder.exists() and state.dags_folder is None:
        folder.mkdir(parents=True, exist_ok=True)
    options = ParseOptions.from_settings(
        settings, dags_folder=folder, include_examples=state.load_examples
    )
    processor = DagProcessor(
        database,
        options,
        poll_interval=poll_interval,
        full_interval=float(settings.scheduler.min_file_process_interval),
    )
    try:
        if once:
            report = processor.run_once()
            echo_err(report.summary())
            return
        stop = StopFlag("dag-processor").install()
        log.info(
            "DAG processor started: watching %s%s (full re-parse every %s s)",
            folder,
            " and the example DAGs" if options.include_examples else "",
            settings.scheduler.min_file_process_interval,
        )
        processor.run_forever(should_stop=stop)
        log.info("DAG processor stopped")
    finally:
        database.dispose()
