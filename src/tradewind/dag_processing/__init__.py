"""DAG processing: finding DAG files, parsing each in an isolated process, and import errors.

::

    from tradewind.dag_processing import ParseOptions, collect_dags

    collection = collect_dags(ParseOptions(dags_folder=Path("dags")))
    collection.dags          # {dag_id: serialized document}
    collection.import_errors # [ImportErrorInfo(path, message, line, traceback, relative_path)]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradewind._lazy import lazy_exports

# Loaded on first use, so running ``python -m tradewind.dag_processing.parser`` does not import
# the parser module twice.
_EXPORTS: dict[str, str] = {
    "DagCollection": "tradewind.dag_processing.collection",
    "ParseOptions": "tradewind.dag_processing.collection",
    "collect_dags": "tradewind.dag_processing.collection",
    "example_dags_folder": "tradewind.dag_processing.collection",
    "parse_files": "tradewind.dag_processing.collection",
    "find_dag_files": "tradewind.dag_processing.discovery",
    "is_ignored": "tradewind.dag_processing.discovery",
    "might_contain_dag": "tradewind.dag_processing.discovery",
    "FileResult": "tradewind.dag_processing.parser",
    "ImportErrorInfo": "tradewind.dag_processing.parser",
    "ParsedDag": "tradewind.dag_processing.parser",
    "load_dag_from_file": "tradewind.dag_processing.parser",
    "parse_one_file": "tradewind.dag_processing.parser",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:
    from tradewind.dag_processing.collection import (
        DagCollection,
        ParseOptions,
        collect_dags,
        example_dags_folder,
        parse_files,
    )
    from tradewind.dag_processing.discovery import find_dag_files, is_ignored, might_contain_dag
    from tradewind.dag_processing.parser import (
        FileResult,
        ImportErrorInfo,
        ParsedDag,
        load_dag_from_file,
        parse_one_file,
    )
