"""Round 34: a ``FrameReader`` iterator used again after ``close()`` (or after its ``with``
block), or read while another thread closed the reader, crashed the process (SIGSEGV in
PyAV's demuxer of a closed container). Each case runs in a child process, so that a crash
fails the test instead of the test run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("av")

PRELUDE = """
import threading
from exprsim.samples import sample_dir
from exprsim.video.frames import FrameReader, VideoError
clip = sample_dir() / "langer_clip.mp4"
"""

CASES = {
    "close": """
        r = FrameReader(clip, fps=2)
        it = iter(r)
        next(it)
        r.close()
        try:
            next(it)
        except VideoError as exc:
            print("refused:", exc)
    """,
    "with": """
        with FrameReader(clip, fps=2) as r:
            it = iter(r)
            next(it)
        try:
            next(it)
        except VideoError as exc:
            print("refused:", exc)
    """,
    "thread": """
        r = FrameReader(clip, every=1)
        first, closed, said = threading.Event(), threading.Event(), []
        def read():
            it = iter(r)
            next(it)
            first.set()
            closed.wait(30)  # another thread closes the reader between two frames
            try:
                next(it)
            except VideoError as exc:
                said.append(str(exc))
        t = threading.Thread(target=read)
        t.start()
        first.wait(30)
        r.close()
        closed.set()
        t.join(30)
        print("refused:", *said)
    """,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_reader_closed_under_its_iterator_refuses_in_one_line(case: str) -> None:
    code = PRELUDE + textwrap.dedent(CASES[case])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])  # was -11 (SIGSEGV)
    assert "refused:" in done.stdout and "closed while it was read" in done.stdout
