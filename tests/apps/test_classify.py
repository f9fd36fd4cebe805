"""ExpressionKNN vs naive loops and scikit-learn; reference set build/load; evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from stub_embedder import StubEmbedder

from exprsim.apps import classify as cl
from exprsim.apps.classify import ExpressionKNN, evaluate
from exprsim.data.fer import FERPLUS_CLASSES
from exprsim.errors import ModelError


def data(seed: int = 0, n: int = 120, n_cls: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_cls, n)
    x = np.eye(16)[y] * 0.6 + rng.standard_normal((n, 16)) * 0.4
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


def naive_proba(xtr, ytr, xte, k, n_cls):
    out = np.zeros((len(xte), n_cls))
    for i, q in enumerate(xte):
        d = [float(np.sqrt(((q.astype(np.float64) - r) ** 2).sum())) for r in xtr]
        nn = sorted(range(len(d)), key=lambda j: (d[j], j))[:k]
        for j in nn:
            out[i, ytr[j]] += 1.0 / k
    return out


@pytest.mark.parametrize("k", [1, 5, 11])
def test_knn_matches_naive_and_sklearn(k: int) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    x, y = data()
    xtr, ytr, xte, yte = x[:90], y[:90], x[90:], y[90:]
    knn = ExpressionKNN(k=k).fit(xtr, ytr)
    np.testing.assert_allclose(knn.predict_proba(xte), naive_proba(xtr, ytr, xte, k, 4), atol=1e-12)
    ref = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(xtr, ytr)
    np.testing.assert_array_equal(knn.predict(xte), ref.predict(xte))
    assert knn.score(xte, yte) == pytest.approx(ref.score(xte, yte))


def test_string_labels_classes_and_clamping() -> None:
    x, y = data(n=30, n_cls=3)
    names = np.array(["happy", "sad", "angry"])[y]
    knn = ExpressionKNN(k=50).fit(x, names)
    assert list(knn.classes_) == ["angry", "happy", "sad"] and knn.k_ == 30
    assert set(knn.predict(x[:5])) <= {"angry", "happy", "sad"}
    fixed = ExpressionKNN(k=1, classes=FERPLUS_CLASSES).fit(x, y)
    assert fixed.predict_proba(x).shape == (30, 8)
    assert list(fixed.predict(x[:3])) == [FERPLUS_CLASSES[i] for i in y[:3]]
    assert fixed.score(x, [FERPLUS_CLASSES[i] for i in y]) == 1.0
    with pytest.raises(Exception, match="unknown label"):
        knn.score(x[:1], ["bored"])
    with pytest.raises(Exception, match="not fitted"):
        ExpressionKNN().predict(x)
    assert ExpressionKNN().set_params(k=3).get_params()["k"] == 3


def test_evaluate_matches_sklearn_metrics() -> None:
    from sklearn.metrics import f1_score, roc_auc_score

    x, y = data(seed=1, n=200)
    knn = ExpressionKNN(k=15).fit(x[:120], y[:120])
    rep = evaluate(knn, x[120:], y[120:], split="synthetic")
    proba = knn.predict_proba(x[120:])
    for c in range(4):
        assert rep.per_class[c]["auc"] == pytest.approx(roc_auc_score(y[120:] == c, proba[:, c]))
    assert rep.mean_auc == pytest.approx(np.mean([r["auc"] for r in rep.per_class]))
    pred = proba.argmax(axis=1)
    assert rep.macro_f1 == pytest.approx(f1_score(y[120:], pred, average="macro"))
    assert rep.accuracy == pytest.approx((pred == y[120:]).mean())
    assert rep.confusion.sum() == 80 and np.trace(rep.confusion) == (pred == y[120:]).sum()
    assert len(rep.to_frame()) == 4 and "mean AUC" in rep.format()


def write_fer(folder: Path, n_train: int = 160, n_test: int = 40, seed: int = 0) -> None:
    """A tiny FER2013 + FER+ trio: face brightness pattern depends on the class."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    fer = ["emotion,pixels,Usage"]
    new = ["Usage,Image name," + ",".join([*FERPLUS_CLASSES, "unknown", "NF"])]
    for r in range(n_train + n_test):
        usage = "Training" if r < n_train else "PublicTest"
        c = int(rng.integers(0, 4))
        img = rng.integers(0, 60, (48, 48))
        img[(c // 2) * 24 : (c // 2) * 24 + 24, (c % 2) * 24 : (c % 2) * 24 + 24] += 150
        votes = [0] * 10
        votes[c] = 8
        votes[(c + 1) % 8] = 2
        fer.append(f"0,{' '.join(map(str, img.ravel()))},{usage}")
        new.append(f"{usage},fer{r:07d}.png," + ",".join(map(str, votes)))
    (folder / "fer2013.csv").write_text("\n".join(fer) + "\n")
    (folder / "fer2013new.csv").write_text("\n".join(new) + "\n")


def test_build_load_and_evaluate_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPRSIM_CACHE", str(tmp_path / "cache"))
    write_fer(tmp_path / "fer")
    stub = StubEmbedder()
    stub.embed_crops = lambda crops: np.stack(  # type: ignore[attr-defined]
        [_grid(c) for c in np.asarray(crops)]
    )
    out = tmp_path / "ref.npz"
    ref = cl.build_reference_set(stub, out, data_dir=tmp_path / "fer", k_grid=(1, 3, 7, 500))
    assert out.is_file() and ref.model == "stub@1" and len(ref.labels) == 160
    ks = [r["k"] for r in ref.meta["k_selection"]]
    assert ks == [1, 3, 7] and ref.k in ks  # K=500 > fit size is skipped
    best = max(ref.meta["k_selection"], key=lambda r: (r["accuracy"], -r["k"]))
    assert ref.k == best["k"] and best["accuracy"] > 0.9  # the classes are easy here
    assert ref.meta["n_held_out"] == 8  # 5% of 160: the default model's validation split
    loaded = cl.load_reference_set(out)
    assert loaded.classes == FERPLUS_CLASSES and loaded.k == ref.k
    np.testing.assert_array_equal(loaded.embeddings, ref.embeddings)
    assert np.load(out)["embeddings"].dtype == np.float16
    rep = cl.evaluate_reference(stub, loaded, data_dir=tmp_path / "fer")
    assert rep.n == 40 and rep.accuracy > 0.9 and rep.split.startswith("FER+ PublicTest")
    with pytest.raises(ModelError, match="reference set was made with model stub@1"):
        cl.evaluate_reference(StubEmbedder("other@1"), loaded, data_dir=tmp_path / "fer")


def _grid(crop: np.ndarray) -> np.ndarray:
    from stub_embedder import grid_embedding

    c = np.asarray(crop)
    return grid_embedding(np.repeat(c[..., None], 3, axis=2) if c.ndim == 2 else c)


def test_missing_reference_set_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no kNN reference set"):
        cl.load_reference_set(tmp_path / "nope.npz")
    (tmp_path / "bad.npz").write_bytes(b"junk")
    with pytest.raises(ModelError, match="not a valid reference set"):
        cl.load_reference_set(tmp_path / "bad.npz")


def test_classify_images_with_random_model(random_embedder, tmp_path: Path) -> None:
    from exprsim.samples import sample_path

    rng = np.random.default_rng(0)
    emb = rng.standard_normal((40, 16)).astype(np.float32)
    ref = cl.ReferenceSet(
        emb / np.linalg.norm(emb, axis=1, keepdims=True),
        rng.integers(0, 8, 40),
        FERPLUS_CLASSES,
        random_embedder.config.name_version,
        5,
    )
    res = cl.classify_images([sample_path("grace_hopper.jpg")], random_embedder, ref)
    assert len(res.faces) >= 1 and res.k == 5
    f = res.faces[0]
    assert f.label in FERPLUS_CLASSES and sum(f.proba.values()) == pytest.approx(1.0)
    frame = res.to_frame()
    assert {"label", "confidence", "p_neutral"} <= set(frame.columns)
    assert "data:image/jpeg" in cl.classification_page(res).render()  # thumbnails: JPEG


@pytest.mark.data
@pytest.mark.slow
def test_reference_set_and_tag_calibration_on_real_fer(tmp_path: Path, random_embedder) -> None:
    from exprsim.apps.tag import calibrate_from_ferplus
    from exprsim.data.fer import default_data_dir

    if not (default_data_dir() / "fer2013new.csv.gz").exists():
        pytest.skip(f"FER data not found in {default_data_dir()}")
    ref = cl.build_reference_set(
        random_embedder, tmp_path / "ref.npz", max_faces=600, k_grid=(1, 11)
    )
    assert len(ref.labels) == 600 and ref.k in (1, 11) and ref.model == "exprnet_s@test"
    assert ref.meta["n_held_out"] > 0 and (tmp_path / "ref.npz").stat().st_size < 100_000
    cal = calibrate_from_ferplus(random_embedder, refs_per_class=5)
    assert cal.n_references > 0 and 0.0 < cal.positive_rate < 1.0
    assert cal.recall[0] == 0.0 and cal.recall[-1] == pytest.approx(1.0)


def test_cli_expands_folders_and_refuses_empty_ones(tmp_path: Path) -> None:
    from exprsim.cli.argtypes import expand_image_paths
    from exprsim.errors import ExprsimError

    (tmp_path / "sub").mkdir()
    for name in ("b.jpg", "sub/a.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert expand_image_paths([str(tmp_path)]) == [
        str(tmp_path / "b.jpg"),
        str(tmp_path / "sub" / "a.png"),
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExprsimError, match="no image files"):
        expand_image_paths([str(tmp_path / "empty")])


def _ref(n: int = 30, dim: int = 16, k: int = 5, model: str = "exprnet_s@test") -> cl.ReferenceSet:
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((n, dim)).astype(np.float32)
    return cl.ReferenceSet(emb, rng.integers(0, 8, n), FERPLUS_CLASSES, model, k)


def test_reference_files_that_are_not_reference_sets(tmp_path: Path) -> None:
    good = _ref().save(tmp_path / "good.npz")
    assert cl.load_reference_set(good).k == 5
    (tmp_path / "empty.npz").write_bytes(b"")
    np.save(tmp_path / "array.npy", np.zeros(3))
    (tmp_path / "truncated.npz").write_bytes(good.read_bytes()[:300])
    _ref(k=0).save(tmp_path / "k0.npz")
    bad_labels = _ref()
    bad_labels.labels[0] = 99
    bad_labels.save(tmp_path / "labels.npz")
    for name in ("empty.npz", "array.npy", "truncated.npz", "k0.npz", "labels.npz"):
        with pytest.raises(ModelError, match="not a valid reference set"):
            cl.load_reference_set(tmp_path / name)


def test_reference_of_another_dimension_is_refused(random_embedder) -> None:
    from exprsim.index.store import ModelMismatchError

    ref = _ref(dim=8, model=random_embedder.config.name_version)
    with pytest.raises(ModelMismatchError, match="8-d"):
        cl._check_model(ref, random_embedder)


def test_reference_set_repr_gives_sizes_not_values() -> None:
    ref = cl.ReferenceSet(
        np.full((300, 16), 0.25, np.float32), np.zeros(300, np.int64), ("a", "b"), "m@1", 5
    )
    text = repr(ref)
    assert text == "ReferenceSet(300 faces, 16-d, classes=('a', 'b'), model='m@1', k=5)"
    assert "0.25" not in text  # printed the whole arrays before
