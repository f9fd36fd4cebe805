"""scripts/make_teacher.py: a teacher file from model folders, one clear line on bad input."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from exprsim.training.ferplus import train
from exprsim.training.ferplus_config import TrainConfig
from exprsim.training.ferplus_data import load_data, load_teacher_vectors
from file_module import load_file_module

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_teacher.py"


@pytest.fixture(scope="module")
def script():
    yield from load_file_module(SCRIPT, "make_teacher")


def _cfg() -> TrainConfig:
    return TrainConfig(
        data="synthetic",
        max_train=128,
        val_fraction=0.25,
        epochs=1,
        batch_size=64,
        triplet_weight=0.0,
        num_threads=1,
        model="exprnet_v",
        model_kwargs={"stages": [[8], [8], [16], [16]]},
    )


def test_writes_a_file_the_trainer_loads(script, tmp_path, capsys):
    cfg = _cfg()
    train(cfg, tmp_path / "t", progress=False)
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps(asdict(cfg)))
    out = tmp_path / "teach.npz"
    assert script.main([str(tmp_path / "t"), "--out", str(out), "--config", str(conf)]) == 0
    assert "1 teachers" in capsys.readouterr().out
    full = load_data(TrainConfig(**{**asdict(cfg), "val_fraction": 0.0}))[0]
    assert load_teacher_vectors(out, full.images).shape == (len(full.images), 1, 16)


def test_bad_input_is_one_line_and_exit_2(script, tmp_path, capsys):
    assert script.main(["/no/model", "--out", str(tmp_path / "x.npz"), "--config", "/no.json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("make_teacher:") and err.count("\n") == 1
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert script.main(["/no/model", "--out", str(tmp_path / "x.npz"), "--config", str(bad)]) == 2
    good = tmp_path / "good.json"
    good.write_text(json.dumps(asdict(_cfg())))
    assert script.main(["/no/model", "--out", str(tmp_path / "x.npz"), "--config", str(good)]) == 2
    assert "no config.json" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()
