"""``exprsim ensemble --out`` after the review of round 21: an earlier ensemble export is
composed again from any working folder (its members were stored as typed and resolved
against today's folder), and ``ensemble.json`` names its members relative to the export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_run import run

from run_folders import export_untrained


def _member(root: Path, name: str, seed: int = 0) -> Path:
    """An exported (untrained) hybrid exprnet_v run folder with its train_config.json."""
    from exprsim.training import ferplus

    cfg = ferplus.TrainConfig(
        model="exprnet_v", model_kwargs={"readout": "hybrid", "stages": [[8], [8], [16], [16]]},
        readout_angles=(0.0, 45.0), data="synthetic", max_train=64, val_fraction=0.25,
        epochs=1, batch_size=16, split_seed=0, seed=seed,
    )  # fmt: skip
    return export_untrained(cfg, root / name, torch_seed=seed)


def test_ensemble_recomposed_from_another_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    for seed, name in enumerate("ab"):
        _member(tmp_path, name, seed)
    opts = ["--angles", "0", "--draws", "1"]
    monkeypatch.chdir(tmp_path)
    rc, _, err = run(capsys, "ensemble", "a", "b", "--out", "ens", *opts)
    assert rc == 0, err
    members = json.loads((tmp_path / "ens" / "ensemble.json").read_text())["members"]
    assert members == ["../a", "../b"]  # was: "a", "b" (relative to the working folder)
    for m, n in zip(members, "ab", strict=True):
        assert (tmp_path / "ens" / m).resolve() == (tmp_path / n).resolve()
    monkeypatch.chdir(tmp_path / "a")
    rc, _, err = run(capsys, "ensemble", "../a", "../b", "--out", "../ens", *opts)
    assert rc == 0, err  # was: "holds another model"


def test_an_old_export_with_relative_members_is_composed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """An ``ensemble.json`` written before (members as typed, relative to a folder no
    longer known) is still an ensemble export: composing again there is allowed."""
    a, b = _member(tmp_path, "a"), _member(tmp_path, "b", seed=1)
    ens = tmp_path / "ens"
    ens.mkdir()
    (ens / "config.json").write_text("{}")
    (ens / "ensemble.json").write_text(json.dumps({"members": ["runs/a", "runs/b"]}))
    rc, _, err = run(capsys, "ensemble", str(a), str(b), "--out", str(ens), "--angles", "0",
                     "--draws", "1")  # fmt: skip
    assert rc == 0, err  # was: "holds another model"
