"""End to end on the loopback server: fetch -> crop/align -> train a few iterations -> evaluate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from exprsim.cli import main
from exprsim.config import to_dict
from exprsim.data.fec import human_baseline, parse_fec_csv
from exprsim.errors import DataError
from exprsim.faces.align import AlignConfig, align_face
from exprsim.faces.detect import landmarks_from_box
from exprsim.fec.crops import FEC_BOX_LAYOUT, CropConfig, CropStore, build_crops, face_key
from exprsim.fec.dataset import BalancedTripletSampler, FecTripletDataset
from exprsim.fec.evaluate import evaluate_fec
from exprsim.io import load_image
from exprsim.models.embedder import PreprocessConfig, load_model
from exprsim.samples import sample_path
from exprsim.training.fec import FECTrainConfig, train_fec

from .conftest import NAMES, SAMPLE_BOXES, FecServer

FETCH_ARGS = ["--workers", "4", "--timeout", "0.5", "--retries", "1", "--backoff", "0.05"]


def _tiny_cfg(train: Path, test: Path, crops: Path, iterations: int) -> FECTrainConfig:
    return FECTrainConfig(
        model="exprnet_s",  # small, registered; 1x48x48 input
        preprocess=PreprocessConfig(input_size=48, grayscale=True, align_size=112),
        train_csv=str(train),
        crops_dir=str(crops),
        val_csv=str(test),
        iterations=iterations,
        triplets_per_type=3,
        log_every=2,
        val_every=4,
        checkpoint_every=2,
        num_threads=1,
        device="cpu",
    )


@pytest.mark.slow  # ~10-20 s on 2 busy cores (MediaPipe start-up, 2 spawned crop workers, torch)
def test_fetch_crop_train_evaluate(
    fec_server: FecServer,
    fec_csvs: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    train, test = fec_csvs
    data = tmp_path / "fec-data"
    # ---- fetch + crop through the CLI
    assert (
        main(
            ["-q", "fec", "fetch", str(train), str(test), "--out", str(data), *FETCH_ARGS, "--crop"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "images: 11/18 available" in out and "crops: 11/18 faces" in out
    rep = json.loads((data / "crops" / "crop_report.json").read_text())
    assert rep["n_faces"] == 18 and rep["n_no_image"] == 7 and rep["n_new"] == 11
    assert rep["n_detected"] >= 9 and rep["n_detected"] + rep["n_box_fallback"] == 11
    store = CropStore(data)  # the fetch folder resolves to its crops/
    assert len(store) == 11 and store.size == 112
    key = face_key(fec_server.url(f"img/{NAMES[0]}"), SAMPLE_BOXES[NAMES[0]])
    crop = store.get_keys([key])[0]
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8 and crop.std() > 20
    # resume: nothing new to crop
    again = build_crops([train, test], data, config=CropConfig(), progress=False)
    assert again.n_new == 0 and again.n_skipped == 11
    # other pixel settings on a store with crops: refused, and the recorded config stays
    # the one its crops were made with (was: margin 0.3 recorded over margin-0.5 crops)
    with pytest.raises(DataError, match=r"made with other settings .*margin 0\.5"):
        build_crops([train, test], data, config=CropConfig(margin=0.3), progress=False)
    assert CropStore(data).config["margin"] == 0.5
    bigger = build_crops([train, test], data, config=CropConfig(shard_size=7), progress=False)
    assert bigger.n_new == 0  # shard size and workers do not change pixels
    # a face whose image failed is tried again once the image is readable (was: never)
    from exprsim.fec.fetch import open_manifest

    with open_manifest(data) as man:
        victim = data / sorted(man.ok_paths().values())[0]
    good = victim.read_bytes()
    victim.write_bytes(good[:200])
    retry_cfg = CropConfig(detector="none")
    first = build_crops([train, test], data, tmp_path / "retry", config=retry_cfg, progress=False)
    victim.write_bytes(good)
    second = build_crops([train, test], data, tmp_path / "retry", config=retry_cfg, progress=False)
    assert first.n_failed >= 1 and second.n_new == first.n_failed and second.n_failed == 0

    # box-only alignment (the documented fallback), two worker processes, small shards
    box_cfg = CropConfig(detector="none", workers=2, shard_size=4)
    boxed = build_crops([train, test], data, tmp_path / "box-crops", config=box_cfg, progress=False)
    assert boxed.n_box_fallback == 11 and boxed.n_detected == 0
    box_store = CropStore(tmp_path / "box-crops")
    assert len(list((tmp_path / "box-crops").glob("shard-*.npy"))) == 3  # 4 + 4 + 3
    # the fallback is the documented one: fixed landmark layout in the square box on the box centre
    image = load_image(sample_path(NAMES[0]))
    h, w = image.shape[:2]
    left, right, top, bottom = SAMPLE_BOXES[NAMES[0]]
    side = max((right - left) * w, (bottom - top) * h)
    cx, cy = (left + right) / 2 * w, (top + bottom) / 2 * h
    square = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
    want = align_face(
        image, landmarks_from_box(square, np.array(FEC_BOX_LAYOUT)), AlignConfig(size=112)
    )
    assert np.array_equal(box_store.get_keys([key])[0], want)
    assert not np.array_equal(store.get_keys([key])[0], want)  # that one was detected

    # ---- dataset + balanced sampler
    ds = FecTripletDataset(train, store)
    # strong rows among the 18 photo triplets (4 of every 6 patterns) + the flaky/redirect one
    assert len(ds) == 13 and ds.counts["missing_crops"] == 7
    sampler = BalancedTripletSampler(ds.ttype, per_type=5, seed=3)
    b0 = sampler.batch(0)
    assert np.bincount(ds.ttype[b0], minlength=3).tolist() == [5, 5, 5]
    assert np.array_equal(b0, BalancedTripletSampler(ds.ttype, per_type=5, seed=3).batch(0))
    weak = FecTripletDataset(train, store, agreement="weak")
    assert len(weak) == 16

    # ---- train through `exprsim train --config` (kind "fec"), then resume to more iterations
    cfg = _tiny_cfg(train, test, data, iterations=4)
    cfg_path = tmp_path / "fec-tiny.json"
    cfg_path.write_text(json.dumps(to_dict(cfg)))
    run = tmp_path / "run"
    assert main(["-q", "train", "--config", str(cfg_path), "--out", str(run)]) == 0
    for name in (
        "train_config.json",
        "config.json",
        "model.safetensors",
        "last.safetensors",
        "state.pt",
    ):
        assert (run / name).is_file(), name
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [2, 4]
    assert all(math.isfinite(r["loss"]) for r in rows) and 0 <= rows[-1]["val_all"] <= 1
    assert rows[-1]["val_n_all"] == 9
    res = train_fec(_tiny_cfg(train, test, data, iterations=6), run, progress=False)
    assert res.iterations_run == 2 and res.epochs_run == 2
    with pytest.raises(ValueError, match="different config"):
        train_fec(
            FECTrainConfig(
                **{
                    **to_dict(_tiny_cfg(train, test, data, 6)),
                    "lr": 1.0,
                    "preprocess": PreprocessConfig(48, True, 0.5, 0.25, 112),
                }
            ),
            run,
        )

    # ---- evaluate (the paper's triplet accuracy) against a slow loop on the same embeddings
    embedder = load_model(str(run))
    result = evaluate_fec(embedder, test, data)
    assert result.n_triplets == 9 and result.counts == {"all": 9, "one": 3, "two": 3, "three": 3}
    table = parse_fec_csv(test)
    correct = []
    for t in table:
        e = embedder.embed_crops(
            store.get_keys([face_key(f.url, f.box.as_tuple()) for f in t.faces])
        )
        a_, b_ = [k for k in range(3) if k != t.odd]
        d_ab, d_ac, d_bc = (
            float(np.linalg.norm(e[x] - e[y])) for x, y in ((a_, b_), (a_, t.odd), (b_, t.odd))
        )
        correct.append(d_ab < d_ac and d_ab < d_bc)
    assert result.accuracy["all"] == pytest.approx(np.mean(correct))
    assert result.accuracy["one"] == pytest.approx(np.mean(correct[:3]))
    assert result.human == human_baseline(table).to_dict()
    assert result.paper["fecnet_accuracy"]["all"] == 0.818
    assert result.to_frame().set_index("type").loc["all", "triplets"] == 9
    # through the CLI (`exprsim evaluate --fec-test --fec-crops`, routed by the lead's module)
    assert (
        main(
            [
                "-q",
                "evaluate",
                "--model",
                str(run),
                "--fec-test",
                str(test),
                "--fec-crops",
                str(data),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "FEC triplet accuracy" in text and "81.8%" in text and "87.5%" in text


def test_training_needs_every_type(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no one/three-class"):
        BalancedTripletSampler(np.array([1, 1, 1]), per_type=2)
    with pytest.raises(DataError, match="train_csv and crops_dir"):
        train_fec(FECTrainConfig(model="exprnet_s"), tmp_path / "r")
    with pytest.raises(ValueError, match="kind must be 'fec'"):
        FECTrainConfig(kind="ferplus")


def test_shipped_configs_load() -> None:
    from exprsim.training.registry import config_from_dict

    root = Path(__file__).resolve().parents[2] / "configs"

    def load(name: str) -> FECTrainConfig:  # as `exprsim train --config` reads it
        recipe, cfg = config_from_dict(json.loads((root / name).read_text()))
        assert recipe.name == "fec" and isinstance(cfg, FECTrainConfig)
        return cfg

    fecnet, feenet = load("fec-fecnet.json"), load("fec-feenet.json")
    assert fecnet.model == "fecnet" and fecnet.margins == (0.1, 0.2, 0.2) and not fecnet.squared
    assert feenet.model == "feenet" and feenet.margins == (0.2, 0.2, 0.2) and feenet.squared
    for c in (fecnet, feenet):
        assert (c.iterations, c.triplets_per_type, c.lr, c.embedding_dim) == (50_000, 30, 5e-4, 16)
        assert (
            c.agreement == "strong"
            and not c.preprocess.grayscale
            and c.preprocess.input_size == 112
        )
