"""Finding DAG files: recursion, ignore files at several levels, hidden folders, safe mode."""

from __future__ import annotations

from pathlib import Path

from tradewind.dag_processing.discovery import find_dag_files, is_ignored, might_contain_dag

DAG_TEXT = "from tradewind import DAG\n"


def write(root: Path, rel: str, text: str = DAG_TEXT) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def rel_names(root: Path, paths: list[Path]) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_finds_python_files_recursively_sorted_and_absolute(tmp_path: Path) -> None:
    # given python files at several depths and a non-python file
    for rel in ("b.py", "a.py", "team/x/deep.py", "team/a.py"):
        write(tmp_path, rel)
    write(tmp_path, "notes.txt")
    # when
    found = find_dag_files(tmp_path)
    # expect absolute paths in sorted order, only .py files
    assert all(p.is_absolute() for p in found)
    assert rel_names(tmp_path, found) == ["a.py", "b.py", "team/a.py", "team/x/deep.py"]


def test_skips_pycache_and_hidden_folders_and_files(tmp_path: Path) -> None:
    write(tmp_path, "keep.py")
    write(tmp_path, "__pycache__/cached.py")
    write(tmp_path, ".git/hooks/thing.py")
    write(tmp_path, ".#editor_lock.py")
    assert rel_names(tmp_path, find_dag_files(tmp_path)) == ["keep.py"]


def test_ignore_file_patterns_apply_to_their_folder_and_below(tmp_path: Path) -> None:
    # given a root ignore file and a nested one with a pattern that would also match at the root
    write(tmp_path, ".tradewindignore", "# comments are fine\n*_test.py\nscratch/\n")
    write(tmp_path, "team/.tradewindignore", "legacy.py\ntmp/\n")
    for rel in (
        "main.py",
        "main_test.py",  # root pattern
        "scratch/s.py",  # root folder pattern
        "team/sub/scratch/s2.py",  # root folder pattern matches at any depth
        "team/legacy.py",  # nested pattern
        "team/sub/legacy.py",  # nested pattern applies below its folder too
        "legacy.py",  # nested pattern does NOT apply above its folder
        "team/tmp/t.py",
        "tmp/t.py",  # nested folder pattern does not apply at the root
        "team/report.py",
        "team/report_test.py",  # root pattern applies inside nested folders
    ):
        write(tmp_path, rel)
    # when
    found = rel_names(tmp_path, find_dag_files(tmp_path))
    # expect
    assert found == ["legacy.py", "main.py", "team/report.py", "tmp/t.py"]


def test_deeper_ignore_file_can_reinclude_with_negation(tmp_path: Path) -> None:
    write(tmp_path, ".tradewindignore", "generated_*.py\n")
    write(tmp_path, "keepers/.tradewindignore", "!generated_keep.py\n")
    write(tmp_path, "generated_a.py")
    write(tmp_path, "keepers/generated_keep.py")
    write(tmp_path, "keepers/generated_drop.py")
    assert rel_names(tmp_path, find_dag_files(tmp_path)) == ["keepers/generated_keep.py"]


def test_airflowignore_is_read_like_tradewindignore(tmp_path: Path) -> None:
    write(tmp_path, ".airflowignore", "old/\n")
    write(tmp_path, "sub/.airflowignore", "helpers.py\n")
    write(tmp_path, ".tradewindignore", "wip.py\n")
    for rel in ("old/x.py", "sub/helpers.py", "sub/dag.py", "wip.py", "main.py"):
        write(tmp_path, rel)
    assert rel_names(tmp_path, find_dag_files(tmp_path)) == ["main.py", "sub/dag.py"]


def test_safe_mode_skips_files_that_never_mention_dag(tmp_path: Path) -> None:
    # given a helper without the word, and files mentioning it in different cases
    write(tmp_path, "helpers.py", "def add(a, b):\n    return a + b\n")
    write(tmp_path, "upper.py", "# builds a DAG\n")
    write(tmp_path, "decorated.py", "@Dag\ndef x(): ...\n")
    # when / expect: safe mode drops the helper only
    assert rel_names(tmp_path, find_dag_files(tmp_path)) == ["decorated.py", "upper.py"]
    # and with safe mode off every .py file is a candidate
    assert rel_names(tmp_path, find_dag_files(tmp_path, safe_mode=False)) == [
        "decorated.py",
        "helpers.py",
        "upper.py",
    ]


def test_safe_mode_finds_marker_split_across_read_chunks(tmp_path: Path) -> None:
    # given "dag" straddling the 64 KiB chunk boundary used when reading
    path = tmp_path / "big.py"
    path.write_bytes(b"#" * (65536 - 2) + b"DAG" + b"\n")
    # expect
    assert might_contain_dag(path)
    assert not might_contain_dag(write(tmp_path, "plain.py", "x = 1\n"))


def test_single_file_and_missing_folder(tmp_path: Path) -> None:
    only = write(tmp_path, "one.py", "x = 1\n")
    assert find_dag_files(only) == [only]
    assert find_dag_files(tmp_path / "does-not-exist") == []


def test_is_ignored_checks_one_path_like_the_walk(tmp_path: Path) -> None:
    write(tmp_path, ".tradewindignore", "scratch/\n")
    write(tmp_path, "team/.tradewindignore", "legacy.py\n")
    assert is_ignored(tmp_path / "scratch/a.py", tmp_path)
    assert is_ignored(tmp_path / "team/legacy.py", tmp_path)
    assert is_ignored(tmp_path / ".hidden/a.py", tmp_path)
    assert not is_ignored(tmp_path / "legacy.py", tmp_path)
    assert not is_ignored(tmp_path / "team/ok.py", tmp_path)


def test_symlinked_folder_loop_does_not_recurse_forever(tmp_path: Path) -> None:
    write(tmp_path, "a/x.py")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a", target_is_directory=True)
    assert rel_names(tmp_path, find_dag_files(tmp_path)) == ["a/x.py"]
