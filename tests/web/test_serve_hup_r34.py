"""Round 34 (signals): SIGHUP (the terminal of `exprsim serve` closed) killed the server
outright (exit -1: no shutdown, a video job lost mid-way); it now shuts down as on
SIGTERM: requests finish, the app's shutdown runs, exit 0."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")


@pytest.mark.slow
def test_sighup_shuts_the_server_down_gracefully(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # SIGHUP as a terminal leaves it, even when the tests run under nohup: set by a small
    # program that then becomes exprsim (a preexec_fn ran Python in the forked child of a
    # process of ~100 threads, and hung there freeing a PyAV context: the whole run hung)
    reset = (
        "import os, signal, sys; signal.signal(signal.SIGHUP, signal.SIG_DFL); "
        "os.execv(sys.executable, [sys.executable, '-m', 'exprsim', *sys.argv[1:]])"
    )
    argv = [sys.executable, "-c", reset, "serve", "--db", str(tmp_path / "f.db")]
    proc = subprocess.Popen(
        [*argv, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < deadline
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err  # was -1 (SIGHUP): killed
    assert "Application shutdown complete" in err
