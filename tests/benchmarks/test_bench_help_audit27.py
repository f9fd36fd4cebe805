"""Round 27 (docs/robustness.md): every benchmark says what it runs on --help, and runs
nothing then (four ran their whole measurement, one writing into the working folder)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if '__name__ == "__main__"' in p.read_text())


def test_every_benchmark_script_parses_its_arguments() -> None:
    assert SCRIPTS
    assert [p.name for p in SCRIPTS if "argparse" not in p.read_text()] == []


@pytest.mark.parametrize(
    "name", ["big_photos.py", "durable_writes.py", "filtered_search.py", "reframe.py"]
)
def test_help_runs_nothing(name: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / name), "--help"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.startswith("usage:")
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran
