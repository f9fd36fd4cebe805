"""The training side after the sixth audit (report C): SGM sub-space labels follow the faces
the base config keeps, a batch no epoch can fill, bad model settings and ``init_from`` as one
line before the folder is claimed, ensemble members with other validation faces, FEC and
perceptual-VAE runs that cannot be shortened, a locked run folder, a full disk, sgm-subspaces'
epoch count, seed ranges, and strict ``ensemble.json``."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from exprsim.errors import ExprsimError
from exprsim.training import ferplus
from exprsim.training.ferplus import train
from exprsim.training.ferplus_config import TrainConfig
from exprsim.training.ferplus_data import load_data, synthetic_votes

from .test_ferplus_options import _tiny  # the tiny synthetic recipe (192 faces, 144 to train)


class _Stop(Exception):
    """Raised by a spy once it has seen what it wanted (no training)."""


def _sgm_base(**kw: Any) -> TrainConfig:
    base = TrainConfig(
        data="synthetic", max_train=160, val_fraction=0.25, epochs=1, batch_size=32,
        objective="sgm", sampler="balanced", per_class=4, optimizer="adam", lr=1e-3,
        augment=False, num_threads=1, model_kwargs={"widths": [8, 8, 8, 8]},
    )  # fmt: skip
    return replace(base, **kw)


def _packed_ferplus(path: Path, n: int = 160) -> Path:
    """A packed FER+ file (``data_dir``) of synthetic faces with 3 to 10 votes each."""
    faces = synthetic_votes(n, seed=3)
    rng = np.random.default_rng(4)
    votes = np.stack([rng.multinomial(rng.integers(3, 11), d / d.sum()) for d in faces.dist])
    np.savez(path, images=faces.images, votes=votes.astype(np.float32))
    return path


# --------------------------------------------------------------------------- 1. SGM labels


@pytest.mark.parametrize(
    "kw",
    [
        {"split_seed": 5},  # was: 75% of the training faces got another face's label
        {"val_drop_twins": 0.9},  # was: a NumPy broadcast error
        {"split_seed": 2, "val_drop_twins": 0.95},
        {"data": "ferplus", "min_votes": 6},  # was: a broadcast error or wrong labels
    ],
)
def test_sgm_levels_give_every_face_its_own_label(kw, tmp_path, monkeypatch) -> None:
    from exprsim.training.sgm import ferplus_sgm_trainer

    if kw.get("data") == "ferplus":
        kw = {**kw, "data_dir": str(_packed_ferplus(tmp_path / "fer.npz")), "max_train": None}
    cfg = _sgm_base(**kw)
    seen: dict[str, Any] = {}
    real_build = ferplus._build

    def spy(cfg, tr, va, labels, device="cpu", init=True):  # what level 1 trains on, then stop
        s = real_build(cfg, tr, va, labels, device, init)
        seen.update(train=s.train_labels, val=s.val_labels, tr=tr, va=va)
        raise _Stop

    monkeypatch.setattr(ferplus, "_build", spy)
    train_fn, majority = ferplus_sgm_trainer(cfg, tmp_path / "run", progress=False)
    tr, va = load_data(cfg)
    assert len(majority) == len(tr.images) + len(va.images)  # the faces the config keeps
    with pytest.raises(_Stop):
        train_fn(1, majority)
    assert np.array_equal(seen["train"], seen["tr"].dist.argmax(1))
    assert np.array_equal(seen["val"], seen["va"].dist.argmax(1))
    if "min_votes" in kw:  # the filter did drop faces here
        assert len(tr.images) < tr.n_loaded - len(va.images)


def test_sgm_subspaces_with_a_split_seed_and_a_rerun_that_trains_nothing(tmp_path) -> None:
    from exprsim.config import to_dict
    from exprsim.training import train_from_dict
    from exprsim.training.sgm import SubspaceTrainConfig

    base = _sgm_base(split_seed=5, val_drop_twins=0.9)
    raw = {"recipe": "sgm-subspaces", **to_dict(SubspaceTrainConfig(base=base, levels=2))}
    first = train_from_dict(raw, tmp_path / "s", progress=False)
    assert first.epochs_run == 2
    saved = np.load(tmp_path / "s" / "subspaces.npz")
    tr, va = load_data(base)
    rows = np.concatenate([tr.rows, va.rows])
    order = np.argsort(rows)
    majority = np.concatenate([tr.dist.argmax(1), va.dist.argmax(1)])[order]
    assert np.array_equal(saved["rows"], rows[order])
    assert np.array_equal(saved["level1"], majority)  # level 1: every face's own class
    assert np.array_equal(saved["level2"] // 2, majority)
    again = train_from_dict(raw, tmp_path / "s", progress=False)
    assert again.epochs_run == 0  # was: "trained 2 epochs" (levels x epochs) for nothing


# --------------------------------------------------------------------------- 5. batch size


def test_a_batch_larger_than_the_training_faces_is_refused_before_writing(tmp_path, capsys):
    from exprsim.cli import main

    out = tmp_path / "bb"
    with pytest.raises(ValueError, match="batch_size 1000 is larger than the 144 training"):
        train(_tiny(batch_size=1000), out, progress=False)  # was: 0 steps, untrained export
    assert not out.exists()
    cfg = tmp_path / "big_bs.json"
    cfg.write_text(json.dumps({"data": "synthetic", "max_train": 192, "val_fraction": 0.25,
                               "epochs": 1, "batch_size": 1000, "num_threads": 1}))  # fmt: skip
    assert main(["-q", "train", "--config", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "batch_size 1000 is larger" in err[0], err
    assert not out.exists()


# --------------------------------------------------------------------------- 4. model settings


def _config_file(path: Path, **kw: Any) -> Path:
    from exprsim.config import to_dict

    path.write_text(json.dumps(to_dict(_tiny(**kw))))
    return path


def test_unknown_model_kwargs_are_one_line_and_the_folder_stays_free(tmp_path, capsys) -> None:
    from exprsim.cli import main

    out = tmp_path / "k1"
    bad = _config_file(tmp_path / "kw.json", model_kwargs={"foo": 1})
    assert main(["-q", "train", "--config", str(bad), "--out", str(out)]) == 2  # was: TypeError
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model_kwargs" in err[0] and "foo" in err[0], err
    assert not out.exists()
    good = _config_file(tmp_path / "good.json")  # the corrected config takes the folder
    assert main(["-q", "train", "--config", str(good), "--out", str(out)]) == 0


def _init_sources(root: Path) -> dict[str, Path]:
    """Folders ``init_from`` may name: weights of another shape, junk, a perceptual VAE."""
    from safetensors.torch import save_file

    from exprsim.models.registry import create_model
    from exprsim.pvae.model import create_landmark_model

    out = {}
    for name, state in (
        ("shape", create_model("exprnet_s", embedding_dim=8).state_dict()),
        ("vae", create_landmark_model("pvae-vae", input_dim=24, latent_dim=4).state_dict()),
    ):
        (root / name).mkdir()
        save_file(
            {k: v.contiguous() for k, v in state.items()}, str(root / name / "model.safetensors")
        )
        out[name] = root / name
    (root / "junk").mkdir()
    (root / "junk" / "model.safetensors").write_text("junk\n")
    out["junk"], out["missing"] = root / "junk", root / "nonexistent"
    return out


@pytest.mark.parametrize("source", ["shape", "vae", "junk", "missing"])
def test_a_bad_init_from_is_one_line_before_the_folder_is_claimed(source, tmp_path, capsys):
    from exprsim.cli import main

    init = _init_sources(tmp_path)[source]
    out = tmp_path / "r"
    bad = _config_file(tmp_path / "bad.json", init_from=str(init))
    assert main(["-q", "train", "--config", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"init_from {init}" in err[0], err
    assert not out.exists()  # was: train_config.json saved, the corrected config refused


def test_sgm_subspaces_and_ensemble_check_the_network_before_claiming(tmp_path) -> None:
    from exprsim.config import to_dict
    from exprsim.training import train_from_dict

    base = to_dict(_sgm_base(model_kwargs={"foo": 1}))
    with pytest.raises(ValueError, match="model_kwargs"):
        train_from_dict({"recipe": "sgm-subspaces", "levels": 1, "base": base}, tmp_path / "s")
    assert not (tmp_path / "s").exists()
    member = to_dict(
        _tiny(model="exprnet_v", model_kwargs={"readout": "hybrid", "foo": 1}, split_seed=0)
    )
    with pytest.raises(ValueError, match="model_kwargs"):
        train_from_dict({"recipe": "ensemble", "member": member}, tmp_path / "e")
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("eval_every", 0), ("eval_every", -5), ("batch_size", 0), ("latent_dim", 0),
     ("lr", 0.0), ("seed", -1), ("samples", 0)],
)  # fmt: skip
def test_pvae_settings_are_range_checked(field, value, tmp_path) -> None:
    from exprsim.training import train_from_dict

    raw = {"kind": "pvae", "model": "pvae-vae", "data": "synthetic", "max_train": 120,
           "iterations": 8, "batch_size": 16, "eval_every": 4, "threads": 1, "latent_dim": 4,
           field: value}  # fmt: skip
    with pytest.raises(ValueError, match=f"{field} must be"):  # was: ZeroDivisionError, ...
        train_from_dict(raw, tmp_path / "p", progress=False)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("field", ["checkpoint_every", "log_every", "val_every"])
def test_fec_intervals_must_be_at_least_one(field) -> None:
    from exprsim.training.fec import FECTrainConfig

    with pytest.raises(ValueError, match=f"{field} must be >= 1"):  # was: ZeroDivisionError
        FECTrainConfig(model="exprnet_s", **{field: 0})


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"seed": -1}, r"seed must be in \[0, "), ({"split_seed": -2}, r"split_seed must be in \[0, "),
     ({"readout_angles": (0.0, math.nan)}, "readout_angles must be finite")],
)  # fmt: skip
def test_ferplus_seeds_and_angles_are_range_checked(kw, message, tmp_path) -> None:
    with pytest.raises(ValueError, match=message):  # was: NumPy's message, without the field
        train(_tiny(**kw), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- 2. ensemble


def _member(root: Path, name: str, **kw: Any) -> Path:
    """An exported (untrained) hybrid exprnet_v run folder with its train_config.json."""
    from exprsim.models.registry import create_model
    from exprsim.training.run import RunFolder

    cfg = _tiny(**{
        "model": "exprnet_v", "model_kwargs": {"readout": "hybrid", "stages": [[8], [8], [16], [16]]},
        "readout_angles": (0.0, 45.0), "max_train": 96, "split_seed": 0, **kw,
    })  # fmt: skip
    torch.manual_seed(len(name))
    net = create_model(cfg.model, embedding_dim=cfg.embedding_dim, **cfg.model_kwargs)
    RunFolder(root / name).claim(cfg)
    ferplus.export(net, cfg, root / name)
    return root / name


@pytest.mark.parametrize("other", [{"max_train": 128}, {"data_dir": "/elsewhere/fer.npz"}])
def test_ensemble_members_with_other_loaded_faces_are_refused(other, tmp_path) -> None:
    from exprsim.training.ensemble import load_members

    a, b = _member(tmp_path, "a"), _member(tmp_path, "b", seed=1)
    load_members([a, b])  # same faces held out: fine
    c = _member(tmp_path, "c", seed=1, **other)
    with pytest.raises(ValueError, match="other validation faces"):
        load_members([a, c])  # was: accepted (validation faces of a in c's training)


def test_ensemble_refuses_non_finite_angles_and_writes_strict_json(tmp_path, monkeypatch):
    from exprsim.training.ensemble import EnsembleTrainConfig, compose_ensemble, member_configs

    runs = [_member(tmp_path, "a"), _member(tmp_path, "b", seed=1)]
    for angles in ((math.nan,), (0.0, math.inf)):
        with pytest.raises(ValueError, match="angles must be finite"):
            compose_ensemble(runs, tmp_path / "bad", angles=angles, draws=1)
        assert not (tmp_path / "bad").exists()
    member = {"data": "synthetic", "model": "exprnet_v", "model_kwargs": {"readout": "hybrid"}}
    with pytest.raises(ValueError, match="angles must be finite"):
        member_configs(EnsembleTrainConfig(member=member, angles=(0.0, math.nan)))

    def nan_scores(model, train_data, val, cfg, parts=None):
        model.readout_angle = 0.0
        return [{"angle": float(a), "val_knn11_acc": math.nan, "score": 1.0 if a else math.nan}
                for a in cfg.readout_angles]  # fmt: skip

    monkeypatch.setattr(ferplus, "choose_readout", nan_scores)
    compose_ensemble(runs, tmp_path / "ens", angles=(0.0, 30.0), draws=1)
    text = (tmp_path / "ens" / "ensemble.json").read_text()

    def refuse(token: str) -> None:
        raise AssertionError(f"not JSON: {token}")

    data = json.loads(text, parse_constant=refuse)  # was: NaN tokens
    assert data["tried"]["first"][0]["score"] is None


# --------------------------------------------------------------------------- 3. FEC, pvae length


class _FakeFec:
    """A FEC triplet set in memory (the part of FecTripletDataset training reads)."""

    def __init__(self, n_faces: int = 10, n_triplets: int = 18) -> None:
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, (n_faces, 112, 112, 3), dtype=np.uint8)
        self.rows = np.stack([rng.permutation(n_faces)[:3] for _ in range(n_triplets)])
        self.odd = rng.integers(0, 3, n_triplets)
        self.ttype = np.arange(n_triplets) % 3

    def __len__(self) -> int:
        return len(self.odd)

    def batch(self, index: np.ndarray) -> Any:
        from exprsim.fec.dataset import TripletBatch

        idx = np.asarray(index, np.int64)
        return TripletBatch(idx, self.rows[idx], self.odd[idx], self.ttype[idx])

    def crops(self, batch: Any) -> tuple[np.ndarray, np.ndarray]:
        uniq, inv = np.unique(batch.rows.reshape(-1), return_inverse=True)
        return self.images[uniq], inv.reshape(-1, 3)


@pytest.fixture
def fake_fec(monkeypatch):
    from exprsim.fec.dataset import BalancedTripletSampler
    from exprsim.training import fec
    from exprsim.training.fec import FECTrainConfig

    def data(cfg):
        ds = _FakeFec()
        return ds, BalancedTripletSampler(ds.ttype, cfg.triplets_per_type, cfg.seed), None

    monkeypatch.setattr(fec, "_fec_data", data)

    def make(**kw: Any) -> FECTrainConfig:
        from exprsim.models.embedder import PreprocessConfig

        base = FECTrainConfig(
            model="exprnet_s", preprocess=PreprocessConfig(input_size=48, grayscale=True,
            align_size=112), train_csv="unused.csv", crops_dir="unused", iterations=4,
            triplets_per_type=2, log_every=2, val_every=2, checkpoint_every=2, device="cpu",
            num_threads=1,
        )  # fmt: skip
        return replace(base, **kw)

    return make


def test_a_fec_run_cannot_be_shortened_but_may_move_device(fake_fec, tmp_path) -> None:
    from exprsim.training.fec import train_fec

    out = tmp_path / "f1"
    train_fec(fake_fec(), out, progress=False)
    files = {n: (out / n).read_bytes() for n in ("train_config.json", "train_result.json")}
    with pytest.raises(ValueError, match="has trained 4 iterations already; 2 is fewer"):
        train_fec(fake_fec(iterations=2), out, progress=False)  # was: config and result rewritten
    assert {n: (out / n).read_bytes() for n in files} == files
    again = train_fec(fake_fec(), out, progress=False)  # finished: nothing trains
    assert again.iterations_run == 0
    assert (out / "train_result.json").read_bytes() == files["train_result.json"]  # kept
    longer = train_fec(fake_fec(iterations=6, device="auto", num_threads=2), out, progress=False)
    assert longer.iterations_run == 2  # was: "a different config" for another device
    rows = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [2, 4, 6]


def test_a_pvae_run_cannot_be_shortened(tmp_path) -> None:
    from exprsim.training.pvae import PVAETrainConfig, train_pvae

    cfg = PVAETrainConfig(model="pvae-vae", data="synthetic", max_train=120, iterations=8,
                          batch_size=16, eval_every=4, threads=1, latent_dim=4)  # fmt: skip
    out = tmp_path / "p1"
    train_pvae(cfg, out, progress=False)
    files = {n: (out / n).read_bytes() for n in ("train_config.json", "result.json")}
    with pytest.raises(ValueError, match="has trained 8 iterations already; 4 is fewer"):
        train_pvae(replace(cfg, iterations=4), out, progress=False)  # was: rewritten, run 0
    assert {n: (out / n).read_bytes() for n in files} == files
    assert train_pvae(cfg, out, progress=False).iterations_run == 0
    assert (out / "result.json").read_bytes() == files["result.json"]  # kept, not "0 run"


# --------------------------------------------------------------------------- 6. the lock


def test_a_second_train_on_a_locked_folder_stops_at_once(tmp_path, capsys) -> None:
    fcntl = pytest.importorskip("fcntl")
    from exprsim.cli import main

    out = tmp_path / "mc"
    out.mkdir()
    with open(out / ".lock", "a+b") as held:  # another process's lock (own file description)
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ExprsimError, match=f"another exprsim train is using {out}"):
            train(_tiny(), out, progress=False)  # was: both trained, epochs logged twice
        cfg = _config_file(tmp_path / "t.json")
        assert main(["-q", "train", "--config", str(cfg), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "another exprsim train is using" in err[0], err
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written
        fcntl.flock(held, fcntl.LOCK_UN)
    train(_tiny(), out, progress=False)  # free again
    assert not (out / ".lock").exists()  # the lock file goes with the run


# --------------------------------------------------------------------------- 7. a full disk


def test_a_full_disk_while_saving_is_one_line_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    out = tmp_path / "r"
    train(_tiny(), out, progress=False)
    before = (out / "state.pt").read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *a, **kw):
        if str(f).endswith(".tmp"):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 2 vs 1")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(ExprsimError, match=r"could not write state\.pt .*last checkpoint is kept"):
        train(_tiny(epochs=2), out, progress=False)  # was: a RuntimeError traceback
    assert (out / "state.pt").read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(torch, "save", real_save)

    def no_space(tensors, filename, metadata=None):
        raise SafetensorError("Error while serializing: I/O error: No space left on device")

    monkeypatch.setattr("safetensors.torch.save_file", no_space)
    with pytest.raises(ExprsimError, match=r"could not write last\.safetensors .*No space left"):
        train(_tiny(epochs=2), out, progress=False)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
