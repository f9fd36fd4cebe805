"""``exprsim train | ensemble | evaluate`` after the 21st audit: an empty ``--out`` and a
config key given twice refused, "1 epoch", a Ctrl-C that says where the checkpoint is and
how to resume, ``ensemble --out`` onto another model or a member named twice refused, and a
warning when the evaluated run folder is being trained or extended."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_run import digest, one_line, run

from exprsim.training.ferplus_config import TrainResult
from run_folders import export_untrained


def _config(tmp_path: Path, text: str = '{"data": "synthetic"}') -> Path:
    path = tmp_path / "c.json"
    path.write_text(text)
    return path


def test_train_refuses_an_empty_out(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc, _, err = run(capsys, "train", "--config", str(_config(tmp_path)), "--out", "")
    assert rc == 2 and "--out is empty" in one_line(err)  # was: trained into runs/c


def test_train_refuses_a_key_given_twice(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = _config(tmp_path, '{"data": "synthetic", "base": {"epochs": 1, "epochs": 2}}')
    rc, _, err = run(capsys, "train", "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert rc == 2 and "'epochs' is given twice" in one_line(err)  # was: the last one, silently
    assert not (tmp_path / "o").exists()


def _fake_train(monkeypatch: pytest.MonkeyPatch, effect: Any) -> None:
    import exprsim.training as training

    monkeypatch.setattr(training, "train_from_dict", effect)


def test_train_says_1_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _fake_train(monkeypatch, lambda raw, out, **kw: TrainResult(Path(out), 1, 2.0, {}))
    rc, out, _ = run(capsys, "train", "--config", str(_config(tmp_path)), "--out", "o")
    assert rc == 0 and out.startswith("trained 1 epoch in")  # was: "1 epochs"


def test_train_interrupted_says_where_the_checkpoint_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def interrupted(raw: Any, out: Path, **kw: Any) -> None:
        Path(out).mkdir()
        if "keep" in str(out):
            (Path(out) / "state.pt").write_bytes(b"x")
        raise KeyboardInterrupt

    _fake_train(monkeypatch, interrupted)
    cfg = str(_config(tmp_path))
    rc, _, err = run(capsys, "train", "--config", cfg, "--out", str(tmp_path / "keep"))
    line = one_line(err)  # was: "exprsim train: interrupted", nothing about the run
    assert rc == 130 and "checkpoint is kept in" in line and "to resume" in line
    assert str(tmp_path / "keep") in line
    rc, _, err = run(capsys, "train", "--config", cfg, "--out", str(tmp_path / "none"))
    assert rc == 130 and "no checkpoint was written yet" in one_line(err)


def _member(root: Path, name: str, seed: int = 0) -> Path:
    """An exported (untrained) hybrid exprnet_v run folder with its train_config.json."""
    from exprsim.training import ferplus

    cfg = ferplus.TrainConfig(
        model="exprnet_v", model_kwargs={"readout": "hybrid", "stages": [[8], [8], [16], [16]]},
        readout_angles=(0.0, 45.0), data="synthetic", max_train=96, val_fraction=0.25,
        epochs=1, batch_size=16, split_seed=0, seed=seed,
    )  # fmt: skip
    return export_untrained(cfg, root / name, torch_seed=seed)


def test_ensemble_refuses_an_out_holding_another_model(
    tmp_path: Path, random_model_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    from exprsim.training.ensemble import check_out

    a, b = _member(tmp_path, "a"), _member(tmp_path, "b", seed=1)
    before = digest(random_model_dir / "model.safetensors")
    rc, _, err = run(capsys, "ensemble", str(a), str(b), "--out", str(random_model_dir))
    assert rc == 2 and "holds another model" in one_line(err)  # was: overwritten
    assert digest(random_model_dir / "model.safetensors") == before
    # an earlier ensemble export may be written again, of the same members or (review 21:
    # an export's members, spelled from another folder, were taken for others) of others
    ens = tmp_path / "ens"
    ens.mkdir()
    (ens / "config.json").write_text("{}")
    (ens / "ensemble.json").write_text(json.dumps({"members": [str(a), str(b)]}))
    check_out(ens, [str(b), str(a)])
    check_out(ens, [str(a), str(tmp_path / "c")])
    rc, _, err = run(capsys, "ensemble", str(a), str(b), "--out", "")
    assert rc == 2 and "--out is empty" in one_line(err)


def test_ensemble_refuses_a_member_named_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    a = _member(tmp_path, "a")
    rc, _, err = run(capsys, "ensemble", str(a), str(a), "--out", str(tmp_path / "o"))
    assert rc == 2 and "named twice" in one_line(err)
    assert not (tmp_path / "o").exists()


def test_evaluate_warns_about_a_run_being_extended(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from exprsim.cli.model_cmd import _warn_unfinished
    from exprsim.training.run import RunFolder, run_lock

    a = _member(tmp_path, "a")
    _warn_unfinished([str(a), "default"])
    assert capsys.readouterr().err == ""  # a finished export; a shipped name
    with run_lock(a):
        _warn_unfinished([str(a)])
    assert "is being trained now" in one_line(capsys.readouterr().err)
    RunFolder(a).save_state({"epoch": 0})  # claimed for 1 epoch, none done yet
    _warn_unfinished([str(a)])
    line = one_line(capsys.readouterr().err)
    assert line.startswith("exprsim evaluate: warning:") and "stopped after 0" in line
