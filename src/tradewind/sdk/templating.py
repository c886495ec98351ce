"""Jinja templating of task fields (Airflow-compatible).

Only the attributes named in a task's ``template_fields`` are rendered, recursively through
strings, lists, tuples, sets, dict values and nested objects with their own
``template_fields``. A string ending in one of the task's ``template_ext`` (``.sql``, ``.sh``
...) names a template file found on the search path. XCom references (anything with a
``resolve(context)`` method) are resolved to their value, which is not rendered further::

    env = create_template_env(searchpath=["/opt/dags/sql"])
    render_value({"day": "{{ ds }}", "next": "{{ macros.ds_add(ds, 1) }}"}, context, env)
    # -> {"day": "2024-01-02", "next": "2024-01-03"}

Environments are sandboxed and use ``StrictUndefined`` by default, so a misspelt name fails
the task with a :class:`~tradewind.errors.TemplateError` naming the task and field, instead
of rendering an empty string.

One deliberate difference from Airflow: a string with no Jinja markup (``{{``, ``{%``,
``{#``) is returned unchanged, without a render pass; so a trailing newline is kept and, in
native mode, ``"123"`` stays a string.

jinja2 is imported only when an environment is first created.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from tradewind.errors import TaskFailed, TaskSkipped, TaskTimeout, TemplateError
from tradewind.sdk.macros import (
    format_ds,
    format_ds_nodash,
    format_ts,
    format_ts_nodash,
    format_ts_nodash_with_tz,
    macros,
)
from tradewind.sdk.params import Param

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "create_template_env",
    "precompile",
    "render_template_fields",
    "render_template_string",
    "render_value",
    "template_sources",
]

_MARKERS = ("{{", "{%", "{#")
_STRING_CACHE_SIZE = 512
_ENV_CACHE_SIZE = 32

# Errors that a template may raise on purpose to end the try; they pass through unwrapped.
_PASS_THROUGH: tuple[type[BaseException], ...] = (TaskSkipped, TaskFailed, TaskTimeout)

FILTERS: dict[str, Callable[[Any], Any]] = {
    "ds": format_ds,
    "ds_nodash": format_ds_nodash,
    "ts": format_ts,
    "ts_nodash": format_ts_nodash,
    "ts_nodash_with_tz": format_ts_nodash_with_tz,
}


@lru_cache(maxsize=1)
def _environment_classes() -> tuple[type[jinja2.Environment], type[jinja2.Environment]]:
    """(sandboxed, sandboxed native) environment classes, defined on first use."""
    from jinja2.nativetypes import NativeEnvironment
    from jinja2.sandbox import SandboxedEnvironment, is_internal_attribute

    class _TemplateCacheMixin:
        """Caches compiled inline templates: the same field strings render on every try."""

        def compile_string(self, source: str) -> jinja2.Template:
            cache: OrderedDict[str, jinja2.Template] = self.__dict__.setdefault(
                "_tw_string_cache", OrderedDict()
            )
            template = cache.get(source)
            if template is None:
                template = self.from_string(source)  # type: ignore[attr-defined]
                cache[source] = template
                if len(cache) > _STRING_CACHE_SIZE:
                    cache.popitem(last=False)
            return template

    class TradewindSandboxedEnvironment(_TemplateCacheMixin, SandboxedEnvironment):
        """Sandboxed; attributes with one leading underscore are allowed, dunders are not."""

        def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
            return not (attr.startswith("__") or is_internal_attribute(obj, attr))

    class TradewindNativeSandboxedEnvironment(TradewindSandboxedEnvironment, NativeEnvironment):
        """Sandboxed, and renders to Python objects (``"{{ [1, 2] }}"`` -> ``[1, 2]``)."""

    return TradewindSandboxedEnvironment, TradewindNativeSandboxedEnvironment


_env_cache: OrderedDict[tuple[Any, ...], tuple[Any, Any, jinja2.Environment]] = OrderedDict()
_env_cache_lock = threading.Lock()


def create_template_env(
    *,
    searchpath: Iterable[str] = (),
    native: bool = False,
    user_defined_macros: Mapping[str, Any] | None = None,
    user_defined_filters: Mapping[str, Callable[..., Any]] | None = None,
    undefined_strict: bool = True,
) -> jinja2.Environment:
    """A sandboxed Jinja environment for rendering task templates.

    It has ``StrictUndefined`` (unless ``undefined_strict=False``), the ``do`` extension, a
    file loader over ``searchpath`` (in order), the filters ``ds``, ``ds_nodash``, ``ts``,
    ``ts_nodash`` and ``ts_nodash_with_tz``, ``macros`` as a global, ``user_defined_macros``
    as globals and ``user_defined_filters`` as filters. ``native=True`` renders to Python
    objects instead of strings.

    Environments are cached by search path, mode and the identity of the macro and filter
    mappings, so a DAG's tasks share one; treat the result as read-only.
    """
    paths = tuple(str(p) for p in searchpath)
    key = (paths, native, id(user_defined_macros), id(user_defined_filters), undefined_strict)
    with _env_cache_lock:
        hit = _env_cache.get(key)
        # The cache holds the mappings themselves, so an id can't be reused while cached.
        if hit is not None and hit[0] is user_defined_macros and hit[1] is user_defined_filters:
            _env_cache.move_to_end(key)
            return hit[2]
    env = _build_env(paths, native, user_defined_macros, user_defined_filters, undefined_strict)
    with _env_cache_lock:
        _env_cache[key] = (user_defined_macros, user_defined_filters, env)
        if len(_env_cache) > _ENV_CACHE_SIZE:
            _env_cache.popitem(last=False)
    return env


def _build_env(
    paths: tuple[str, ...],
    native: bool,
    user_defined_macros: Mapping[str, Any] | None,
    user_defined_filters: Mapping[str, Callable[..., Any]] | None,
    undefined_strict: bool,
) -> jinja2.Environment:
    import jinja2

    sandboxed, native_sandboxed = _environment_classes()
    cls = native_sandboxed if native else sandboxed
    env = cls(
        loader=jinja2.FileSystemLoader(list(paths)),
        undefined=jinja2.StrictUndefined if undefined_strict else jinja2.Undefined,
        extensions=["jinja2.ext.do"],
        autoescape=False,
    )
    env.filters.update(FILTERS)
    env.globals["macros"] = macros
    if user_defined_macros:
        env.globals.update(user_defined_macros)
    if user_defined_filters:
        env.filters.update(user_defined_filters)
    return env


# -- rendering ---------------------------------------------------------------------------------


def _class_attr(value: Any, name: str) -> Any:
    """An attribute looked up without triggering ``__getattr__`` (accessor objects in the
    context turn unknown attributes into variable or connection look-ups)."""
    found = getattr(type(value), name, None)
    if found is None:
        found = getattr(value, "__dict__", {}).get(name)
    return found


def _as_field_names(fields: Any) -> tuple[str, ...]:
    # A common slip is ``template_fields = ("sql")``, which is a plain string.
    if isinstance(fields, str):
        return (fields,)
    return tuple(fields or ())


class _LazyEnv:
    """A task's environment, built on first use: most templated fields hold no Jinja at all,
    and a task process then never builds an environment (nor imports jinja2)."""

    __slots__ = ("_env", "_task")

    def __init__(self, task: Any) -> None:
        self._task = task
        self._env: jinja2.Environment | None = None

    def get(self) -> jinja2.Environment:
        if self._env is None:
            self._env = _task_env(self._task)
        return self._env

    @property
    def built(self) -> jinja2.Environment | None:
        return self._env


def _resolve_env(source: Any) -> jinja2.Environment:
    env: jinja2.Environment = source.get() if isinstance(source, _LazyEnv) else source
    return env


def _render(
    value: Any,
    context: Mapping[str, Any],
    env: Any,
    template_ext: tuple[str, ...],
    seen: set[int],
) -> Any:
    if isinstance(value, str):
        if template_ext and value.endswith(template_ext):
            result = _resolve_env(env).get_template(value).render(context)
        elif not any(marker in value for marker in _MARKERS):
            return value
        else:
            real_env = _resolve_env(env)
            compile_string = getattr(real_env, "compile_string", None)
            template = compile_string(value) if compile_string else real_env.from_string(value)
            result = template.render(context)
        return result if isinstance(result, str) else _settle_native(result)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, list):
        return [_render(v, context, env, template_ext, seen) for v in value]
    if isinstance(value, tuple):
        items = [_render(v, context, env, template_ext, seen) for v in value]
        if hasattr(value, "_fields"):  # a namedtuple keeps its type
            return type(value)(*items)
        return tuple(items)
    if isinstance(value, (set, frozenset)):
        return type(value)(_render(v, context, env, template_ext, seen) for v in value)
    if isinstance(value, dict):
        return {k: _render(v, context, env, template_ext, seen) for k, v in value.items()}
    if isinstance(value, (Param, type)):
        return value
    resolve = _class_attr(value, "resolve")
    if callable(resolve):
        # XCom values are data: rendering them would let task output inject templates.
        return value.resolve(context)
    nested_fields = _class_attr(value, "template_fields")
    if nested_fields is not None:
        if id(value) not in seen:
            seen.add(id(value))
            nested_ext = _class_attr(value, "template_ext")
            ext = tuple(nested_ext) if nested_ext is not None else template_ext
            for name in _as_field_names(nested_fields):
                current = getattr(value, name)
                if current:
                    setattr(value, name, _render(current, context, env, ext, seen))
        return value
    return value


def _settle_native(value: Any) -> Any:
    """Native rendering hands back Undefined objects instead of raising; raise now (strict
    mode, or an unsafe attribute) or turn them into None (lenient mode), also inside
    containers."""
    from jinja2 import Undefined

    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises here, with Jinja's message
        return None
    if isinstance(value, list):
        return [_settle_native(v) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_settle_native(v) for v in value)
    if isinstance(value, dict):
        return {k: _settle_native(v) for k, v in value.items()}
    return value


def _describe(exc: BaseException, env: jinja2.Environment | None) -> str:
    if env is None:  # no template was rendered: the failure is not Jinja's
        return f"cannot render template: {type(exc).__name__}: {exc}"
    import jinja2

    if isinstance(exc, jinja2.TemplateNotFound):
        loader = env.loader
        paths = list(getattr(loader, "searchpath", []) or [])
        return f"template file {exc.name!r} not found in the template search path {paths}"
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = f"line {exc.lineno}" + (f" of {exc.name}" if exc.name else "")
        return f"template syntax error at {where}: {exc.message}"
    if isinstance(exc, jinja2.TemplateError):
        return f"cannot render template: {exc.message or type(exc).__name__}"
    return f"cannot render template: {type(exc).__name__}: {exc}"


def render_value(
    value: Any,
    context: Mapping[str, Any],
    env: jinja2.Environment,
    *,
    template_ext: Sequence[str] = (),
) -> Any:
    """Render ``value`` against ``context`` and return the result (see the module docstring).

    Nested objects with ``template_fields`` are rendered in place and returned as they are.
    Any failure raises :class:`~tradewind.errors.TemplateError` with Jinja's message.
    """
    try:
        return _render(value, context, env, tuple(template_ext), set())
    except _PASS_THROUGH:
        raise
    except Exception as exc:
        raise TemplateError(_describe(exc, env)) from exc


def _task_env(task: Any) -> jinja2.Environment:
    dag = getattr(task, "dag", None)
    get_env = getattr(dag, "get_template_env", None) if dag is not None else None
    if callable(get_env):
        env: jinja2.Environment = get_env()
        return env
    return create_template_env()


def render_template_fields(
    task: Any, context: Mapping[str, Any], env: jinja2.Environment | None = None
) -> None:
    """Render every attribute named in ``task.template_fields`` in place.

    Uses ``task.template_ext`` for template files, and ``env`` or else the environment of
    ``task.dag`` (``get_template_env()``), or a default one. Empty values are left alone.
    A failure raises :class:`~tradewind.errors.TemplateError` naming the task and field.
    """
    task_id = getattr(task, "task_id", None)
    source: Any = env if env is not None else _LazyEnv(task)
    template_ext = tuple(getattr(task, "template_ext", ()) or ())
    seen = {id(task)}
    for field in _as_field_names(getattr(task, "template_fields", ())):
        try:
            current = getattr(task, field)
        except AttributeError:
            raise TemplateError(
                f"{field!r} is listed in template_fields but the task has no such attribute",
                task_id=task_id,
                field=field,
            )
        if not current:
            continue
        try:
            rendered = _render(current, context, source, template_ext, seen)
        except _PASS_THROUGH:
            raise
        except Exception as exc:
            built = source.built if isinstance(source, _LazyEnv) else source
            raise TemplateError(_describe(exc, built), task_id=task_id, field=field) from exc
        setattr(task, field, rendered)


def render_template_string(
    source: str, context: Mapping[str, Any], env: jinja2.Environment | None = None
) -> Any:
    """Render one template string (with a default environment unless ``env`` is given)."""
    return render_value(source, context, env if env is not None else create_template_env())


# -- preparing ahead ---------------------------------------------------------------------------


def _collect_sources(
    value: Any, template_ext: tuple[str, ...], out: list[str], seen: set[int], depth: int
) -> None:
    if depth > 20:
        return
    if isinstance(value, str):
        if (template_ext and value.endswith(template_ext)) or any(m in value for m in _MARKERS):
            out.append(value)
        return
    if isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _collect_sources(item, template_ext, out, seen, depth + 1)
        return
    if isinstance(value, dict):
        for item in value.values():
            _collect_sources(item, template_ext, out, seen, depth + 1)
        return
    if value is None or isinstance(value, (int, float, Param, type)):
        return
    if callable(_class_attr(value, "resolve")):
        return  # an XCom reference: data, never rendered
    nested_fields = _class_attr(value, "template_fields")
    if nested_fields is not None and id(value) not in seen:
        seen.add(id(value))
        nested_ext = _class_attr(value, "template_ext")
        ext = tuple(nested_ext) if nested_ext is not None else template_ext
        for name in _as_field_names(nested_fields):
            _collect_sources(getattr(value, name, None), ext, out, seen, depth + 1)


def template_sources(task: Any) -> list[str]:
    """The strings among ``task``'s templated fields that rendering hands to Jinja: inline
    templates (with ``{{``, ``{%`` or ``{#``) and template file names (ending in one of its
    ``template_ext``).

    For a mapped task, every literal in its ``partial`` and ``expand`` arguments is looked at
    (upstream results are data and never rendered). An empty list means rendering this task
    never needs an environment (nor jinja2), unless its ``execute`` renders on its own.
    """
    template_ext = tuple(getattr(task, "template_ext", ()) or ())
    out: list[str] = []
    seen = {id(task)}
    partial_kwargs = getattr(task, "partial_kwargs", None)
    if isinstance(partial_kwargs, dict):  # a mapped task
        _collect_sources(partial_kwargs, template_ext, out, seen, 0)
        expand_input = getattr(task, "expand_input", None)
        _collect_sources(getattr(expand_input, "value", None), template_ext, out, seen, 0)
        return out
    for name in _as_field_names(getattr(task, "template_fields", ())):
        _collect_sources(getattr(task, name, None), template_ext, out, seen, 0)
    return out


def precompile(
    env: jinja2.Environment, sources: Iterable[str], template_ext: Sequence[str]
) -> None:
    """Compile ``sources`` (see :func:`template_sources`) into ``env``'s caches, so that
    rendering them later only runs them. A source that does not compile (or a template file
    that is missing) is skipped: rendering reports it when the task runs."""
    ext = tuple(template_ext)
    compile_string = getattr(env, "compile_string", None)
    for source in sources:
        try:
            if ext and source.endswith(ext):
                env.get_template(source)
            elif compile_string is not None:
                compile_string(source)
        except Exception:
            continue
