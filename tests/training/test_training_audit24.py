"""Twenty-fourth robustness round, training: a finished run run again on a full disk keeps
its ``readout.jsonl`` whole and its model usable, and an ``sgm-subspaces`` run resumes
whatever the spelling of its ``--out``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from exprsim.io import model_being_written, writing_model
from exprsim.models.embedder import load_model
from exprsim.training import ferplus
from exprsim.training.ferplus import train
from file_limit import run_with_file_limit
from run_folders import tiny_hybrid, tiny_sgm


def _disk_full(*_: Any, **__: Any) -> None:
    raise OSError(28, "No space left on device")


def test_a_finished_rerun_that_fails_keeps_its_model_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audit: the same `exprsim train` again on a finished run trains nothing but exports
    again; on a full disk that left the `.writing-model` mark beside an intact model, and
    `load_model` refused the folder until a later rerun succeeded."""
    folder = tmp_path / "run"
    train(tiny_hybrid(), folder, progress=False)
    before = (folder / "model.safetensors").read_bytes()
    with monkeypatch.context() as m:
        m.setattr(ferplus, "export", _disk_full)
        with pytest.raises(OSError):
            train(tiny_hybrid(), folder, progress=False)
    assert (folder / "model.safetensors").read_bytes() == before
    assert not model_being_written(folder)  # was: the mark, and the model refused
    load_model(str(folder))


def test_an_extension_that_fails_still_leaves_the_mark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an epoch trained now: the checkpoint is newer than the model, which must be said
    folder = tmp_path / "run"
    train(tiny_hybrid(), folder, progress=False)
    with monkeypatch.context() as m:
        m.setattr(ferplus, "export", _disk_full)
        with pytest.raises(OSError):
            train(tiny_hybrid(epochs=2), folder, progress=False)
    assert model_being_written(folder)


def test_again_keeps_the_mark_when_the_model_changed(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"old")
    with pytest.raises(OSError), writing_model(tmp_path, again=True):
        (tmp_path / "model.safetensors").write_bytes(b"new")
        raise OSError(28, "No space left on device")
    assert model_being_written(tmp_path)  # weights changed, config.json not: a mix
    (tmp_path / ".writing-model").unlink()
    with pytest.raises(KeyboardInterrupt), writing_model(tmp_path, again=True):
        raise KeyboardInterrupt
    assert not model_being_written(tmp_path)


def test_readout_jsonl_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    """Audit: a finished run run again on a full disk cut its readout.jsonl in place
    (36 of 46 rows, the last one half)."""
    folder = tmp_path / "run"
    angles = tuple(float(a) for a in range(0, 90))
    train(tiny_hybrid(readout_angles=angles), folder, progress=False)
    before = (folder / "readout.jsonl").read_bytes()
    config_size = (folder / "train_config.json").stat().st_size
    assert len(before) > config_size + 1000  # the limit lets the run claim its folder
    code = f"""
        from exprsim.training.ferplus import train
        from run_folders import tiny_hybrid
        try:
            train(tiny_hybrid(readout_angles={angles!r}), "run", progress=False)
        except OSError as exc:
            print("refused:", exc.strerror)
    """
    proc = run_with_file_limit(code, config_size + 500, tmp_path)
    assert "refused: File too large" in proc.stdout, proc.stderr
    assert (folder / "readout.jsonl").read_bytes() == before
    assert not model_being_written(folder)


def test_sgm_levels_resume_whatever_the_spelling_of_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audit: level 2 saved `init_from` as `--out` was spelt; the same run given as
    `./sgm`, an absolute path or from another folder was refused ("holds a run with a
    different config")."""
    from exprsim.training import train_from_dict

    doc = tiny_sgm(levels=2, max_train=120)
    monkeypatch.chdir(tmp_path)
    assert train_from_dict(doc, "sgm", progress=False).epochs_run == 2
    for spelling in ("./sgm", str(tmp_path / "sgm")):
        assert train_from_dict(doc, spelling, progress=False).epochs_run == 0
    os.mkdir("elsewhere")
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert train_from_dict(doc, "../sgm", progress=False).epochs_run == 0
