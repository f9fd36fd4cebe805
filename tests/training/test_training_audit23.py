"""Twenty-third robustness round, training: a run folder's small files (its
``train_config.json``, a trimmed ``metrics.jsonl``, a perceptual-VAE run's configs) are
written whole or not at all, so a full disk never leaves a run that refuses its resume.

A full disk is a file-size limit in a child process (``RLIMIT_FSIZE``, ``SIGXFSZ``
ignored): a write past it fails with ``EFBIG``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from exprsim.training.run import RunFolder
from run_folders import tiny_config


def _limited(code: str, limit: int, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a Python child whose files cannot grow past ``limit`` bytes."""
    prologue = (
        "import resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
    )
    tests = str(Path(__file__).resolve().parents[1])
    full = f"import sys; sys.path.insert(0, {tests!r})\n" + prologue + textwrap.dedent(code)
    # caches of the libraries go to the test folder: the limit must not cut the user's
    env = {**os.environ, "MPLCONFIGDIR": str(Path(cwd) / ".mpl"), "XDG_CACHE_HOME": str(cwd)}
    return subprocess.run(
        [sys.executable, "-c", full], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


def test_a_full_disk_while_claiming_keeps_the_run_config(tmp_path: Path) -> None:
    """Audit: `exprsim train --epochs 2` into a 1-epoch run on a full disk cut its
    train_config.json in place ("File too large", no file named), and every later run
    into the folder was refused ("its train_config.json is damaged ...; use a new
    --out"), its checkpoint with it."""
    folder = tmp_path / "run"
    RunFolder(folder).claim(tiny_config())
    before = (folder / "train_config.json").read_bytes()
    code = """
        from exprsim.training.run import RunFolder
        from run_folders import tiny_config
        try:
            RunFolder("run").claim(tiny_config(epochs=2), ("epochs",))
        except OSError as exc:
            print("refused:", exc.filename, exc.strerror)
    """
    proc = _limited(code, 1000, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "train_config.json File too large" in proc.stdout  # the file is named
    assert (folder / "train_config.json").read_bytes() == before  # was: its first 1000 bytes
    assert RunFolder(folder).saved_config(type(tiny_config())).epochs == 1
    assert [p.name for p in folder.iterdir()] == ["train_config.json"]  # no temporary


def test_a_full_disk_while_trimming_metrics_keeps_every_row(tmp_path: Path) -> None:
    """Audit: a resume trims the rows logged after the last checkpoint by rewriting
    metrics.jsonl in place; a full disk then cut the earlier epochs' rows too."""
    folder = tmp_path / "run"
    folder.mkdir()
    rows = [json.dumps({"epoch": e, "loss": 1.0 / e, "note": "x" * 60}) for e in range(1, 31)]
    (folder / "metrics.jsonl").write_text("".join(r + "\n" for r in rows))
    code = """
        from exprsim.training.run import RunFolder
        try:
            RunFolder("run").trim_metrics("epoch", 25)
        except OSError as exc:
            print("refused:", exc.strerror)
    """
    proc = _limited(code, 1000, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "refused: File too large" in proc.stdout
    assert (folder / "metrics.jsonl").read_text().splitlines() == rows  # was: 1000 bytes
    RunFolder(folder).trim_metrics("epoch", 25)  # room again: trimmed
    assert (folder / "metrics.jsonl").read_text().splitlines() == rows[:25]


def test_a_config_saved_on_a_full_disk_keeps_the_one_before(tmp_path: Path) -> None:
    """Audit: ``exprsim.config.save_json`` (a perceptual-VAE run's pvae_config.json)
    rewrote the file in place: a full disk left part of it."""
    from exprsim.config import save_json

    save_json(tiny_config(), tmp_path / "cfg.json")
    before = (tmp_path / "cfg.json").read_bytes()
    code = """
        from exprsim.config import save_json
        from run_folders import tiny_config
        try:
            save_json(tiny_config(epochs=2), "cfg.json")
        except OSError as exc:
            print("refused:", exc.strerror)
    """
    proc = _limited(code, 1000, tmp_path)
    assert "refused: File too large" in proc.stdout, proc.stderr
    assert (tmp_path / "cfg.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["cfg.json"]
