"""Round 35: every ``flock`` exprsim takes names its holder to a second command refused.

An index's writer lock said which process held it (round 34); a training run's folder, an
output folder (demo, crops, fetch, Ray shards) and a table being written said only
"another command". :mod:`exprsim.lockholder` is shared by all of them now.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from exprsim.errors import ExprsimError
from exprsim.io import FOLDER_LOCK, TableWriter, folder_lock
from exprsim.lockholder import lock_holder
from exprsim.training.run import LOCK_NAME, run_lock

ME = f"(pid {os.getpid()}, `"


def test_a_busy_output_folder_names_its_holder(tmp_path: Path) -> None:
    said: list[str] = []

    def busy(holder: str) -> ExprsimError:
        said.append(holder)
        return ExprsimError("busy" + holder)

    with folder_lock(tmp_path, busy, "test folder"):
        assert (tmp_path / FOLDER_LOCK).read_bytes().startswith(f"{os.getpid()} ".encode())
        with pytest.raises(ExprsimError, match=r"busy \(pid"), folder_lock(tmp_path, busy, "x"):
            pass
    assert said and said[0].startswith(" " + ME)
    assert (tmp_path / FOLDER_LOCK).read_bytes() == b""  # the name goes with the lock


def test_a_busy_training_run_names_its_holder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with run_lock(out):
        assert (out / LOCK_NAME).read_bytes().startswith(f"{os.getpid()} ".encode())
        with pytest.raises(ExprsimError) as caught, run_lock(out):
            pass
    assert f"another exprsim train {ME}" in str(caught.value)
    assert f"is using {out}" in str(caught.value)


def test_a_table_being_written_names_its_writer(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    with TableWriter(path, chunk_rows=1) as first:
        first.write([{"a": 1}])
        with pytest.raises(ExprsimError) as caught:
            TableWriter(path)
    assert f"another exprsim command {ME}" in str(caught.value)


def test_a_stopped_holder_of_a_run_folder_is_named_stopped(tmp_path: Path) -> None:
    """The holder is another process, stopped with Ctrl-Z: the refusal says so."""
    out = tmp_path / "run"
    code = textwrap.dedent(f"""
        import sys, time
        from exprsim.training.run import run_lock
        with run_lock({str(out)!r}):
            print("held", flush=True)
            time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        holder.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 10  # a stop is delivered asynchronously
        while b") T " not in Path(f"/proc/{holder.pid}/stat").read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with pytest.raises(ExprsimError) as caught, run_lock(out):
            pass
        said = str(caught.value)
        assert f"(pid {holder.pid}, `" in said and "stopped (Ctrl-Z?)" in said
        with open(out / LOCK_NAME, "rb") as fh:
            assert lock_holder(fh).startswith(f" (pid {holder.pid},")
    finally:
        holder.kill()
        holder.wait()


def test_a_busy_ensemble_folder_names_its_holder(tmp_path: Path) -> None:
    """Review: `ensemble --out` rewrote run_lock's refusal without its holder."""
    from exprsim.cli.model_cmd import _ensemble_lock

    out = tmp_path / "ens"
    with run_lock(out), pytest.raises(ExprsimError) as caught, _ensemble_lock(str(out)):
        pass
    assert f"another exprsim ensemble or train {ME}" in str(caught.value)
