"""The house rules of DESIGN.md, checked: layer imports point downwards, the public surface is
pinned, and importing the authoring API loads no server code."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import tradewind

SRC = Path(tradewind.__file__).parent

# layer -> layers it may import (besides itself). Mirrors the table in DESIGN.md.
ALLOWED: dict[str, set[str]] = {
    "state": set(),
    "errors": set(),
    "config": {"errors"},
    "sdk": {"errors", "state"},
    "operators": {"sdk", "errors", "state", "hooks"},
    "sensors": {"sdk", "errors", "state", "hooks"},
    "hooks": {"sdk", "errors"},
    "timetables": {"sdk", "errors"},
    "serialization": {"sdk", "timetables", "errors", "state"},
    "dag_processing": {"sdk", "serialization", "timetables", "errors", "config", "db", "state"},
    # The runtime loads the DAG file of the try it runs (through dag_processing's loader).
    "runtime": {"sdk", "serialization", "errors", "state", "dag_processing"},
    "db": {"state", "serialization", "errors", "config", "sdk"},
    # Executor worker processes host the runtime: they import it (and warm up DAG files and
    # operators for it); the executor objects in the scheduler only move workload records.
    "executors": {
        "state",
        "serialization",
        "errors",
        "config",
        "runtime",
        "sdk",
        "dag_processing",
        "operators",
    },
    "scheduler": {
        "state",
        "db",
        "timetables",
        "executors",
        "serialization",
        "sdk",
        "errors",
        "config",
        "dag_processing",
    },
    "observability": {"config", "errors"},
    # The API reads and writes through db/; from the engine it only asks the scheduler's pure
    # decisions and loaders (why a task waits) and reads workload records (where logs are):
    # see API_ENGINE_MODULES.
    "api": {
        "db",
        "state",
        "serialization",
        "errors",
        "config",
        "sdk",
        "scheduler",
        "executors",
    },
    "compat": {"sdk", "operators", "sensors", "hooks", "timetables", "errors", "state"},
}
# Private helpers every layer may use.
SHARED = {"_version", "_lazy"}
# Layers that may import anything below them (the CLI is the top; the package root re-exports).
UNRESTRICTED = {"cli", "__init__", "_version", "_lazy", "examples", "ui", "triggerer"}
# The only modules of the scheduler and executor layers the API may import.
API_ENGINE_MODULES = {
    "tradewind.scheduler.decisions",
    "tradewind.scheduler.loading",
    "tradewind.executors.workload",
}


def _layer_of(module_path: Path) -> str:
    rel = module_path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imported_layers(tree: ast.AST) -> set[str]:
    layers: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "tradewind" and len(parts) > 1:
                layers.add(parts[1])
    return layers


def test_layers_import_only_downwards() -> None:
    # given every module of the package
    violations = []
    for path in sorted(SRC.rglob("*.py")):
        layer = _layer_of(path)
        if layer in UNRESTRICTED:
            continue
        # when we read the layers it imports (at module level or inside functions)
        imported = _imported_layers(ast.parse(path.read_text(), str(path)))
        # expect each to be allowed for its layer
        bad = imported - ALLOWED.get(layer, set()) - {layer, *SHARED}
        if bad:
            violations.append(f"{path.relative_to(SRC)} ({layer}) imports {sorted(bad)}")
    assert violations == []


def test_api_uses_only_the_pure_parts_of_the_engine() -> None:
    # given the API's modules
    used: set[str] = set()
    for path in sorted((SRC / "api").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # "from tradewind.scheduler import loading" names tradewind.scheduler.loading
                names = [
                    f"{node.module}.{a.name}" if node.module.count(".") == 1 else node.module
                    for a in node.names
                ]
            used |= {n for n in names if n.split(".")[1:2] in (["scheduler"], ["executors"])}
    # expect only the scheduler's pure decisions and loaders and the workload records
    assert used <= API_ENGINE_MODULES


def test_public_exports_are_pinned() -> None:
    assert tradewind.__all__ == [
        "DAG",
        "Asset",
        "AssetAlias",
        "BaseOperator",
        "Connection",
        "Context",
        "Label",
        "Param",
        "ParamsDict",
        "TaskGroup",
        "TriggerRule",
        "Variable",
        "WeightRule",
        "XComArg",
        "__version__",
        "chain",
        "chain_linear",
        "cross_downstream",
        "dag",
        "get_current_context",
        "setup",
        "task",
        "task_group",
        "teardown",
    ]
    for name in tradewind.__all__:
        assert getattr(tradewind, name) is not None


def test_operator_exports_are_pinned() -> None:
    import tradewind.operators as ops

    assert sorted(ops.__all__) == [
        "BaseBranchOperator",
        "BashOperator",
        "BranchPythonOperator",
        "EmptyOperator",
        "LatestOnlyOperator",
        "PythonOperator",
        "SQLExecuteQueryOperator",
        "ShortCircuitOperator",
    ]
    for name in ops.__all__:
        assert isinstance(getattr(ops, name), type)


def test_importing_the_authoring_api_loads_no_server_code() -> None:
    # given a fresh interpreter
    code = (
        "import sys, json; import tradewind; "
        "from tradewind import DAG, task, TaskGroup; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    # when it imports the authoring API
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    # expect none of the heavy server libraries among the loaded modules
    heavy = {"sqlalchemy", "fastapi", "celery", "uvicorn", "pydantic", "alembic", "starlette"}
    assert not ({m.split(".")[0] for m in loaded} & heavy)
