"""Branching on the logical date, labelled edges, a join, and a short-circuit.

Business days need a full refresh of the reporting tables; weekends only a small top-up.
``choose_load_strategy`` (a ``@task.branch``) looks at the run's logical date, the first day
of its data interval, and returns what to follow:

* Monday to Friday: ``"full_refresh"``, the id of a task group, which stands for the group's
  first tasks;
* Saturday and Sunday: ``"weekend_top_up"``, a task id.

Direct downstream tasks that were not chosen are skipped, and the skip flows on through tasks
with the default trigger rule (``all_success``). ``Label`` names the edges in the graph view;
it does not change how anything runs.

``publish`` joins both paths. With the default rule it would be skipped on every run, because
one of its upstream paths is always skipped; ``none_failed_min_one_success`` makes it run when
at least one upstream succeeded and none failed.

After the join, ``is_month_end`` (a ``ShortCircuitOperator``) lets ``close_month`` run only
for the last day of a month; on other days it skips everything downstream of it, and the run
still ends successfully.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tradewind import DAG, Label, TaskGroup, TriggerRule, task
from tradewind.operators import ShortCircuitOperator


@task.branch
def choose_load_strategy(logical_date: Any = None) -> str:
    """Follow the full refresh on weekdays and the top-up on weekends."""
    if logical_date.weekday() < 5:  # Monday is 0, Saturday 5
        return "full_refresh"
    return "weekend_top_up"


@task
def reload_orders(ds: str | None = None) -> str:
    """Weekday path, step 1: reload the day's orders in full."""
    return f"orders reloaded for {ds}"


@task
def rebuild_aggregates(reloaded: str) -> str:
    """Weekday path, step 2: rebuild the aggregates from the reloaded orders."""
    return f"aggregates rebuilt ({reloaded})"


@task
def weekend_top_up(ds: str | None = None) -> str:
    """Weekend path: append the few late orders only."""
    return f"late orders appended for {ds}"


@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
def publish(ti: Any = None) -> str:
    """Join: runs after whichever path was taken, and says which one."""
    strategy = ti.xcom_pull(task_ids="choose_load_strategy")
    return f"dashboard published after {strategy}"


def is_last_day_of_month(logical_date: Any = None) -> bool:
    """True when the logical date is the last day of its month."""
    return (logical_date + timedelta(days=1)).month != logical_date.month


@task
def close_month(ds: str | None = None) -> str:
    """Month-end bookkeeping, reached only through the short-circuit."""
    return f"month closed on {ds}"


with DAG(
    "example_branching",
    description="Weekday/weekend branch with labelled edges, a join and a month-end short-circuit",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
    tags=["example", "branching"],
    doc_md=__doc__,
) as dag:
    choose = choose_load_strategy()

    with TaskGroup("full_refresh", tooltip="Weekdays: reload and rebuild") as full_refresh:
        rebuild_aggregates(reload_orders())
    top_up = weekend_top_up()

    choose >> Label("Mon-Fri: full refresh") >> full_refresh
    choose >> Label("Sat-Sun: top-up only") >> top_up

    joined = publish()
    [full_refresh, top_up] >> joined

    is_month_end = ShortCircuitOperator(
        task_id="is_month_end", python_callable=is_last_day_of_month
    )
    joined >> Label("last day of the month?") >> is_month_end >> close_month()
