"""Audit 33, scripts side: ``gpu_sweep.py`` refuses a ``--parallel`` below 1 and a deadline
that is not a finite number > 0 (they waited out the deadline, never stopped, or stopped
every job at once) and a ``--pack`` that is not a file (a traceback after ``--out`` and
``--work`` were made), all before making any folder; its ``--help`` states every default;
``prior_readout.py`` with a folder that is not a run (or a model) says so in one line. Each
test failed before its fix (no GPU, no ../shared: a pack of 4 synthetic faces)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from file_module import load_file_module

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture(scope="module")
def sweep():
    yield from load_file_module(SCRIPTS / "gpu_sweep.py", "gpu_sweep33")


@pytest.fixture(scope="module")
def pr():
    yield from load_file_module(SCRIPTS / "prior_readout.py", "prior_readout33")


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid pack of 4 random faces (what ``--make-pack`` writes)."""
    import cv2

    from exprsim.training.ferplus_data import pixel_digest

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 48, 48), dtype=np.uint8)
    blobs = [cv2.imencode(".webp", im, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].ravel() for im in images]
    votes = rng.multinomial(10, np.full(8, 1 / 8), size=4).astype(np.float32)
    path = tmp_path_factory.mktemp("pack") / "pack.npz"
    np.savez(
        path,
        webp=np.concatenate(blobs),
        offsets=np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64),
        votes=votes,
        rows=np.arange(4, dtype=np.int64),
        shape=np.array(images.shape),
        digest=np.array(pixel_digest(images)),
    )
    return path


def _folders(tmp_path: Path) -> list[str]:
    return ["--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")]


def _nothing_made(tmp_path: Path) -> None:
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


@pytest.mark.parametrize("parallel", ["0", "-2"])
def test_a_parallel_below_one_is_refused_before_any_folder(
    sweep, pack: Path, tmp_path: Path, parallel: str, capsys
) -> None:
    """Before: no job started, the sweep slept until the deadline (8 minutes of a
    15-minute lease by default) and exited 0 with an empty summary (here a 3 s deadline)."""
    argv = ["--pack", str(pack), "--jobs", "base-s0", "--device", "cpu", "--deadline", "3"]
    with pytest.raises(SystemExit) as exc:
        sweep.main([*argv, "--parallel", parallel, *_folders(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].endswith(f": error: argument --parallel: must be >= 1, got {parallel}")
    _nothing_made(tmp_path)


@pytest.mark.parametrize("deadline", ["nan", "inf", "-1", "0"])
def test_a_deadline_that_is_not_a_finite_positive_number_is_refused(
    sweep, pack: Path, tmp_path: Path, deadline: str, capsys
) -> None:
    """Before: ``nan`` (and ``inf``) never fired, <= 0 stopped every job as it started.
    (A student job without its teachers: the code before ended at once, with exit 0.)"""
    argv = ["--pack", str(pack), "--jobs", "student-w05", "--device", "cpu", "--parallel", "1"]
    with pytest.raises(SystemExit) as exc:
        sweep.main([*argv, "--deadline", deadline, *_folders(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.splitlines()
    expected = f"argument --deadline: must be a finite number > 0, got {deadline}"
    assert err[-1].endswith(f": error: {expected}")
    _nothing_made(tmp_path)


def test_a_positive_parallel_and_deadline_still_parse(sweep) -> None:
    args = _parser_of(sweep).parse_args(["--parallel", "2", "--deadline", "0.5"])
    assert args.parallel == 2 and args.deadline == 0.5
    args = _parser_of(sweep).parse_args([])
    assert args.parallel == 6 and args.deadline == 480.0


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_a_pack_that_is_not_a_file_is_one_line_before_any_folder(
    sweep, tmp_path: Path, kind: str, capsys
) -> None:
    """Before: a FileNotFoundError (IsADirectoryError) traceback from ``unpack``, after
    ``--out`` and ``--work`` had been made."""
    pack = tmp_path / "pack.npz"
    if kind == "folder":
        pack.mkdir()
    argv = ["--pack", str(pack), "--jobs", "base-s0", "--device", "cpu", *_folders(tmp_path)]
    assert sweep.main(argv) == 2
    what = "not a file" if kind == "folder" else "no such file"
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1  # no usage: the options are right, the file is not there
    assert err[0].endswith(f": error: --pack {pack}: {what} (--make-pack makes one)")
    _nothing_made(tmp_path)


def _parser_of(module) -> argparse.ArgumentParser:
    """The parser ``module.main`` builds (caught as it parses; works on any version)."""
    seen: list[argparse.ArgumentParser] = []

    def grab(self, args=None, namespace=None):
        seen.append(self)
        raise SystemExit(0)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(argparse.ArgumentParser, "parse_args", grab)
        with pytest.raises(SystemExit):
            module.main([])
    return seen[0]


def test_the_sweeps_help_states_every_default(sweep, capsys) -> None:
    """tests/cli/test_cli_audit9.py's rule for ``exprsim``: an option with a default says it
    in its help. Before: --jobs, --out, --work, --parallel, --deadline and --device did not."""
    gaps = []
    for a in _parser_of(sweep)._actions:
        if a.default in (None, False, True, argparse.SUPPRESS) or isinstance(
            a, argparse._HelpAction
        ):
            continue
        if not a.help or "default" not in a.help:
            gaps.append(f"{'/'.join(a.option_strings)}: default {a.default!r} not stated")
    assert not gaps, "\n".join(gaps)
    with pytest.raises(SystemExit):
        sweep.main(["--help"])
    text = capsys.readouterr().out
    for said in ("sweep-out", "/tmp/sweep", "6", "480", "cuda"):
        assert f"(default: {said})" in text, said


@pytest.mark.parametrize("bad", ["run", "model"])
def test_a_folder_that_is_not_a_run_or_model_is_one_line(
    pr, tmp_path: Path, bad: str, capsys
) -> None:
    """Before: a traceback ending in the ArgumentError (ModelError) that says so."""
    run = str(tmp_path / "nosuch") if bad == "run" else "r"
    model = str(tmp_path / "nomodel") if bad == "model" else "default"
    assert pr.main(["--run", run, "--model", model]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and ": error: " in err[0]
    assert ("no train_config.json" if bad == "run" else "no config.json") in err[0]


def test_prior_readout_with_no_such_run_as_a_command(tmp_path: Path) -> None:
    """The audit's command, as run: ``prior_readout.py: error: ...``, exit 2."""
    env = {**os.environ, "PYTHONPATH": str(SCRIPTS.parent / "src")}
    r = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "prior_readout.py"),
            "--run",
            "nosuch",
            "--model",
            "default",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        "prior_readout.py: error: nosuch: no train_config.json (not a trainer's run folder)"
    ]


def test_make_golden_help_rewrites_nothing() -> None:
    """Round 33: ``make_golden.py --help`` ran the script: it rewrote the golden embeddings
    (by 1e-7, from this machine's rounding) that the golden test compares against."""
    import hashlib
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    golden = root / "tests" / "models" / "golden"
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in golden.iterdir()}
    proc = subprocess.run(
        [sys.executable, str(root / "scripts" / "make_golden.py"), "--help"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.startswith("usage:")
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in golden.iterdir()}
    assert after == before
