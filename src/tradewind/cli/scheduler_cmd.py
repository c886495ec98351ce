"""``tradewind scheduler``: the scheduling loop with the local executor, in the foreground.

It refuses to start when the database schema is not at the newest revision, registers the
database as a secrets backend (so DAG callbacks and the scheduler see stored connections and
variables), starts the warm worker processes of the local executor, and runs until SIGTERM or
Ctrl-C, then stops cleanly: running tries are reported lost (and retried or failed by the
next scheduler), the job row is closed. Logs go to stderr.
"""

from __future__ import annotations

import click

from tradewind.cli._engine import StopFlag, database_at_head, display_url, setup_logging
from tradewind.cli._output import echo_err
from tradewind.cli._state import CliState, pass_state

__all__ = ["scheduler"]


@click.command("scheduler")
@click.option(
    "--parallelism",
    type=click.IntRange(min=1),
    default=None,
    help="Task instances running at once (default: core.parallelism).",
)
@pass_state
def scheduler(state: CliState, parallelism: int | None) -> None:
    """Run the scheduler (with the local executor) until stopped."""
    import logging
    from pathlib import Path

    from tradewind.db.task_data import DbSecretsBackend, DbTaskDataService
    from tradewind.executors.local import LocalExecutor
    from tradewind.scheduler.job import Scheduler, SchedulerOptions
    from tradewind.sdk import secrets

    settings = state.settings()
    setup_logging(settings)
    database = database_at_head(settings)
    log = logging.getLogger("tradewind.scheduler")
    secrets.register_backend(DbSecretsBackend(database.session_factory, fernet=database.fernet))
    log_folder = Path(settings.logging.base_log_folder)
    executor = LocalExecutor(
        parallelism=parallelism or settings.core.parallelism,
        data=DbTaskDataService(
            database.session_factory,
            fernet=database.fernet,
            xcom_max_size=settings.core.xcom_max_size_bytes,
        ),
        log_folder=log_folder,
        dags_folder=state.effective_dags_folder(),
        dag_import_timeout=float(settings.core.dag_file_processor_timeout),
        stop_grace=float(settings.scheduler.task_stop_grace),
    )
    job = Scheduler(
        database.session_factory,
        executor,
        SchedulerOptions(
            max_map_length=settings.core.max_map_length,
            max_active_runs_per_dag=settings.core.max_active_runs_per_dag,
            max_active_tasks_per_dag=settings.core.max_active_tasks_per_dag,
            log_folder=log_folder,
            dead_after=float(settings.scheduler.scheduler_health_check_threshold),
        ),
    )
    stop = StopFlag("scheduler").install()
    job.start()
    log.info(
        "scheduler started (job %s, pid %s): database %s, parallelism %s, logs in %s",
        job.job_id,
        __import__("os").getpid(),
        display_url(settings),
        executor.parallelism,
        log_folder,
    )
    try:
        job.run(should_stop=lambda: stop() or job.lost_job)
    finally:
        log.info("stopping the scheduler")
        job.stop()
        database.dispose()
    echo_err("Scheduler stopped.")
