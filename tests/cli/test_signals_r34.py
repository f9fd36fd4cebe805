"""Round 34 (signals and job control): SIGHUP (the terminal closed, an ssh connection
dropped) killed every command outright: no partial table (only a stale lock), no partial
video report, a server stopped mid-request; a command started with Ctrl-C ignored (a
script's background job) still reacted to it while saving; and a finished command whose
terminal had gone failed as "error: Input/output error", naming nothing."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_run import run
from test_cli_audit9 import Stub16, _embed_model, sigterm_handled  # noqa: F401 (a fixture)

from exprsim.interrupts import hold_interrupts, interruption, reset_interruption

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
from stub_embedder import write_images


def test_sighup_saves_what_is_done_as_sigterm_does(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch,
    sigterm_handled,  # noqa: F811
) -> None:
    assert signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL  # was: it killed at once
    write_images(tmp_path / "png", 3)
    _embed_model(monkeypatch, Stub16(stop=1, sig=signal.SIGHUP))
    out = tmp_path / "e.csv"
    rc, _, err = run(capsys, "embed", str(tmp_path / "png"), "-o", str(out))
    assert rc == 129 and "exprsim embed: hung up: 1 face saved" in err  # was: killed
    assert not list(tmp_path.glob(".*.lock"))


def test_a_held_sighup_is_said_and_a_second_one_interrupts(sigterm_handled) -> None:  # noqa: F811
    assert signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL
    from exprsim.interrupts import Terminated

    reset_interruption()
    with hold_interrupts("the table") as held:
        signal.raise_signal(signal.SIGHUP)  # held: the save goes on
    assert held.signals == ["SIGHUP"]
    assert interruption() == ("hung up", 129)
    with pytest.raises(Terminated), hold_interrupts("the table"):
        signal.raise_signal(signal.SIGHUP)
        signal.raise_signal(signal.SIGHUP)  # a second one abandons it
    reset_interruption()


def test_a_callers_own_sighup_handler_is_not_taken_over() -> None:
    """Review: a library caller's SIGHUP handler (a daemon's reload) was held as a
    termination while a partial result was saved."""
    seen: list[int] = []
    before = signal.signal(signal.SIGHUP, lambda signum, frame: seen.append(signum))
    try:
        with hold_interrupts("the table") as held:
            signal.raise_signal(signal.SIGHUP)
        assert seen == [signal.SIGHUP] and not held
    finally:
        signal.signal(signal.SIGHUP, before)


def test_an_ignored_ctrl_c_stays_ignored_while_saving() -> None:
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with hold_interrupts("the table") as held:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # was: a handler
            signal.raise_signal(signal.SIGINT)
        assert not held
    finally:
        signal.signal(signal.SIGINT, before)


def test_nohup_keeps_sighup_ignored() -> None:
    code = textwrap.dedent("""
        import signal
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup leaves it
        from exprsim.interrupts import terminate_as_interrupt
        terminate_as_interrupt()
        print(signal.getsignal(signal.SIGHUP) is signal.SIG_IGN)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "True", done.stderr


def test_a_terminal_gone_before_the_summary_is_said(tmp_path: Path) -> None:
    """stdout a terminal closed under the command (SIGHUP ignored: `disown`, `setsid`):
    its files are saved; it fails saying what was lost (was: "error: Input/output
    error")."""
    code = textwrap.dedent("""
        import signal, sys, time
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        time.sleep(1.0)  # the terminal closes meanwhile
        from exprsim.cli import main
        sys.argv = ["exprsim", "detectors"]
        sys.exit(main())
    """)
    master, replica = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=replica,
        stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    os.close(replica)
    os.close(master)  # the terminal goes away
    err = proc.communicate(timeout=120)[1].decode()
    assert proc.returncode == 2, err
    assert "standard output failed" in err and "what it printed was lost" in err
    assert "Traceback" not in err


def test_a_full_stdout_is_still_an_error() -> None:
    """Review: the flush that finds a terminal gone must not hide a full disk."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "exprsim", "detectors"], stdout=full, stderr=subprocess.PIPE,
            text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 2 and "No space left on device" in done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
