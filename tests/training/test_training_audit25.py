"""Round 25 (docs/robustness.md), the training side: an ensemble member killed while its
model was written was skipped as finished, and the ensemble refused it at every rerun;
100,000 torch threads killed the process without a word; a config whose alignment could
frame no face trained to the end and exported a model that failed on every image."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from exprsim.errors import ExprsimError
from exprsim.io import WRITING_MODEL_MARK
from exprsim.models.embedder import PreprocessConfig
from exprsim.training import run as run_mod
from exprsim.training.ensemble import _finished


def test_a_member_killed_in_its_export_is_not_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = tmp_path / "a"
    member.mkdir()
    (member / "train_config.json").write_text("{}")
    (member / "config.json").write_text("{}")
    cfg = SimpleNamespace(epochs=2)
    monkeypatch.setattr(run_mod, "same_config", lambda saved, wanted: True)
    monkeypatch.setattr(run_mod.RunFolder, "saved_config", lambda self, kind: cfg)
    monkeypatch.setattr(run_mod.RunFolder, "load_state", lambda self: {"epoch": 2})
    assert _finished(member, cfg)
    (member / WRITING_MODEL_MARK).write_text("")
    assert not _finished(member, cfg)  # was: finished, so never run again to finish it


def test_torch_threads_have_a_ceiling() -> None:
    with pytest.raises(ExprsimError, match="num_threads must be at most 1024"):
        run_mod.setup_torch(0, 100_000)
    run_mod.setup_torch(0, 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"align_size": 0}, r"AlignConfig.size must be in \[8, 4096\]"),
        ({"border": "sparkly"}, "AlignConfig.border must be one of"),
        ({"template": ((0.5, 0.5),)}, "AlignConfig.template must hold 5"),
        ({"input_size": 0}, r"input_size must be a whole number in \[1, 1024\]"),
    ],
)
def test_a_preprocessing_that_frames_no_face_is_refused_when_made(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        PreprocessConfig(**kwargs)


def test_validation_draws_have_a_ceiling(tmp_path: Path) -> None:
    """10**8 draws ran for hours after a training (or both members of an ensemble)."""
    from exprsim.training.ensemble import compose_ensemble
    from exprsim.training.ferplus import _check_choices
    from exprsim.training.ferplus_config import TrainConfig

    with pytest.raises(ValueError, match=r"val_triplet_draws must be in \[1, 1000\]"):
        _check_choices(TrainConfig(val_triplet_draws=10**8))
    with pytest.raises(ValueError, match=r"val_triplets must be in \[0, 1000000\]"):
        _check_choices(TrainConfig(val_triplets=10**9))
    _check_choices(TrainConfig(val_triplet_draws=1000))
    with pytest.raises(ValueError, match=r"draws must be a whole number in \[1, 1000\]"):
        compose_ensemble([tmp_path / "a", tmp_path / "b"], tmp_path / "out", draws=10**8)
