"""Round 24: one writer of a table at a time. Two ``exprsim embed -o same.csv`` at once
wrote over each other's rows (a corrupt CSV, both saying done), and two into one
``.parquet`` moved each other's files away (the long run failed after all its work,
naming a hidden file). The second writer is now refused in one line while the first runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from exprsim.errors import ExprsimError
from exprsim.io import TableWriter


def _other_process_writes(path: Path) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(f"""
        from exprsim.errors import ExprsimError
        from exprsim.io import TableWriter
        try:
            with TableWriter({str(path)!r}) as w:
                w.write([{{"a": 9}}])
            print("written")
        except ExprsimError as exc:
            print("refused:", exc)
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_a_second_writer_of_the_same_table_is_refused(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"same{suffix}"
    with TableWriter(path, chunk_rows=1) as first:
        first.write([{"a": 1}, {"a": 2}])
        proc = _other_process_writes(path)
        assert "refused:" in proc.stdout and "another exprsim command" in proc.stdout, (
            proc.stdout + proc.stderr
        )
        with pytest.raises(ExprsimError, match="writing this table now"):
            TableWriter(path)  # another writer in this process too
        first.write([{"a": 3}])
    read = pd.read_parquet(path) if suffix == ".parquet" else None
    if suffix == ".csv":
        read = pd.read_csv(path)
    elif suffix == ".jsonl":
        read = pd.read_json(path, lines=True)
    assert read is not None and read["a"].tolist() == [1, 2, 3]  # whole, this run's rows
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no lock file left
    assert "written" in _other_process_writes(path).stdout  # free again once it ended


def test_the_lock_is_given_up_when_a_run_stops(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    with pytest.raises(KeyboardInterrupt), TableWriter(path) as w:
        w.write([{"a": 1}])
        raise KeyboardInterrupt
    assert "written" in _other_process_writes(path).stdout
    w2 = TableWriter(tmp_path / "u.csv")
    w2.abort()
    assert "written" in _other_process_writes(tmp_path / "u.csv").stdout
