"""Round 31: a SIGTERM or Ctrl-C once the command had returned, while Python ran its exit
handlers, printed "Exception ignored in atexit callback" and a traceback of
:class:`exprsim.interrupts.Terminated` on a run that had finished its work (exit code 0).
It now ends the process at once, quietly, with the signal's exit code."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# the exit handler is registered after exprsim is imported: it runs first, while the
# command's own handlers are still installed
AFTER_RETURN = """
import atexit, os, signal, sys, time
from exprsim.cli import main
SIG = getattr(signal, sys.argv[1])
def late_signal():
    os.kill(os.getpid(), SIG)
    time.sleep(0.5)
    print("exit handlers went on", flush=True)
atexit.register(late_signal)
sys.argv = ["exprsim", "detectors"]
sys.exit(main())
"""


@pytest.mark.parametrize(("sig", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_after_the_command_returned_exits_quietly(
    tmp_path: Path, sig: str, code: int
) -> None:
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(AFTER_RETURN))
    proc = subprocess.run(
        [sys.executable, str(script), sig], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Exception ignored" not in proc.stderr
    assert "exit handlers went on" not in proc.stdout
    assert "haar" in proc.stdout  # the command's output came out whole before


def test_library_callers_keep_their_handlers() -> None:
    """``main(argv)`` (tests, a caller's own program) changes no signal handler."""
    from exprsim.cli import main

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    assert main(["detectors"]) == 0
    assert {s: signal.getsignal(s) for s in before} == before
