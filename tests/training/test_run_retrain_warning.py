"""A finished run whose checkpoint is gone (as the committed runs are) is trained again from
the start by the same command: it says so, and a run with its checkpoint does not."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from exprsim.training.ferplus import train
from run_folders import export_untrained, tiny_config

WORDS = "holds a trained model but no checkpoint"


def test_training_a_finished_run_without_its_checkpoint_again_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tiny_config()
    folder = export_untrained(cfg, tmp_path / "run")
    assert not (folder / "state.pt").exists()
    with caplog.at_level(logging.WARNING, logger="exprsim.training.run"):
        train(cfg, folder, progress=False)
    assert WORDS in caplog.text  # was: silence, and the model replaced
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="exprsim.training.run"):
        train(cfg, folder, progress=False)  # finished, with its checkpoint: nothing to say
    assert WORDS not in caplog.text


def test_a_fresh_folder_trains_without_the_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="exprsim.training.run"):
        train(tiny_config(), tmp_path / "new", progress=False)
    assert WORDS not in caplog.text


def test_the_model_and_metrics_a_fresh_start_replaces_are_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Round 37 (the advice in messages): "copy it first to keep them" came once the run was
    on its way, and its metrics were emptied a moment later; the model and the metrics are
    now kept beside the run (``NAME.~N~``) as it starts over, once however often a start is
    stopped before its first checkpoint."""
    cfg = tiny_config()
    folder = export_untrained(cfg, tmp_path / "run")
    model = (folder / "model.safetensors").read_bytes()
    rows = '{"epoch": 1}\n{"epoch": 2}\n'
    (folder / "metrics.jsonl").write_text(rows)
    with caplog.at_level(logging.WARNING, logger="exprsim.training.run"):
        train(cfg, folder, progress=False)
    assert "kept model.safetensors.~1~ and metrics.jsonl.~1~" in caplog.text
    assert (folder / "model.safetensors.~1~").read_bytes() == model
    assert (folder / "metrics.jsonl.~1~").read_text() == rows
    # a start stopped before its first checkpoint: the old model, a few rows, no state
    (folder / "state.pt").unlink()
    (folder / "model.safetensors").write_bytes(model)
    (folder / "metrics.jsonl").write_text('{"epoch": 0.5}\n{"epoch": 0.7}\n')
    train(cfg, folder, progress=False)
    assert sorted(p.name for p in folder.glob("*.~*~")) == [
        "metrics.jsonl.~1~",
        "model.safetensors.~1~",
    ]


def test_nothing_is_kept_or_refused_when_a_start_fails_its_checks(tmp_path: Path) -> None:
    """A review of this round: the first version kept its copies while the config was
    checked, before ``init_from`` was; a mistyped ``init_from`` left a copy, which then
    counted as progress and refused the corrected config ("use a new --out")."""
    from dataclasses import replace

    cfg = tiny_config(epochs=2)
    folder = tmp_path / "run"
    train(cfg, folder, progress=False)
    for f in folder.iterdir():  # a committed run without its weights
        if f.is_file() and f.name not in ("train_config.json", "metrics.jsonl"):
            f.unlink()
    other = replace(cfg, lr=cfg.lr / 2)
    with pytest.raises(Exception, match="typo"):
        train(replace(other, init_from=str(tmp_path / "typo")), folder, progress=False)
    assert not list(folder.glob("*.~*~"))
    train(other, folder, progress=False)  # was: refused, the copy counted as progress
    assert [p.name for p in folder.glob("*.~*~")] == ["metrics.jsonl.~1~"]
