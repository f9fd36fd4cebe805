"""Composing trained runs into one ``exprnet_ens`` model: Procrustes, hold-out checks, the
readout chosen on validation, and the written model against a hand-made readout."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from exprsim.training.ensemble import compose_ensemble, load_members, procrustes_rotation
from exprsim.training.ferplus import _parts_array, train
from exprsim.training.ferplus_config import TrainConfig
from exprsim.training.ferplus_data import load_data


def test_procrustes_recovers_a_known_rotation() -> None:
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    src = rng.normal(size=(200, 6))
    dst = src @ q + 0.01 * rng.normal(size=(200, 6))
    r = procrustes_rotation(src, dst)
    np.testing.assert_allclose(r, q, atol=5e-3)
    np.testing.assert_allclose(r @ r.T, np.eye(6), atol=1e-5)  # orthogonal, not just a fit
    # and it is the best orthogonal map: no random rotation fits better
    best = np.linalg.norm(src @ r - dst)
    for _ in range(20):
        other, _ = np.linalg.qr(rng.normal(size=(6, 6)))
        assert best <= np.linalg.norm(src @ other - dst)
    with pytest.raises(ValueError, match="one shape"):
        procrustes_rotation(src, dst[:, :5])


def _cfg(**kw) -> TrainConfig:
    base = TrainConfig(
        model="exprnet_v",
        model_kwargs={"readout": "hybrid", "stages": [[8], [8], [16], [16]]},
        readout_angles=(0.0, 45.0),
        data="synthetic", max_train=256, val_fraction=0.25, epochs=2, batch_size=64,
        triplet_weight=0.0, pair_weight=0.06, num_threads=1, split_seed=0,
    )  # fmt: skip
    return replace(base, **kw)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ens")
    torch.set_num_threads(1)
    out = []
    for name, cfg in (("a", _cfg(seed=0)), ("b", _cfg(seed=1)), ("c", _cfg(seed=1, split_seed=1))):
        train(cfg, root / name, progress=False)
        out.append(root / name)
    return out


def test_members_must_hold_out_the_same_faces(runs) -> None:
    with pytest.raises(ValueError, match="other validation faces"):
        load_members([runs[0], runs[2]])
    with pytest.raises(ValueError, match="at least two"):
        load_members([runs[0]])


def test_composed_model_is_the_readout_written_out_by_hand(runs, tmp_path) -> None:
    from exprsim.models.embedder import load_model

    res = compose_ensemble(runs[:2], tmp_path / "ens", angles=(0.0, 30.0), draws=2, version="t")
    written = json.loads((tmp_path / "ens" / "ensemble.json").read_text())
    assert written["chosen"] == res["chosen"]
    scores = [r["score"] for rows in res["tried"].values() for r in rows]
    assert len(scores) == 4 and res["chosen"]["score"] == max(scores)
    cfg = json.loads((tmp_path / "ens" / "config.json").read_text())
    assert cfg["model"] == "exprnet_ens" and cfg["version"] == "t"
    angle, e_members = cfg["model_kwargs"]["readout_angle"], cfg["model_kwargs"]["e_members"]
    assert angle == res["chosen"]["angle"]
    assert e_members == ([0] if res["chosen"]["e_block"] == "first" else [0, 1])

    # by hand: each member's own (e, p), the rotation refitted here, the hybrid formula
    tcfg = _cfg()
    tr, va = load_data(tcfg)
    members = [load_model(str(r), fuse=False).model for r in runs[:2]]
    parts = [_parts_array(m, va.images, tcfg.preprocess) for m in members]
    e_tr = [_parts_array(m, tr.images, tcfg.preprocess)[0] for m in members]
    rot = [np.eye(8), procrustes_rotation(e_tr[1], e_tr[0])]
    p = (parts[0][1] + parts[1][1]) / 2

    def by_hand(angle: float, e_members: list[int]) -> np.ndarray:
        e = sum(parts[k][0] @ rot[k] for k in e_members)
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        a = math.radians(angle)
        z = np.concatenate([math.cos(a) * np.sqrt(p), math.sin(a) * e], 1)
        return z / np.linalg.norm(z, axis=1, keepdims=True)

    ens = load_model(str(tmp_path / "ens"))
    np.testing.assert_allclose(ens.embed_crops(va.images), by_hand(angle, e_members), atol=1e-4)
    ens.model.readout_angle, ens.model.e_members = 30.0, (0, 1)  # the rotated block too
    np.testing.assert_allclose(ens.embed_crops(va.images), by_hand(30.0, [0, 1]), atol=1e-4)


def test_cli_refuses_with_one_line(runs, tmp_path, capsys) -> None:
    from exprsim.cli import main

    taken = tmp_path / "file"
    taken.write_text("x")
    cases = [
        ([str(runs[0]), str(runs[2]), "--out", str(tmp_path / "o")], "other validation faces"),
        ([str(runs[0]), str(tmp_path), "--out", str(tmp_path / "o")], "not a finished run"),
        ([str(runs[0]), str(runs[1]), "--out", str(taken)], "not a folder"),
    ]
    for argv, message in cases:
        assert main(["ensemble", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "o").exists()


def test_choose_readout_reads_the_given_parts_instead_of_running_the_model(runs) -> None:
    from exprsim.models.embedder import load_model
    from exprsim.training.ferplus import choose_readout

    cfg = _cfg()
    tr, va = load_data(cfg)
    model = load_model(str(runs[0]), fuse=False).model
    parts = tuple(_parts_array(model, f.images, cfg.preprocess) for f in (tr, va))
    assert choose_readout(model, tr, va, cfg, parts=parts) == choose_readout(model, tr, va, cfg)
    (e_tr, p_tr), (e_va, p_va) = parts
    flat = np.full_like(p_va, 1 / 8)  # every validation face the same distribution
    other = choose_readout(model, tr, va, cfg, parts=((e_tr, p_tr), (e_va, flat)))
    assert other != choose_readout(model, tr, va, cfg)


def test_load_run_config_needs_a_vote_run(runs, tmp_path) -> None:
    from exprsim.training.ferplus import load_run_config

    assert load_run_config(runs[0]).split_seed == 0
    with pytest.raises(ValueError, match=r"no train_config\.json"):
        load_run_config(tmp_path)


def _recipe(member_kw=None, **kw) -> dict:
    from exprsim.config import to_dict

    member = {k: v for k, v in to_dict(_cfg()).items() if k not in ("seed", "split_seed")}
    member.update(member_kw or {})
    return {"recipe": "ensemble", "member": member, "seeds": [0, 1], "angles": [0.0, 30.0],
            "draws": 2, "version": "t", **kw}  # fmt: skip


def test_ensemble_recipe_is_the_members_trained_by_hand_then_composed(
    runs, tmp_path, capsys
) -> None:
    from exprsim.cli import main
    from exprsim.training import train_from_dict
    from exprsim.training.ferplus import load_run_config

    out = tmp_path / "q"
    res = train_from_dict(_recipe(), out, progress=False)
    assert res.epochs_run == 4 and res.out_dir == out
    for name, seed in (("a", 0), ("b", 1)):
        got = load_run_config(out / name)
        assert (got.seed, got.split_seed, got.version) == (seed, 0, f"t-{name}")
    # the same two runs by hand (fixture: seeds 0 and 1, split seed 0), composed the same way
    for mine, by_hand in ((out / "a", runs[0]), (out / "b", runs[1])):
        a = _weights(mine / "model.safetensors")
        b = _weights(by_hand / "model.safetensors")
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    ref = compose_ensemble(runs[:2], tmp_path / "ref", angles=(0.0, 30.0), draws=2)
    written = json.loads((out / "ensemble.json").read_text())
    assert written["chosen"] == pytest.approx(ref["chosen"]) and written["tried"] == ref["tried"]
    assert res.final_metrics["score"] == written["chosen"]["score"]
    # run again: both members are found finished and nothing trains; the model is the same
    before = (out / "model.safetensors").read_bytes()
    cfg_file = tmp_path / "q.json"
    cfg_file.write_text(json.dumps(_recipe()))
    assert main(["-q", "train", "--config", str(cfg_file), "--out", str(out)]) == 0
    assert "trained 0 epochs" in capsys.readouterr().out
    assert (out / "model.safetensors").read_bytes() == before
    # a longer run on the same folder extends both members by one epoch, then recomposes
    longer = train_from_dict(_recipe(), out, progress=False, length=3)
    assert longer.epochs_run == 2
    assert [load_run_config(out / n).epochs for n in "ab"] == [3, 3]


def _weights(path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seeds": [3]}, "2 to 26 different seeds"),
        ({"seeds": [1, 1]}, "2 to 26 different seeds"),
        ({"draws": 0}, "draws must be"),
        ({"member": {"recipe": "fec"}}, "ferplus config"),
        ({"member": {"model_kwargs": {"readout": "embedding"}}}, "hybrid exprnet_v"),
        ({"member": {"model": "no_such_net"}}, "no_such_net"),
        ({"member": {"epochs": 0}}, "epochs must be"),
        ({"member": {"no_such_key": 1}}, "unknown config keys"),
    ],
)
def test_ensemble_recipe_refuses_a_bad_member_before_training(change, message, tmp_path) -> None:
    from exprsim.errors import ModelError
    from exprsim.training import train_from_dict

    member = change.pop("member", None)
    with pytest.raises((ValueError, ModelError), match=message):
        train_from_dict(_recipe(member, **change), tmp_path / "q", progress=False)
    assert not (tmp_path / "q").exists()


def test_ensemble_recipe_length_and_device_reach_every_member() -> None:
    from exprsim.training.ensemble import EnsembleTrainConfig, member_configs
    from exprsim.training.registry import config_from_dict

    _, cfg = config_from_dict(_recipe(seeds=[4, 2, 9]))
    assert isinstance(cfg, EnsembleTrainConfig)
    members = member_configs(replace(cfg, epochs=7, device="cpu"))
    assert [n for n, _ in members] == ["a", "b", "c"]
    assert [(m.seed, m.split_seed, m.epochs, m.device) for _, m in members] == [
        (4, 4, 7, "cpu"), (2, 4, 7, "cpu"), (9, 4, 7, "cpu"),
    ]  # fmt: skip
    assert member_configs(cfg)[0][1].epochs == _cfg().epochs
