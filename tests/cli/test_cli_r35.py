"""Round 35 (a packaging audit): ``--help`` and ``--version`` whose stdout cannot be
written fail as every command does (exit 2, one line on stderr), where argparse dropped
the error (exit 0) or Python's flush at exit failed (exit 120, "Exception ignored"); and a
missing ``configs/...`` config says that the configs ship in the source repository."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import one_line, run


def _exprsim_to_full_stdout(args: list[str], unbuffered: bool) -> subprocess.CompletedProcess:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    with open("/dev/full", "w") as full:
        return subprocess.run(
            [sys.executable, "-m", "exprsim", *args], stdout=full, stderr=subprocess.PIPE,
            text=True, timeout=120, env=env, check=False,
        )  # fmt: skip


@pytest.mark.parametrize("unbuffered", [True, False], ids=["unbuffered", "buffered"])
@pytest.mark.parametrize(
    ("args", "prog"),
    [
        (["--version"], "exprsim"),
        (["--help"], "exprsim"),
        (["index", "add", "--help"], "exprsim index add"),
        ([], "exprsim"),  # no command: the help, exit 2 (was 120 when buffered)
        (["detectors"], "exprsim detectors"),  # a command: buffered, it exited 120
        (["--help", "index"], "exprsim"),  # the top level's help: named as such
        (["--hel", "index"], "exprsim"),  # argparse's abbreviation of --help
    ],
    ids=[
        "version",
        "help",
        "index-add-help",
        "no-command",
        "command",
        "help-then-word",
        "abbreviation",
    ],
)
def test_help_and_version_to_a_full_stdout_fail(
    args: list[str], prog: str, unbuffered: bool
) -> None:
    """Audit: `exprsim --version > /dev/full` exited 0 in silence."""
    done = _exprsim_to_full_stdout(args, unbuffered)
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == f"{prog}: error: No space left on device"


def test_a_program_calling_main_keeps_its_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: a failed flush pointed the caller's own descriptor at /dev/null for good
    (only the `exprsim` command itself drops what it cannot write)."""
    from exprsim.cli import main

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    import contextlib

    full = open("/dev/full", "w")  # noqa: SIM115 - its close fails (a full disk)
    try:
        monkeypatch.setattr(sys, "stdout", full)
        with pytest.raises(SystemExit) as done:  # as argparse's --version, in a program
            main(["--version"])
        assert done.value.code == 2
        assert os.readlink(f"/proc/self/fd/{full.fileno()}") == "/dev/full"
    finally:
        monkeypatch.undo()
        with contextlib.suppress(OSError):
            full.close()


def test_version_to_a_closed_stdout_fails() -> None:
    """As `exprsim faces DIR >&-` does (it printed the version to stderr, exit 0)."""
    done = subprocess.run(
        ["sh", "-c", f'"{sys.executable}" -m exprsim --version >&-'],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr).startswith("exprsim: error: standard output is closed")


def test_help_and_version_still_print(capsys: pytest.CaptureFixture[str]) -> None:
    from exprsim import __version__
    from exprsim.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out == f"exprsim {__version__}\n"
    with pytest.raises(SystemExit) as exc:
        main(["index", "add", "--help"])
    out = capsys.readouterr()
    assert exc.value.code == 0 and out.out.startswith("usage: exprsim index add ") and not out.err
    with pytest.raises(SystemExit) as exc:
        main(["faces", "--bogus"])  # a usage error: stderr, exit 2, as before
    out = capsys.readouterr()
    assert exc.value.code == 2 and not out.out and "unrecognized arguments" in out.err


def test_a_missing_configs_file_says_where_configs_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Audit: from a pip install, `exprsim train --config configs/default.json` said only
    "no such config file"."""
    monkeypatch.chdir(tmp_path)
    rc, _, err = run(capsys, "train", "--config", "configs/default.json")
    line = one_line(err)
    assert rc == 2 and "configs/default.json: no such config file" in line
    assert "the source repository has them in configs/" in line
    rc, _, err = run(capsys, "train", "--config", "mine.json")
    assert rc == 2 and one_line(err).endswith("mine.json: no such config file")
