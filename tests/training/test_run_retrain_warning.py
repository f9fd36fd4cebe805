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
