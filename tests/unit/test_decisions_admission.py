"""Admission: priority order, pools and pool slots, concurrency limits, executor slots."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tradewind.scheduler.decisions import (
    AdmissionResult,
    BlockerKind,
    Candidate,
    admit,
    priority_order,
)

DAY1 = datetime(2024, 1, 1, tzinfo=UTC)
DAY2 = datetime(2024, 1, 2, tzinfo=UTC)


def cand(task_id: str, **kwargs: Any) -> Candidate:
    kwargs.setdefault("dag_id", "d")
    kwargs.setdefault("run_id", "r1")
    kwargs.setdefault("logical_date", DAY1)
    return Candidate(task_id=task_id, **kwargs)


def ids(result: AdmissionResult) -> list[str]:
    return [
        c.task_id + (f"[{c.map_index}]" if c.map_index >= 0 else "") + f"@{c.run_id}"
        for c in result.admitted
    ]


def test_priority_then_logical_date_then_map_index() -> None:
    # given candidates of different weights, runs and map indexes
    cands = [
        cand("low", priority_weight=1),
        cand("m", priority_weight=5, map_index=2),
        cand("m", priority_weight=5, map_index=0),
        cand("newer", priority_weight=5, run_id="r2", logical_date=DAY2),
        cand("high", priority_weight=9),
        cand("older", priority_weight=5, run_id="r0", logical_date=DAY1 - timedelta(days=1)),
    ]
    # when all fit
    result = admit(cands, pool_free={"default_pool": 100}, executor_slots=100)
    # expect highest weight first, then the oldest run, then the lowest map index
    assert ids(result) == ["high@r1", "older@r0", "m[0]@r1", "m[2]@r1", "newer@r2", "low@r1"]
    assert result.held == {}


def test_pool_slots_are_consumed() -> None:
    # given a pool with 4 free slots and tasks taking 3, 2 and 1 slots
    cands = [
        cand("big", priority_weight=3, pool="etl", pool_slots=3),
        cand("mid", priority_weight=2, pool="etl", pool_slots=2),
        cand("small", priority_weight=1, pool="etl", pool_slots=1),
    ]
    result = admit(cands, pool_free={"etl": 4}, pool_total={"etl": 4}, executor_slots=10)
    # expect the big one, then the small one fits where the middle one did not
    assert ids(result) == ["big@r1", "small@r1"]
    held = result.held[("d", "r1", "mid", -1)]
    assert held.kind is BlockerKind.POOL
    assert str(held) == "pool 'etl' has 1 of 4 slots free; the task needs 2"


def test_full_pool_reason() -> None:
    result = admit([cand("t", pool="etl")], pool_free={"etl": 0}, pool_total={"etl": 4},
                   executor_slots=5)  # fmt: skip
    assert str(result.held[("d", "r1", "t", -1)]) == "pool 'etl' has 0 of 4 slots free"
    without_total = admit([cand("t", pool="etl")], pool_free={"etl": 0}, executor_slots=5)
    assert str(without_total.held[("d", "r1", "t", -1)]) == "pool 'etl' has 0 slots free"


def test_unknown_pool_and_oversized_tasks_are_held() -> None:
    result = admit(
        [cand("nowhere", pool="missing"), cand("huge", pool="etl", pool_slots=9)],
        pool_free={"etl": 4},
        pool_total={"etl": 4},
        executor_slots=5,
    )
    assert result.admitted == []
    assert "pool 'missing' does not exist" in str(result.held[("d", "r1", "nowhere", -1)])
    assert str(result.held[("d", "r1", "huge", -1)]) == (
        "the task needs 9 slots but pool 'etl' has only 4 in total"
    )


def test_max_active_tasks_per_run() -> None:
    cands = [cand(f"t{i}") for i in range(4)]
    result = admit(
        cands,
        pool_free={"default_pool": 128},
        executor_slots=10,
        run_active={("d", "r1"): 1},
        run_limit={("d", "r1"): 3},
    )
    assert len(result.admitted) == 2
    reason = result.held[("d", "r1", "t2", -1)]
    assert reason.kind is BlockerKind.CONCURRENCY
    assert str(reason) == (
        "DAG run 'r1' already has 3 of 3 task instances queued or running (max_active_tasks)"
    )


def test_max_active_tis_per_dag_and_per_run() -> None:
    cands = [
        cand("m", map_index=0),
        cand("m", map_index=1),
        cand("m", map_index=0, run_id="r2"),
        cand("m", map_index=1, run_id="r2"),
    ]
    per_dag = admit(
        cands,
        pool_free={"default_pool": 128},
        executor_slots=10,
        task_active_per_dag={("d", "m"): 1},
        task_limit_per_dag={("d", "m"): 2},
    )
    assert ids(per_dag) == ["m[0]@r1"]
    assert "max_active_tis_per_dag" in str(per_dag.held[("d", "r1", "m", 1)])

    per_run = admit(
        cands,
        pool_free={"default_pool": 128},
        executor_slots=10,
        task_limit_per_run={("d", "m"): 1},
    )
    assert ids(per_run) == ["m[0]@r1", "m[0]@r2"]
    assert str(per_run.held[("d", "r2", "m", 1)]) == (
        "task 'm' already has 1 of 1 instances queued or running in run 'r2' "
        "(max_active_tis_per_dagrun)"
    )


def test_executor_slots() -> None:
    result = admit([cand(f"t{i}") for i in range(3)], pool_free={"default_pool": 9},
                   executor_slots=2)  # fmt: skip
    assert len(result.admitted) == 2
    held = result.held[("d", "r1", "t2", -1)]
    assert held.kind is BlockerKind.EXECUTOR
    assert "no free slot" in str(held)


def test_ref_is_carried_but_not_compared() -> None:
    a, b = cand("t", ref="row-1"), cand("t", ref="row-2")
    assert a == b
    assert admit([a], pool_free={"default_pool": 1}, executor_slots=1).admitted[0].ref == "row-1"


def test_naive_logical_dates_sort_as_utc() -> None:
    naive = cand("n", logical_date=DAY2.replace(tzinfo=None))
    aware = cand("a", logical_date=DAY1)
    none = cand("x", logical_date=None)
    assert sorted([naive, aware, none], key=priority_order) == [none, aware, naive]


# -- properties ----------------------------------------------------------------------------------

candidates = st.lists(
    st.builds(
        Candidate,
        dag_id=st.sampled_from(["d1", "d2"]),
        run_id=st.sampled_from(["r1", "r2"]),
        task_id=st.sampled_from(["a", "b", "c"]),
        map_index=st.integers(min_value=-1, max_value=5),
        priority_weight=st.integers(min_value=-3, max_value=3),
        logical_date=st.sampled_from([None, DAY1, DAY2]),
        pool=st.sampled_from(["p1", "p2", "p3"]),
        pool_slots=st.integers(min_value=1, max_value=3),
    ),
    max_size=30,
    unique_by=lambda c: c.key,
)
small = st.integers(min_value=0, max_value=4)
run_keys = [(d, r) for d in ("d1", "d2") for r in ("r1", "r2")]
task_keys = [(d, t) for d in ("d1", "d2") for t in ("a", "b", "c")]


@settings(max_examples=200)
@given(
    cands=candidates,
    pool_free=st.fixed_dictionaries({"p1": small, "p2": st.integers(0, 8)}),
    executor_slots=st.integers(min_value=0, max_value=12),
    run_limit=st.dictionaries(st.sampled_from(run_keys), small),
    run_active=st.dictionaries(st.sampled_from(run_keys), small),
    dag_limit=st.dictionaries(st.sampled_from(task_keys), small),
    dag_active=st.dictionaries(st.sampled_from(task_keys), small),
    task_run_limit=st.dictionaries(st.sampled_from(task_keys), small),
)
def test_admission_never_exceeds_any_limit(
    cands: list[Candidate],
    pool_free: dict[str, int],
    executor_slots: int,
    run_limit: dict[tuple[str, str], int],
    run_active: dict[tuple[str, str], int],
    dag_limit: dict[tuple[str, str], int],
    dag_active: dict[tuple[str, str], int],
    task_run_limit: dict[tuple[str, str], int],
) -> None:
    result = admit(
        cands,
        pool_free=pool_free,
        executor_slots=executor_slots,
        run_active=run_active,
        run_limit=run_limit,
        task_active_per_dag=dag_active,
        task_limit_per_dag=dag_limit,
        task_limit_per_run=task_run_limit,
    )
    admitted = result.admitted
    # every candidate is either admitted or held, never both
    assert len(admitted) + len(result.held) == len(cands)
    assert not ({c.key for c in admitted} & set(result.held))
    # no limit is exceeded
    assert len(admitted) <= executor_slots
    slots: Counter[str] = Counter()
    for c in admitted:
        slots[c.pool] += c.pool_slots
    for pool, used in slots.items():
        assert pool in pool_free and used <= pool_free[pool]
    per_run = Counter(c.run_key for c in admitted)
    for key, count in per_run.items():
        if key in run_limit:
            assert run_active.get(key, 0) + count <= run_limit[key]
    per_dag = Counter(c.task_key for c in admitted)
    for key, count in per_dag.items():
        if key in dag_limit:
            assert dag_active.get(key, 0) + count <= dag_limit[key]
    per_task_run = Counter(c.task_run_key for c in admitted)
    for key, count in per_task_run.items():
        limit = task_run_limit.get((key[0], key[2]))
        if limit is not None:
            assert count <= limit
    # admitted ones come in priority order
    assert admitted == sorted(admitted, key=priority_order)
    # a held candidate would break a limit if it were added now
    left = {p: pool_free[p] - slots[p] for p in pool_free}
    for c in cands:
        if c.key not in result.held:
            continue
        fits = (
            c.pool in left
            and left[c.pool] >= c.pool_slots
            and len(admitted) < executor_slots
            and (c.run_key not in run_limit
                 or run_active.get(c.run_key, 0) + per_run[c.run_key] < run_limit[c.run_key])
            and (c.task_key not in dag_limit
                 or dag_active.get(c.task_key, 0) + per_dag[c.task_key] < dag_limit[c.task_key])
            and (c.task_key not in task_run_limit
                 or per_task_run[c.task_run_key] < task_run_limit[c.task_key])
        )  # fmt: skip
        assert not fits, (c, result.held[c.key])
