"""Round 35 (time): progress bars are timed by the monotonic clock, and every bar of the
library is :func:`exprsim.progress.progress_bar` (eight called tqdm themselves: a wall
clock set back froze them, and a process without stderr failed on their first write)."""

from __future__ import annotations

import ast
import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from exprsim.progress import progress_bar

SRC = Path(__file__).resolve().parents[1] / "src" / "exprsim"


def test_a_clock_set_back_does_not_freeze_the_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    import tqdm.std

    wall = iter([1e9 + i for i in range(50)] + [1e9 - 3600 + i for i in range(10_000)])
    monkeypatch.setattr(tqdm.std, "time", lambda: next(wall))  # tqdm's own clock
    out = io.StringIO()
    bar = progress_bar(range(100), enabled=True, file=out, mininterval=0, miniters=1)
    for _ in bar:
        pass
    drawn = out.getvalue().split("\r")
    assert "100/100" in drawn[-1] and len(drawn) > 90  # redrawn all along
    assert not re.search(r"\[-\d", out.getvalue())  # no negative elapsed time


def test_a_bar_without_stderr_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from exprsim.apps.classify import embed_fer

    class Embedder:
        def embed_crops(self, crops: np.ndarray) -> np.ndarray:
            return np.zeros((len(crops), 16), np.float32)

    monkeypatch.setattr(sys, "stderr", None)  # pythonw, some services
    out = embed_fer(Embedder(), np.zeros((5, 48, 48), np.uint8), progress=True, chunk=2)
    assert out.shape == (5, 16)


def test_the_library_draws_its_bars_through_progress_bar() -> None:
    calls = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        calls += [
            f"{path.relative_to(SRC)}: {m}"
            for m in re.findall(r"^[^#\n]*\btqdm\((?!iterable)", text, re.M)
        ]
    assert calls == [], calls


def _threads_after(code: str) -> list[str]:
    """The names of the threads left after ``code`` ran in a new Python process."""
    import subprocess

    code = "import io, threading\nfrom exprsim.progress import progress_bar\n" + code
    code += "print(sorted(t.name for t in threading.enumerate()))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return ast.literal_eval(out.stdout.strip())  # the list of names printed


def test_a_bar_that_is_off_starts_no_thread() -> None:
    code = (
        "assert list(progress_bar(range(3), enabled=False)) == [0, 1, 2]\n"
        "with progress_bar(total=4, enabled=False, desc='x') as bar:\n"
        "    bar.update(3); bar.set_postfix(a=1, refresh=False)\n"
        "assert (bar.n, bar.total) == (3, 4)\n"
    )
    assert _threads_after(code) == ["MainThread"]


def test_an_off_bar_counts_as_tqdm_does() -> None:
    from tqdm import tqdm

    for kwargs in ({}, {"total": 7}):
        off = progress_bar(iter(range(5)), enabled=False, **kwargs)
        on = tqdm(iter(range(5)), disable=True, **kwargs)
        assert list(off) == list(on) and off.n == 5 and off.total == on.total
    assert progress_bar([1, 2], enabled=False).total == 2


def test_a_bar_starts_no_monitor_thread() -> None:
    """Review: tqdm's monitor compared its wall clock with the bar's monotonic times."""
    code = (
        "bar = progress_bar(range(3), enabled=True, file=io.StringIO())\n"
        "assert list(bar) == [0, 1, 2]\n"
    )
    assert "tqdm_monitor" not in _threads_after(code)
