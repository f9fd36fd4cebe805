"""Twenty-third robustness round, training: a run folder's small files (its
``train_config.json``, a trimmed ``metrics.jsonl``, a perceptual-VAE run's configs) are
written whole or not at all, so a full disk never leaves a run that refuses its resume.

A full disk is a file-size limit in a child process (``RLIMIT_FSIZE``, ``SIGXFSZ``
ignored): a write past it fails with ``EFBIG``."""

from __future__ import annotations

import json
from pathlib import Path

from exprsim.training.run import RunFolder
from file_limit import run_with_file_limit
from run_folders import tiny_config


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
    proc = run_with_file_limit(code, 1000, tmp_path)
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
    proc = run_with_file_limit(code, 1000, tmp_path)
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
    proc = run_with_file_limit(code, 1000, tmp_path)
    assert "refused: File too large" in proc.stdout, proc.stderr
    assert (tmp_path / "cfg.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["cfg.json"]
