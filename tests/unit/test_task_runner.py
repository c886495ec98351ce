"""The task runtime: outcome states, retries, timeouts, callbacks, XCom pull/push, mapping,
secret masking, and the XCom codec."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tradewind.errors import TaskFailed, TaskSkipped, XComError
from tradewind.operators import EmptyOperator, PythonOperator
from tradewind.runtime import (
    InMemoryTaskClient,
    RunInfo,
    RuntimeTaskInstance,
    TaskInstanceInfo,
    TaskOutcome,
    run_task,
)
from tradewind.sdk import DAG, Connection, Param, secrets, task, task_group
from tradewind.serialization import xcom as codec
from tradewind.state import TaskState

START = datetime(2024, 1, 1, tzinfo=UTC)
RUN = RunInfo(
    dag_id="d",
    run_id="scheduled__2024-01-02",
    run_type="scheduled",
    logical_date=datetime(2024, 1, 2, tzinfo=UTC),
    data_interval_start=datetime(2024, 1, 2, tzinfo=UTC),
    data_interval_end=datetime(2024, 1, 3, tzinfo=UTC),
)


def run(
    dag: DAG,
    task_id: str,
    client: InMemoryTaskClient | None = None,
    *,
    run_info: RunInfo = RUN,
    map_index: int = -1,
    try_number: int = 1,
    max_tries: int | None = None,
    **kwargs: Any,
) -> TaskOutcome:
    info = TaskInstanceInfo(
        dag_id=dag.dag_id,
        task_id=task_id,
        run_id=run_info.run_id,
        map_index=map_index,
        try_number=try_number,
        max_tries=max_tries,
    )
    return run_task(
        dag.get_task(task_id),
        dag=dag,
        run=run_info,
        ti=info,
        client=client or InMemoryTaskClient(),
        **kwargs,
    )


def one_task_dag(fn: Any, **task_args: Any) -> DAG:
    with DAG("d", start_date=START) as dag:
        PythonOperator(task_id="t", python_callable=fn, **task_args)
    return dag


def boom() -> None:
    raise ValueError("boom")


@pytest.fixture
def clean_secrets():
    secrets.clear_masked_secrets()
    yield
    secrets.clear_masked_secrets()


# -- outcome states and retries -------------------------------------------------------------------


def test_failure_is_up_for_retry_while_tries_remain_then_failed() -> None:
    # given a failing task with two retries
    dag = one_task_dag(boom, retries=2)
    # when tries 1, 2 and 3 run
    states = [run(dag, "t", try_number=n).state for n in (1, 2, 3)]
    # expect retries for the first two and failure for the last
    assert states == [TaskState.UP_FOR_RETRY, TaskState.UP_FOR_RETRY, TaskState.FAILED]


def test_explicit_max_tries_overrides_task_retries() -> None:
    dag = one_task_dag(boom, retries=5)
    assert run(dag, "t", try_number=2, max_tries=1).state is TaskState.FAILED


def test_failure_outcome_carries_error_and_traceback() -> None:
    outcome = run(one_task_dag(boom), "t")
    assert outcome.state is TaskState.FAILED
    assert outcome.error == "ValueError: boom"
    assert "in boom" in (outcome.traceback or "")
    assert outcome.duration >= 0


def test_task_failed_fails_without_retry() -> None:
    def give_up() -> None:
        raise TaskFailed("bad input, retrying will not help")

    outcome = run(one_task_dag(give_up, retries=3), "t")
    assert outcome.state is TaskState.FAILED
    assert "bad input" in (outcome.error or "")


def test_task_skipped_marks_the_try_skipped() -> None:
    def skip() -> None:
        raise TaskSkipped("nothing to do today")

    outcome = run(one_task_dag(skip, retries=3), "t")
    assert (outcome.state, outcome.error) == (TaskState.SKIPPED, "nothing to do today")


def test_system_exit_in_task_code_is_a_failure_not_an_escape() -> None:
    def leave() -> None:
        raise SystemExit(3)

    assert run(one_task_dag(leave, retries=1), "t").state is TaskState.UP_FOR_RETRY


def test_keyboard_interrupt_escapes() -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(one_task_dag(interrupt), "t")


def test_template_error_is_a_retryable_failure() -> None:
    with DAG("d", start_date=START) as dag:
        PythonOperator(
            task_id="t", python_callable=lambda x: x, op_args=["{{ missing_name }}"], retries=1
        )
    outcome = run(dag, "t")
    assert outcome.state is TaskState.UP_FOR_RETRY
    assert "TemplateError" in (outcome.error or "")


def test_invalid_param_fails_and_callbacks_still_run() -> None:
    # given a param that the run's conf makes invalid, and a failure callback
    seen: list[Any] = []
    with DAG("d", start_date=START, params={"n": Param(1, type="integer")}) as dag:
        PythonOperator(task_id="t", python_callable=lambda: None, on_failure_callback=seen.append)
    bad_run = RunInfo(dag_id="d", run_id="manual__1", conf={"n": "x"})
    # when it runs / expect a failure, and the callback got a context with the exception
    outcome = run(dag, "t", run_info=bad_run)
    assert outcome.state is TaskState.FAILED
    assert "ParamValidationError" in (outcome.error or "")
    assert len(seen) == 1 and seen[0]["ti"].task_id == "t"
    assert type(seen[0]["exception"]).__name__ == "ParamValidationError"


# -- execution_timeout ----------------------------------------------------------------------------


class SlowOperator(PythonOperator):
    """Sleeps much longer than its timeout; records on_kill."""

    killed = threading.Event()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(python_callable=lambda: time.sleep(30), **kwargs)

    def on_kill(self) -> None:
        type(self).killed.set()


def test_execution_timeout_interrupts_execute_and_calls_on_kill() -> None:
    # given a slow task with a short timeout
    SlowOperator.killed.clear()
    with DAG("d", start_date=START) as dag:
        SlowOperator(task_id="t", execution_timeout=timedelta(milliseconds=200), retries=1)
    # when it runs on the main thread
    outcome = run(dag, "t")
    # expect a retryable timeout, and the operator told to clean up
    assert outcome.state is TaskState.UP_FOR_RETRY
    assert "TaskTimeout" in (outcome.error or "")
    assert SlowOperator.killed.is_set()


def test_execution_timeout_off_the_main_thread() -> None:
    SlowOperator.killed.clear()
    with DAG("d", start_date=START) as dag:
        SlowOperator(task_id="t", execution_timeout=timedelta(milliseconds=200))
    result: list[TaskOutcome] = []
    worker = threading.Thread(target=lambda: result.append(run(dag, "t")))
    worker.start()
    worker.join(20)
    assert result and result[0].state is TaskState.FAILED
    assert "execution_timeout" in (result[0].error or "")
    assert SlowOperator.killed.is_set()


def test_fast_task_with_timeout_succeeds() -> None:
    outcome = run(one_task_dag(lambda: "done", execution_timeout=timedelta(seconds=30)), "t")
    assert (outcome.state, outcome.return_value) == (TaskState.SUCCESS, "done")


# -- callbacks and hooks --------------------------------------------------------------------------


def test_hooks_and_callbacks_run_in_order_with_context() -> None:
    # given a task with every hook and callback recording itself
    calls: list[str] = []
    with DAG("d", start_date=START) as dag:
        PythonOperator(
            task_id="t",
            python_callable=lambda: calls.append("execute") or "result",
            pre_execute=lambda context: calls.append(f"pre:{context['ti'].task_id}"),
            on_execute_callback=lambda context: calls.append("on_execute"),
            post_execute=lambda context, result: calls.append(f"post:{result}"),
            on_success_callback=[
                lambda c: calls.append("success1"),
                lambda c: calls.append("success2"),
            ],
            on_failure_callback=lambda c: calls.append("failure"),
        )
    # when it succeeds / expect the documented order, and only the success callbacks
    assert run(dag, "t").state is TaskState.SUCCESS
    assert calls == ["pre:t", "on_execute", "execute", "post:result", "success1", "success2"]


def test_overridden_pre_and_post_execute_methods_run() -> None:
    calls: list[str] = []

    class Hooked(EmptyOperator):
        def pre_execute(self, context):
            calls.append("pre")

        def post_execute(self, context, result=None):
            calls.append("post")

    with DAG("d", start_date=START) as dag:
        Hooked(task_id="t")
    run(dag, "t")
    assert calls == ["pre", "post"]


@pytest.mark.parametrize(
    ("retries", "state", "callback"),
    [
        (1, TaskState.UP_FOR_RETRY, "on_retry_callback"),
        (0, TaskState.FAILED, "on_failure_callback"),
    ],
)
def test_failure_callbacks_receive_the_exception(
    retries: int, state: TaskState, callback: str
) -> None:
    seen: list[Any] = []
    dag = one_task_dag(
        boom, retries=retries, **{callback: lambda context: seen.append(context["exception"])}
    )
    outcome = run(dag, "t")
    assert outcome.state is state
    assert len(seen) == 1 and isinstance(seen[0], ValueError)


def test_skipped_callback_runs_on_skip() -> None:
    seen: list[str] = []

    def skip() -> None:
        raise TaskSkipped()

    run(one_task_dag(skip, on_skipped_callback=lambda c: seen.append(c["ti"].task_id)), "t")
    assert seen == ["t"]


def test_failing_callback_is_logged_and_does_not_change_the_outcome(caplog) -> None:
    def bad_callback(context):
        raise RuntimeError("callback broke")

    dag = one_task_dag(
        lambda: 1, on_success_callback=bad_callback, on_execute_callback=bad_callback
    )
    with caplog.at_level(logging.ERROR, logger="tradewind.task"):
        outcome = run(dag, "t")
    assert outcome.state is TaskState.SUCCESS
    assert "callback broke" in caplog.text


# -- XCom push ------------------------------------------------------------------------------------


def test_none_return_and_do_xcom_push_false_push_nothing() -> None:
    with DAG("d", start_date=START) as dag:
        PythonOperator(task_id="none", python_callable=lambda: None)
        PythonOperator(task_id="off", python_callable=lambda: 5, do_xcom_push=False)
    client = InMemoryTaskClient()
    assert run(dag, "none", client).state is TaskState.SUCCESS
    outcome = run(dag, "off", client)
    assert outcome.return_value == 5
    assert client.xcom_keys() == []


def test_unencodable_return_value_fails_naming_task_and_key() -> None:
    outcome = run(one_task_dag(lambda: object()), "t")
    assert outcome.state is TaskState.FAILED
    assert "XComError" in (outcome.error or "")
    assert "task 't'" in (outcome.error or "") and "key 'return_value'" in (outcome.error or "")


def test_multiple_outputs_needs_a_dict_with_str_keys() -> None:
    assert run(one_task_dag(lambda: [1], multiple_outputs=True), "t").state is TaskState.FAILED
    outcome = run(one_task_dag(lambda: {1: "a"}, multiple_outputs=True), "t")
    assert outcome.state is TaskState.FAILED
    assert "str keys" in (outcome.error or "")


def test_client_stores_encoded_json() -> None:
    client = InMemoryTaskClient()
    run(one_task_dag(lambda: {"when": date(2024, 1, 2)}), "t", client)
    raw = client.get_raw_xcom("d", RUN.run_id, "t", "return_value")
    assert json.loads(raw) == {"when": {"__tw_type__": "date", "value": "2024-01-02"}}


# -- xcom_pull ------------------------------------------------------------------------------------


def _ti(
    client: InMemoryTaskClient, task_id: str = "me", map_index: int = -1
) -> RuntimeTaskInstance:
    info = TaskInstanceInfo(dag_id="d", task_id=task_id, run_id="r", map_index=map_index)
    return RuntimeTaskInstance(info, task=None, client=client, max_tries=0)


@pytest.fixture
def pull_client() -> InMemoryTaskClient:
    client = InMemoryTaskClient()
    client.set_xcom("d", "r", "plain", "return_value", -1, "P")
    for i, v in enumerate(["m0", "m1", "m2"]):
        client.set_xcom("d", "r", "mapped", "return_value", i, v)
    client.set_xcom("d", "r", "me", "mine", -1, "own")
    client.set_xcom("d", "r", "me", "mine", 1, "own1")
    return client


def test_xcom_pull_single_task_gives_scalar_or_list_of_mapped_values(pull_client) -> None:
    ti = _ti(pull_client)
    assert ti.xcom_pull(task_ids="plain") == "P"
    assert ti.xcom_pull(task_ids="mapped") == ["m0", "m1", "m2"]
    assert ti.xcom_pull(task_ids="absent", default="ignored") is None


def test_xcom_pull_lists_keep_order_and_fill_gaps_with_default(pull_client) -> None:
    ti = _ti(pull_client)
    assert ti.xcom_pull(task_ids=["plain", "absent", "mapped"], default="-") == [
        "P",
        "-",
        "m0",
        "m1",
        "m2",
    ]
    assert ti.xcom_pull(task_ids="mapped", map_indexes=[2, 0, 7], default="-") == ["m2", "m0", "-"]
    assert ti.xcom_pull(task_ids="mapped", map_indexes=1) == "m1"
    assert ti.xcom_pull(task_ids=["plain"], map_indexes=-1) == ["P"]


class _CountingClient:
    """A client over an in-memory one that counts requests (round trips over a socket)."""

    def __init__(self, *, bulk: bool) -> None:
        self.inner = InMemoryTaskClient()
        self.reads = 0
        if bulk:
            self.get_xcom_values = self._values

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        if name == "get_xcom_values":
            raise AttributeError(name)  # a client without the bulk read
        return getattr(self.inner, name)

    def get_xcom(self, *args):  # type: ignore[no-untyped-def]
        self.reads += 1
        return self.inner.get_xcom(*args)

    def get_xcom_map_indexes(self, *args):  # type: ignore[no-untyped-def]
        self.reads += 1
        return self.inner.get_xcom_map_indexes(*args)

    def _values(self, *args):  # type: ignore[no-untyped-def]
        self.reads += 1
        return self.inner.get_xcom_values(*args)


@pytest.mark.parametrize("bulk", [True, False])
def test_xcom_pull_of_a_mapped_task_reads_every_value_at_once_when_it_can(bulk: bool) -> None:
    # given 50 mapped instances' values, and a client with or without the bulk read
    client = _CountingClient(bulk=bulk)
    for i in range(50):
        client.set_xcom("d", "r", "mapped", "return_value", i, i * 10)
    client.reads = 0
    # when a reduce pulls them all
    values = _ti(client).xcom_pull(task_ids="mapped")
    # expect them in map-index order, read in one request (else one per instance and a list)
    assert values == [i * 10 for i in range(50)]
    assert client.reads == (1 if bulk else 51)


def test_xcom_pull_without_task_ids_reads_own_value_at_own_index(pull_client) -> None:
    assert _ti(pull_client).xcom_pull(key="mine") == "own"
    assert _ti(pull_client, map_index=1).xcom_pull(key="mine") == "own1"


def test_xcom_push_then_pull_from_a_task(pull_client) -> None:
    seen: dict[str, Any] = {}

    def pusher(ti):
        ti.xcom_push(key="count", value=3)
        seen["back"] = ti.xcom_pull(key="count")

    client = InMemoryTaskClient()
    run(one_task_dag(pusher), "t", client)
    assert seen == {"back": 3}
    assert client.get_xcom("d", RUN.run_id, "t", "count", -1) == 3


# -- mapping --------------------------------------------------------------------------------------


def test_mapped_task_instance_gets_its_element() -> None:
    # given a task expanded over [10, 20, 30]
    with DAG("d", start_date=START) as dag:

        @task
        def double(x: int) -> int:
            return x * 2

        double.expand(x=[10, 20, 30])
    client = InMemoryTaskClient()
    # when index 1 runs
    outcome = run(dag, "double", client, map_index=1)
    # expect it got 20, and its value is stored at index 1
    assert outcome.return_value == 40
    assert client.get_xcom("d", RUN.run_id, "double", "return_value", 1) == 40


def test_mapped_classic_operator_over_upstream_output_is_not_rendered() -> None:
    # given a classic operator mapped over an upstream's list, one item looking like a template
    with DAG("d", start_date=START) as dag:

        @task
        def items() -> list[str]:
            return ["plain", "{{ undefined_thing }}"]

        PythonOperator.partial(task_id="show", python_callable=lambda x: x).expand(
            op_args=items().map(lambda v: [v])
        )
    client = InMemoryTaskClient()
    run(dag, "items", client)
    # when index 1 runs / expect the item passed through unrendered
    outcome = run(dag, "show", client, map_index=1)
    assert outcome.state is TaskState.SUCCESS, outcome.error
    assert outcome.return_value == "{{ undefined_thing }}"


def test_mapped_task_without_a_map_index_fails() -> None:
    with DAG("d", start_date=START) as dag:

        @task
        def f(x: int) -> int:
            return x

        f.expand(x=[1])
    outcome = run(dag, "f")
    assert outcome.state is TaskState.FAILED
    assert "map_index" in (outcome.error or "")


def test_reduce_task_reads_all_mapped_values() -> None:
    with DAG("d", start_date=START) as dag:

        @task
        def square(x: int) -> int:
            return x * x

        @task
        def total(values: list[int]) -> int:
            return sum(values)

        total(square.expand(x=[1, 2, 3]))
    client = InMemoryTaskClient()
    for i in range(3):
        run(dag, "square", client, map_index=i)
    assert run(dag, "total", client).return_value == 14


def test_mapped_task_group_instances_see_their_element_and_sibling_value() -> None:
    # given a group mapped over [1, 2, 3] with two chained tasks
    with DAG("d", start_date=START) as dag:

        @task
        def add_one(x: int) -> int:
            return x + 1

        @task
        def times_ten(y: int) -> int:
            return y * 10

        @task_group
        def pipeline(x: int):
            return times_ten(add_one(x))

        pipeline.expand(x=[1, 2, 3])
    client = InMemoryTaskClient()
    # when each instance of index 2 runs in order
    first = run(dag, "pipeline.add_one", client, map_index=2)
    second = run(dag, "pipeline.times_ten", client, map_index=2)
    # expect the group argument and the sibling value of the same index
    assert first.return_value == 4
    assert second.return_value == 40


# -- context, variables, connections, masking ------------------------------------------------------


def test_now_is_the_start_date_and_in_the_context() -> None:
    seen: dict[str, Any] = {}

    def look(ti, now):
        seen.update(start=ti.start_date, now=now)

    now = datetime(2024, 5, 5, 12, tzinfo=UTC)
    run(one_task_dag(look), "t", now=now)
    assert seen == {"start": now, "now": now}


def test_template_reads_variables_from_the_client() -> None:
    with DAG("d", start_date=START) as dag:
        PythonOperator(task_id="t", python_callable=lambda b: b, op_args=["{{ var.value.bucket }}"])
    client = InMemoryTaskClient(variables={"bucket": "s3://landing"})
    assert run(dag, "t", client).return_value == "s3://landing"


def test_hooks_see_client_connections_while_the_task_runs(clean_secrets) -> None:
    # given a connection known only to the client
    client = InMemoryTaskClient(
        connections={"wh": Connection(conn_id="wh", conn_type="sqlite", host="/tmp/x.db")}
    )
    dag = one_task_dag(lambda: secrets.get_connection("wh").host)
    # when a task looks it up the way hooks do / expect the client's connection
    assert run(dag, "t", client).return_value == "/tmp/x.db"
    # and afterwards the lookup no longer reaches the client
    with pytest.raises(KeyError):
        secrets.get_connection("wh")


def test_secrets_are_masked_in_task_logs_and_errors(caplog, clean_secrets) -> None:
    # given a connection with a password, used by a task that logs and raises it
    client = InMemoryTaskClient(connections={"db": "postgres://u:hunter2-long@h/db"})

    def leak(conn):
        password = conn.db.password
        logging.getLogger("tradewind.task").info("password is %s", password)
        raise RuntimeError(f"login failed with {password}")

    with caplog.at_level(logging.INFO, logger="tradewind.task"):
        outcome = run(one_task_dag(leak), "t", client)
    # expect the password replaced in the log, the error and the traceback
    assert "hunter2-long" not in caplog.text
    assert "password is ***" in caplog.text
    assert outcome.error == "RuntimeError: login failed with ***"
    assert "hunter2-long" not in (outcome.traceback or "")


# -- the XCom codec -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -3.5,
        "text ✓",
        [1, [2, [3]]],
        {"a": {"b": [1, None]}},
        (1, "two", (3,)),
        {1, 2, 3},
        frozenset({"x"}),
        b"\x00\xffbytes",
        Decimal("1.10"),
        date(2024, 2, 29),
        timedelta(days=-1, seconds=5, microseconds=7),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        {1: "int key", (1, 2): "tuple key"},
        {"__tw_type__": "user data", "x": 1},
        [float("inf"), float("-inf")],
    ],
)
def test_codec_round_trips(value: Any) -> None:
    decoded = codec.decode(codec.encode(value))
    assert decoded == value
    assert type(decoded) is type(value)


def test_codec_round_trips_nan() -> None:
    decoded = codec.decode(codec.encode(float("nan")))
    assert decoded != decoded


def test_codec_datetimes_keep_instant_and_zone() -> None:
    amsterdam = datetime(2024, 7, 1, 9, 30, tzinfo=ZoneInfo("Europe/Amsterdam"))
    back = codec.decode(codec.encode(amsterdam))
    assert back == amsterdam
    assert back.utcoffset() == timedelta(hours=2)
    assert str(back.tzinfo) == "Europe/Amsterdam"
    # a naive datetime is taken to be UTC
    assert codec.decode(codec.encode(datetime(2024, 1, 1))) == datetime(2024, 1, 1, tzinfo=UTC)


def test_codec_turns_pendulum_values_into_standard_ones() -> None:
    import pendulum

    dt = pendulum.datetime(2024, 1, 2, 3, tz="Europe/Paris")
    back = codec.decode(codec.encode({"when": dt, "span": pendulum.duration(hours=2)}))
    assert type(back["when"]) is datetime and back["when"] == dt
    assert back["span"] == timedelta(hours=2)


def test_codec_keeps_plain_json_readable() -> None:
    assert codec.encode({"a": [1, "b"]}) == '{"a":[1,"b"]}'


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (object(), "type builtins.object"),
        ({"fn": len}, "at value['fn']"),
        (datetime(2024, 1, 1).time().replace(tzinfo=UTC), "time of day"),
    ],
)
def test_codec_rejects_unencodable_values_naming_task_and_key(value: Any, fragment: str) -> None:
    with pytest.raises(XComError) as info:
        codec.encode(value, task_id="extract", key="rows")
    assert fragment in str(info.value)
    assert (info.value.task_id, info.value.key) == ("extract", "rows")
    assert "task 'extract'" in str(info.value) and "key 'rows'" in str(info.value)


def test_codec_rejects_cycles() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(XComError, match="cycle"):
        codec.encode(loop)


def test_codec_enforces_the_size_limit() -> None:
    codec.encode("x" * 100, max_size=200)
    with pytest.raises(XComError, match="more than the limit of 50 bytes"):
        codec.encode("x" * 100, max_size=50, task_id="t", key="k")


def test_client_applies_its_size_limit() -> None:
    client = InMemoryTaskClient(max_xcom_size=10)
    with pytest.raises(XComError):
        client.set_xcom("d", "r", "t", "k", -1, "a much longer value")


@pytest.mark.parametrize(
    "text", ["not json", '{"__tw_type__": "martian"}', '{"__tw_type__": "date"}']
)
def test_codec_decode_errors(text: str) -> None:
    with pytest.raises(XComError):
        codec.decode(text)


# -- work done ahead, once for many tries ---------------------------------------------------------


def test_a_dag_without_templates_never_builds_a_template_environment() -> None:
    from tradewind.runtime import prepare_dag

    dag = one_task_dag(lambda: 1, op_kwargs={"plain": "no markup here"})
    prepare_dag(dag)
    outcome = run(dag, "t")
    assert outcome.state is TaskState.SUCCESS
    assert dag._template_env is None


def test_prepare_dag_compiles_the_templates_its_tries_render() -> None:
    from tradewind.runtime import prepare_dag

    dag = one_task_dag(lambda day: day, op_kwargs={"day": "{{ ds }}"})
    prepare_dag(dag)
    env = dag._template_env
    assert env is not None
    assert "{{ ds }}" in env.__dict__["_tw_string_cache"]
    outcome = run(dag, "t")
    assert outcome.return_value == "2024-01-02"


def test_prepare_run_does_the_date_work_once_and_tries_share_it() -> None:
    from tradewind.runtime import prepare_run
    from tradewind.sdk.context import run_date_entries

    run_info = RunInfo(
        dag_id="d",
        run_id=f"scheduled__{uuid.uuid4().hex}",
        run_type="scheduled",
        logical_date=datetime(2031, 5, 6, tzinfo=UTC),
        data_interval_start=datetime(2031, 5, 6, tzinfo=UTC),
        data_interval_end=datetime(2031, 5, 7, tzinfo=UTC),
    )
    assert prepare_run(run_info) is True
    assert prepare_run(run_info) is False
    assert prepare_run(RunInfo(dag_id="d", run_id="manual")) is False  # no dates: nothing to do
    entries = run_date_entries(
        run_type="scheduled",
        logical_date=run_info.logical_date,  # type: ignore[arg-type]
        data_interval_start=run_info.data_interval_start,
        data_interval_end=run_info.data_interval_end,
    )
    assert entries["ds"] == "2031-05-06" and entries["next_ds"] == "2031-05-07"
    seen: list[Any] = []
    dag = one_task_dag(lambda logical_date: seen.append(logical_date))
    run(dag, "t", run_info=run_info)
    run(dag, "t", run_info=run_info)
    assert seen[0] is seen[1] is entries["logical_date"]


def test_tries_run_a_copy_of_the_task_whether_or_not_its_class_copies_plainly() -> None:
    import copy

    class Tagged(PythonOperator):
        copies = 0

        def __copy__(self) -> Tagged:
            type(self).copies += 1
            new = type(self).__new__(type(self))
            new.__dict__.update(self.__dict__)
            return new

    seen: list[Any] = []
    with DAG("d", start_date=START) as dag:
        plain = PythonOperator(task_id="plain", python_callable=lambda ti: seen.append(ti.task))
        Tagged(task_id="tagged", python_callable=lambda ti: seen.append(ti.task))
    assert run(dag, "plain").state is TaskState.SUCCESS
    assert run(dag, "tagged").state is TaskState.SUCCESS
    assert seen[0] is not plain and seen[0].__dict__.keys() == copy.copy(plain).__dict__.keys()
    assert Tagged.copies >= 1  # its own __copy__ was used


# -- XCom pushes held for the outcome -------------------------------------------------------------


class HoldingClient(InMemoryTaskClient):
    """Records when the runtime allowed pushes to be held, and what was pushed after."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def hold_xcom_pushes(self) -> None:
        self.events.append("hold")

    def set_xcom(self, dag_id, run_id, task_id, key, map_index, value) -> None:  # type: ignore[no-untyped-def]
        self.events.append(f"push {key}")
        super().set_xcom(dag_id, run_id, task_id, key, map_index, value)


def test_the_runtime_lets_the_client_hold_pushes_once_the_task_work_is_done() -> None:
    def work(ti: Any) -> int:
        ti.xcom_push("early", 1)
        return 2

    client = HoldingClient()
    outcome = run(one_task_dag(work), "t", client)
    assert outcome.state is TaskState.SUCCESS
    assert client.events == ["push early", "hold", "push return_value"]


def test_a_failed_task_never_holds_pushes() -> None:
    client = HoldingClient()
    assert run(one_task_dag(boom), "t", client).state is TaskState.FAILED
    assert "hold" not in client.events


def _pipe_pair() -> tuple[Any, Any]:
    import socket

    from tradewind.runtime.supervisor import PipeChannel

    ours, theirs = socket.socketpair()
    return PipeChannel(theirs), ours


def test_a_pipe_channel_sends_held_pushes_with_the_outcome() -> None:
    from tradewind.runtime.supervisor import read_frame

    channel, executor_side = _pipe_pair()
    executor_side.sendall(_reply(1, None))  # the answer to the request below
    channel.set_xcom("d", "r", "t", "early", -1, 1)  # not held yet: a request
    assert read_frame(executor_side)["key"] == "early"
    channel.hold_xcom_pushes()
    channel.set_xcom("d", "r", "t", "return_value", -1, {"rows": 3})
    channel.report(TaskOutcome(state=TaskState.SUCCESS), start_date=START, end_date=START)
    outcome = read_frame(executor_side)
    assert outcome["op"] == "outcome" and outcome["state"] == "success"
    assert [(x["key"], codec.decode(x["value"])) for x in outcome["xcoms"]] == [
        ("return_value", {"rows": 3})
    ]
    channel.close()
    executor_side.close()


def test_a_read_sends_the_held_pushes_first() -> None:
    from tradewind.runtime.supervisor import read_frame

    channel, executor_side = _pipe_pair()
    channel.hold_xcom_pushes()
    channel.set_xcom("d", "r", "t", "return_value", -1, 5)
    stored: dict[str, str] = {}

    def executor() -> None:
        for _ in range(2):
            request = read_frame(executor_side)
            if request["op"] == "set_xcom":
                stored[request["key"]] = request["value"]
                executor_side.sendall(_reply(request["id"], None))
            else:
                executor_side.sendall(_reply(request["id"], stored[request["key"]]))

    thread = threading.Thread(target=executor)
    thread.start()
    assert channel.get_xcom("d", "r", "t", "return_value", -1) == 5
    thread.join(5)
    channel.report(TaskOutcome(state=TaskState.SUCCESS), start_date=START, end_date=START)
    assert "xcoms" not in read_frame(executor_side)
    channel.close()
    executor_side.close()


def _reply(request_id: int, value: Any) -> bytes:
    from tradewind.runtime.supervisor import encode_frame

    return encode_frame({"id": request_id, "ok": True, "value": value})
