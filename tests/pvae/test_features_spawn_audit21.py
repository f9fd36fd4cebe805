"""Audit 21, finding 8: ``extract_fer_landmarks(workers>1)`` from a script without an
``if __name__ == "__main__":`` guard. Its spawned workers import the script again and die
starting; ``mp.Pool`` replaced them for ever (the run hung), now one clear line says what
to do. Failed before the fix (the subprocess timed out)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from exprsim.pvae import features

_UNGUARDED = """
from dataclasses import dataclass

import numpy as np

import exprsim.data.fer as fer
from exprsim.pvae.features import extract_fer_landmarks


@dataclass
class Split:
    images: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


split = Split(np.zeros((4, 48, 48), np.uint8), np.arange(4))
fer.load_ferplus = lambda *a, **k: split
extract_fer_landmarks("PublicTest", {cache!r}, workers=2, progress=False)
print("done")
"""


def test_an_unguarded_script_with_mesh_workers_gets_one_clear_line(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(_UNGUARDED.format(cache=str(tmp_path / "cache")))
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=40, cwd=tmp_path
    )
    assert proc.returncode == 1 and "done" not in proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    # round 27: the guard named (was "a mesh worker process died ... out of memory?"), and
    # one traceback, the script's own
    assert last.startswith(
        "exprsim.errors.ExprsimError: extract_fer_landmarks(workers=2) was called while a"
    ), last
    assert 'under `if __name__ == "__main__":`' in last
    assert proc.stderr.count("Traceback") == 1
    assert not (tmp_path / "cache").exists()


def test_mesh_workers_ignore_ctrl_c() -> None:
    """The parent stops the pool on Ctrl-C; a worker killed by it printed a traceback."""
    before = signal.getsignal(signal.SIGINT)
    try:
        features._init_mesh_worker()
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
