"""``embed --engine ray`` and SIGTERM, round 31: ``ray.shutdown`` reset SIGTERM to the
kernel's default in the driver (Ray's C++ core uninstalls its failure-signal handler there)
while Python still named exprsim's handler, so a SIGTERM in the last second of the run
killed the command without its summary or its "terminated" line; a SIGTERM while Ray
started ended it by Ray's ``sys.exit(15)``. Each test fails on the code before the fix."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from exprsim import interrupts
from exprsim.interrupts import Terminated
from exprsim.scale import ray_embed

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "exprsim" / "samples"
FLAG = "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"


@pytest.fixture
def exprsim_sigterm() -> Any:
    """The ``exprsim`` command's SIGTERM handler installed, as in the process itself."""
    before = signal.getsignal(signal.SIGTERM)
    interrupts.terminate_as_interrupt()
    interrupts.reset_interruption()
    yield
    signal.signal(signal.SIGTERM, before)
    interrupts.reset_interruption()


class FakeRay:
    """``ray.init`` that records Ray's failure-handler flag as the driver's core worker
    would read it, and may raise what Ray's own SIGTERM handler raises while it starts."""

    def __init__(self, raise_exit: int | None = None) -> None:
        self.raise_exit = raise_exit
        self.flag_seen: list[bool] = []

    def init(self, **kwargs: Any) -> None:
        constants = sys.modules["ray._private.ray_constants"]
        self.flag_seen.append(bool(getattr(constants, FLAG)))
        signal.signal(signal.SIGTERM, lambda *a: None)  # Ray's Python handler
        if self.raise_exit is not None:
            raise SystemExit(self.raise_exit)


def _ray_constants() -> Any:
    pytest.importorskip("ray", reason="Ray not installed: pip install 'exprsim[ray]'")
    import ray._private.ray_constants as constants

    if not hasattr(constants, FLAG):
        pytest.skip(f"this Ray has no {FLAG}")
    return constants


def test_the_command_starts_its_driver_without_ray_failure_handler(exprsim_sigterm: Any) -> None:
    constants = _ray_constants()
    before = getattr(constants, FLAG)
    ray = FakeRay()
    ray_embed._start_ray(ray, None, 1, 40)
    assert ray.flag_seen == [True]  # no handler installed, so none is reset at shutdown
    assert getattr(constants, FLAG) == before  # Ray's workers and later inits: as it was
    assert signal.getsignal(signal.SIGTERM) is interrupts._raise_terminated


def test_a_library_caller_keeps_ray_failure_handler() -> None:
    constants = _ray_constants()
    before_handler = signal.getsignal(signal.SIGTERM)
    ray = FakeRay()
    try:
        ray_embed._start_ray(ray, None, 1, 40)
    finally:
        signal.signal(signal.SIGTERM, before_handler)
    assert ray.flag_seen == [bool(getattr(constants, FLAG))]


def test_sigterm_while_ray_starts_is_terminated(exprsim_sigterm: Any) -> None:
    _ray_constants()
    with pytest.raises(Terminated):
        ray_embed._start_ray(FakeRay(raise_exit=signal.SIGTERM), None, 1, 40)
    assert signal.getsignal(signal.SIGTERM) is interrupts._raise_terminated


def test_another_exit_while_ray_starts_is_left_alone(exprsim_sigterm: Any) -> None:
    _ray_constants()
    with pytest.raises(SystemExit) as info:
        ray_embed._start_ray(FakeRay(raise_exit=3), None, 1, 40)
    assert info.value.code == 3
    assert signal.getsignal(signal.SIGTERM) is interrupts._raise_terminated


def test_the_report_names_what_was_held_while_ray_stopped(exprsim_sigterm: Any) -> None:
    """``_stop_ray`` returns what it held (a SIGTERM sent from inside ``ray.shutdown``)."""
    import os

    def shutdown() -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    held = ray_embed._stop_ray(SimpleNamespace(shutdown=shutdown))
    assert held.signals == ["SIGTERM"]
    assert interrupts.interruption() == ("terminated", 143)


# SIGTERM sent from inside ray.shutdown, right after the driver's core worker is shut
# down: where Ray had reset SIGTERM to the kernel's default
SHUTDOWN_SIGTERM = """
import os, signal, sys, time
import ray._private.state as state
sent = []
real = state.state.disconnect
def disconnect(*args, **kwargs):
    if not sent:
        sent.append(True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.3)
    return real(*args, **kwargs)
state.state.disconnect = disconnect
from exprsim.cli import main
sys.argv = ["exprsim", "-q", "embed", "--engine", "ray", *sys.argv[1:]]
sys.exit(main())
"""


@pytest.mark.slow
def test_sigterm_while_ray_stops_keeps_the_summary_and_exits_143(tmp_path: Path) -> None:
    """End to end, on a local Ray: the command was killed by the signal (-15), with no
    summary and no "terminated" line."""
    pytest.importorskip("ray", reason="Ray not installed: pip install 'exprsim[ray]'")
    album = tmp_path / "album"
    album.mkdir()
    for src in sorted(SAMPLES.glob("*.jpg"))[:2]:
        (album / src.name).write_bytes(src.read_bytes())
    out = tmp_path / "shards"
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(SHUTDOWN_SIGTERM))
    argv = [sys.executable, str(script), str(album), "-o", str(out), "--workers", "1"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    err = proc.stderr
    assert proc.returncode == 143, err
    assert "2 faces from 2 images (0 unreadable)" in proc.stdout
    lines = [x for x in err.splitlines() if "core_worker.cc" not in x]
    assert lines[-1] == "exprsim embed: terminated while Ray stopped; every shard was done"
    assert "Traceback" not in err
    assert len(list(out.glob("part-*.parquet"))) == 1
