"""``BashOperator``: run a shell command with ``bash -c``; ``@task.bash`` builds the command
with a function.

The command runs in a fresh temporary directory (unless ``cwd`` is given) in its own process
group, with stderr merged into stdout. Each output line goes to the task log (logger
``tradewind.task``) as soon as it is printed, and the last line is the task's return value::

    BashOperator(task_id="count", bash_command="wc -l < {{ params.path }}")

Exit codes: 0 succeeds; a code in ``skip_on_exit_code`` (99 by default) marks the try
skipped; any other code fails it (retryable) with :class:`~tradewind.errors.CommandFailed`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from tradewind.errors import CommandFailed, InvalidArgumentError, TaskSkipped, TradewindError
from tradewind.sdk.baseoperator import BaseOperator

if TYPE_CHECKING:
    import subprocess

    from tradewind.sdk.context import Context

__all__ = ["BashOperator", "DecoratedBashOperator"]

log = logging.getLogger("tradewind.task")

#: How long on_kill waits after SIGTERM before it sends SIGKILL.
KILL_GRACE_SECONDS = 5.0


def _identity(value: str) -> Any:
    return value


def _exit_codes(value: int | Collection[int] | None, owner: str) -> frozenset[int]:
    if value is None:
        return frozenset()
    if isinstance(value, int) and not isinstance(value, bool):
        return frozenset({value})
    if isinstance(value, Collection) and not isinstance(value, str | bytes):
        codes = list(value)
        if all(isinstance(c, int) and not isinstance(c, bool) for c in codes):
            return frozenset(codes)
    raise InvalidArgumentError(
        f"{owner}: skip_on_exit_code must be an exit code, a list of them or None, got {value!r}",
        argument="skip_on_exit_code",
        owner=owner,
    )


class BashOperator(BaseOperator):
    """Run ``bash_command`` with ``bash -c`` (see the module docstring).

    Arguments: ``bash_command`` (templated; a value ending in ``.sh`` or ``.bash`` names a
    template file on the DAG's template search path); ``env`` (templated; None inherits the
    worker's environment, a dict replaces it unless ``append_env=True``); ``append_env``;
    ``output_encoding`` (default utf-8); ``skip_on_exit_code`` (int, list or None; default 99);
    ``cwd`` (templated; default a temporary directory removed afterwards);
    ``output_processor`` (applied to the last line before it is returned).

    The ``AIRFLOW_CTX_*`` / ``TRADEWIND_CTX_*`` variables describing the task are always
    added to the environment.
    """

    template_fields: ClassVar[Sequence[str]] = ("bash_command", "env", "cwd")
    template_fields_renderers: ClassVar[dict[str, str]] = {"bash_command": "bash", "env": "json"}
    template_ext: ClassVar[Sequence[str]] = (".sh", ".bash")
    ui_color = "#f0ede4"

    def __init__(
        self,
        *,
        bash_command: str,
        env: Mapping[str, str] | None = None,
        append_env: bool = False,
        output_encoding: str = "utf-8",
        skip_on_exit_code: int | Collection[int] | None = 99,
        cwd: str | None = None,
        output_processor: Callable[[str], Any] = _identity,
        **kwargs: Any,
    ) -> None:
        owner = f"{type(self).__name__}(task_id={kwargs.get('task_id')!r})"
        codes = _exit_codes(skip_on_exit_code, owner)
        super().__init__(**kwargs)
        self.bash_command = bash_command
        self.env = env
        self.append_env = append_env
        self.output_encoding = output_encoding
        self.skip_on_exit_code = skip_on_exit_code
        self._skip_codes = codes
        self.cwd = cwd
        self.output_processor = output_processor
        self._process: subprocess.Popen[bytes] | None = None

    # -- environment -------------------------------------------------------------------------
    def get_env(self, context: Context) -> dict[str, str]:
        """The environment the command runs with (see the class docstring)."""
        from tradewind.sdk.context import context_to_airflow_vars

        if self.env is None:
            env = dict(os.environ)
        else:
            if not isinstance(self.env, Mapping):
                raise InvalidArgumentError(
                    f"task {self.task_id!r}: env must be a dict, got {type(self.env).__name__}",
                    argument="env",
                    owner=self.task_id,
                )
            env = {**os.environ, **self.env} if self.append_env else dict(self.env)
        bad = sorted(k for k, v in env.items() if not isinstance(k, str) or not isinstance(v, str))
        if bad:
            raise InvalidArgumentError(
                f"task {self.task_id!r}: environment variables must be strings; not so for "
                f"{', '.join(map(repr, bad))}",
                argument="env",
                owner=self.task_id,
            )
        env.update(context_to_airflow_vars(context))
        return env

    @contextlib.contextmanager
    def _working_dir(self) -> Iterator[str]:
        if self.cwd is not None:
            if not os.path.isdir(self.cwd):
                raise TradewindError(
                    f"task {self.task_id!r}: cwd {self.cwd!r} does not exist or is not a directory"
                )
            yield self.cwd
            return
        with tempfile.TemporaryDirectory(prefix="tradewind-bash-") as tmp:
            yield tmp

    # -- running -----------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        """Run the command, stream its output to the log and return the last line."""
        command = self.bash_command
        if not isinstance(command, str) or not command.strip():
            raise InvalidArgumentError(
                f"task {self.task_id!r}: bash_command must be a non-empty string, got {command!r}",
                argument="bash_command",
                owner=self.task_id,
            )
        import shutil  # loaded when a command runs, not when a DAG file is parsed

        bash = shutil.which("bash")
        if bash is None:
            raise TradewindError(f"task {self.task_id!r}: bash was not found on PATH")
        env = self.get_env(context)
        with self._working_dir() as cwd:
            exit_code, last_line = self._run(bash, command, env, cwd)
        if exit_code in self._skip_codes:
            raise TaskSkipped(f"bash command exited with code {exit_code}: the task is skipped")
        if exit_code != 0:
            raise CommandFailed(
                f"task {self.task_id!r}: bash command failed with exit code {exit_code}",
                exit_code=exit_code,
                command=command,
            )
        return self.output_processor(last_line)

    def _run(self, bash: str, command: str, env: dict[str, str], cwd: str) -> tuple[int, str]:
        import subprocess

        log.info("Running command: %s", command)
        process = subprocess.Popen(
            [bash, "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,  # its own process group, so on_kill reaches children too
        )
        self._process = process
        last_line = ""
        try:
            assert process.stdout is not None
            for raw in iter(process.stdout.readline, b""):
                last_line = raw.decode(self.output_encoding, errors="backslashreplace").rstrip("\n")
                log.info("%s", last_line)
            exit_code = process.wait()
        except BaseException:
            # A timeout or interrupt raised while reading: do not leave the command running.
            self._kill(process)
            raise
        finally:
            if process.stdout is not None:
                process.stdout.close()
        log.info("Command exited with return code %s", exit_code)
        return exit_code, last_line

    def _kill(self, process: subprocess.Popen[bytes]) -> None:
        import subprocess

        if process.poll() is not None:
            return
        log.info("Sending SIGTERM to the command's process group")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            log.info("The command ignored SIGTERM; sending SIGKILL")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def on_kill(self) -> None:
        """Terminate the command's whole process group (SIGTERM, then SIGKILL)."""
        if self._process is not None:
            self._kill(self._process)


#: Placeholder command of ``@task.bash`` tasks until the function has run.
_COMMAND_FROM_FUNCTION = "<the command returned by the @task.bash function>"


class DecoratedBashOperator(BashOperator):
    """The operator behind ``@task.bash``: the function returns the command to run.

    At run time the function is called like a ``@task`` function (its arguments resolved,
    context values passed by parameter name). It must return a non-empty string, which is
    then rendered with Jinja against the context and run as a :class:`BashOperator` command::

        @task.bash(env={"LIMIT": "10"})
        def count(path: str) -> str:
            return f"wc -l < {path} && echo {{{{ ds }}}}"
    """

    custom_operator_name = "@task.bash"
    # bash_command is not rendered up front: it exists only once the function has run.
    template_fields: ClassVar[Sequence[str]] = ("op_args", "op_kwargs", "env", "cwd")
    template_fields_renderers: ClassVar[dict[str, str]] = {
        "bash_command": "bash",
        "env": "json",
        "op_args": "py",
        "op_kwargs": "py",
    }

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not callable(python_callable):
            raise InvalidArgumentError(
                f"@task.bash needs a function, got {python_callable!r}", argument="python_callable"
            )
        kwargs.setdefault("bash_command", _COMMAND_FROM_FUNCTION)
        super().__init__(**kwargs)
        self.python_callable = python_callable
        self.op_args: Any = list(op_args) if op_args is not None else []
        self.op_kwargs: Any = dict(op_kwargs) if op_kwargs is not None else {}

    def execute(self, context: Context) -> Any:
        """Call the function, render the command it returns, then run it."""
        from tradewind.operators.python import call_python, determine_task_kwargs
        from tradewind.sdk.templating import render_value

        if not isinstance(self.op_kwargs, Mapping) or not isinstance(self.op_args, list | tuple):
            raise InvalidArgumentError(
                f"task {self.task_id!r}: op_args must be a list and op_kwargs a dict",
                owner=self.task_id,
            )
        offered = {**context, **self.op_kwargs}
        kwargs = determine_task_kwargs(self.python_callable, self.op_args, offered)
        command = call_python(self.python_callable, self.op_args, kwargs)
        if not isinstance(command, str) or not command.strip():
            raise InvalidArgumentError(
                f"task {self.task_id!r}: the @task.bash function must return a non-empty string "
                f"(the command), got {command!r}",
                argument="bash_command",
                owner=self.task_id,
            )
        self.bash_command = render_value(
            command, context, self.get_template_env(), template_ext=self.template_ext
        )
        return super().execute(context)
