"""``-q`` means quiet: no native MediaPipe / TFLite / absl lines on the terminal."""

from __future__ import annotations

import subprocess
import sys

import pytest

from exprsim.samples import sample_path


@pytest.mark.slow
def test_quiet_face_run_prints_nothing_on_stderr(tmp_path):
    cmd = [sys.executable, "-m", "exprsim", "-q", "faces", str(sample_path("grace_hopper.jpg")),
           str(sample_path("pexels_langer_frame000.jpg")), "--out", str(tmp_path / "f.csv")]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr
    assert (tmp_path / "f.csv").read_text().count("\n") == 3  # header + 2 faces
