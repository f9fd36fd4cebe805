"""Trainer options for other machines and recipes: mixup with votes, a packed copy of the
data, a validation split independent of the seed, the device a run trains on."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from exprsim.errors import DataError, ModelError
from exprsim.training.ferplus import mix_batch, resolve_device, train
from exprsim.training.ferplus_config import TrainConfig
from exprsim.training.ferplus_data import load_data, load_packed_ferplus


def _tiny(**kw) -> TrainConfig:
    base = TrainConfig(
        data="synthetic",
        max_train=192,
        val_fraction=0.25,
        epochs=1,
        batch_size=64,
        triplet_weight=0.0,
        num_threads=1,
    )
    return replace(base, **kw)


def test_mixup_mixes_inputs_and_votes_alike():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(6, 1, 4, 4)).astype(np.float32))
    d = rng.dirichlet(np.ones(8), size=6).astype(np.float32)
    xm, dm = mix_batch(x, d, 0.4, 1.0, np.random.default_rng(7))
    # the same draws, replayed by hand: lambdas, who mixes, partners
    r = np.random.default_rng(7)
    lam = r.beta(0.4, 0.4, size=6)
    lam = np.where(r.random(6) < 1.0, lam, 1.0)
    j = r.permutation(6)
    for i in range(6):  # naive per-face reference
        np.testing.assert_allclose(
            xm[i].numpy(), lam[i] * x[i].numpy() + (1 - lam[i]) * x[j[i]].numpy(), atol=1e-6
        )
        np.testing.assert_allclose(dm[i], lam[i] * d[i] + (1 - lam[i]) * d[j[i]], atol=1e-6)
    np.testing.assert_allclose(dm.sum(1), 1.0, atol=1e-6)
    assert not np.allclose(dm, d)  # something was mixed


def test_mixup_share_zero_leaves_the_batch_alone():
    x = torch.randn(5, 1, 3, 3)
    d = np.random.default_rng(1).dirichlet(np.ones(8), size=5).astype(np.float32)
    xm, dm = mix_batch(x, d, 0.4, 0.0, np.random.default_rng(0))
    torch.testing.assert_close(xm, x)
    np.testing.assert_array_equal(dm, d)


def test_mixup_run_trains_and_is_reproducible(tmp_path):
    cfg = _tiny(mixup_alpha=0.4, mixup_p=0.5)
    a = train(cfg, tmp_path / "a", progress=False)
    b = train(cfg, tmp_path / "b", progress=False)
    assert np.isfinite(a.final_metrics["loss"])
    assert a.final_metrics["loss"] == b.final_metrics["loss"]
    plain = train(_tiny(), tmp_path / "c", progress=False)
    assert plain.final_metrics["loss"] != a.final_metrics["loss"]  # mixing changed the run


def test_bad_mixup_settings_fail_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="mixup_p"):
        train(_tiny(mixup_alpha=0.2, mixup_p=1.5), tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match="objective"):
        train(_tiny(mixup_alpha=0.2, objective="sgm"), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def _pack(tmp_path, n: int = 40):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 48, 48), dtype=np.uint8)
    votes = rng.integers(0, 4, size=(n, 8)).astype(np.float32)
    votes[:, 0] += 1  # every face has votes
    path = tmp_path / "pack.npz"
    np.savez_compressed(path, images=images, votes=votes, rows=np.arange(n))
    return path, images, votes


def test_split_seed_keeps_the_validation_faces_across_seeds(tmp_path):
    path = _pack(tmp_path)[0]

    def val(**kw):
        return load_data(TrainConfig(data="ferplus", data_dir=str(path), val_fraction=0.25, **kw))[
            1
        ]

    v0 = val(seed=0)
    np.testing.assert_array_equal(val(seed=1, split_seed=0).images, v0.images)
    assert not np.array_equal(val(seed=1).images, v0.images)  # the seed alone moves it


def test_packed_ferplus_file_is_loaded_like_the_csv(tmp_path):
    path, images, votes = _pack(tmp_path)
    im, vo = load_packed_ferplus(path)
    np.testing.assert_array_equal(im, images)
    np.testing.assert_array_equal(vo, votes)
    tr, va = load_data(TrainConfig(data="ferplus", data_dir=str(path), val_fraction=0.25))
    assert len(tr.images) + len(va.images) == 40
    # every face keeps its own votes, normalised
    both = np.concatenate([tr.images, va.images]).reshape(40, -1)
    dist = np.concatenate([tr.dist, va.dist])
    for row, dd in zip(both, dist, strict=True):
        i = int(np.flatnonzero((images.reshape(40, -1) == row).all(1))[0])
        np.testing.assert_allclose(dd, votes[i] / votes[i].sum(), atol=1e-6)


def test_a_bad_packed_file_is_a_clear_data_error(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((3, 48, 48), np.float32), votes=np.zeros((3, 8)))
    with pytest.raises(DataError, match="uint8"):
        load_packed_ferplus(bad)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a packed"):
        load_packed_ferplus(tmp_path / "junk.npz")


def test_device_names():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ModelError, match="device must be"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA"):
            resolve_device("cuda")


def test_checkpoint_holds_cpu_tensors(tmp_path):
    train(_tiny(swa_epochs=1), tmp_path / "r", progress=False)
    state = torch.load(tmp_path / "r" / "state.pt", weights_only=True)
    tensors = [v for v in state["model"].values()] + [v for v in state["swa"].values()]
    tensors += [
        v for st in state["opt"]["state"].values() for v in st.values() if torch.is_tensor(v)
    ]
    assert tensors and all(t.device.type == "cpu" for t in tensors)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_run_resumes_on_the_cpu(tmp_path):
    cfg = _tiny(epochs=2, device="cuda", mixup_alpha=0.2)
    train(replace(cfg, epochs=1), tmp_path / "r", progress=False)
    state = torch.load(tmp_path / "r" / "state.pt", weights_only=True)
    assert all(v.device.type == "cpu" for v in state["model"].values())
    res = train(replace(cfg, device="cpu"), tmp_path / "r", progress=False)  # resume on CPU
    assert res.epochs_run == 1 and np.isfinite(res.final_metrics["loss"])


@pytest.mark.data
@pytest.mark.slow
def test_a_packed_copy_trains_on_the_same_faces_as_the_csv(fer_dir, tmp_path):
    from exprsim.training.ferplus_data import pack_ferplus

    path = pack_ferplus(tmp_path / "fer.npz", fer_dir)
    cfg = TrainConfig(data="ferplus", data_dir=str(fer_dir), min_votes=7)
    packed = replace(cfg, data_dir=str(path))
    for a, b in zip(load_data(cfg), load_data(packed), strict=True):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.dist, b.dist)


def _vgg(**kw) -> TrainConfig:
    return _tiny(model="exprnet_v", model_kwargs={"stages": [[8], [8], [16], [16]]}, **kw)


def test_teacher_targets_blend_the_training_votes_only(tmp_path):
    from exprsim.models.embedder import load_model
    from exprsim.training.ferplus_data import make_teacher_targets

    a, b = tmp_path / "a", tmp_path / "b"
    train(_vgg(), a, progress=False)
    train(_vgg(seed=3, split_seed=0), b, progress=False)
    cfg = _vgg(teacher_weight=0.25)
    path = make_teacher_targets([a, b], cfg, tmp_path / "teach.npz")
    tr0, va0 = load_data(cfg)
    full = load_data(replace(cfg, val_fraction=0.0))[0]  # every face, in load order
    mean = (
        load_model(str(a)).emotion_proba(full.images)
        + load_model(str(b)).emotion_proba(full.images)
    ) / 2  # the two teachers by hand
    tr, va = load_data(replace(cfg, teacher=str(path)))
    np.testing.assert_array_equal(va.dist, va0.dist)  # validation keeps the votes
    assert va.target is None and tr0.target is None
    for img, d, t in zip(tr.images, tr.dist, tr.train_target, strict=True):
        i = int(np.flatnonzero((full.images == img).all(axis=(1, 2)))[0])
        np.testing.assert_allclose(t, 0.75 * d + 0.25 * mean[i], atol=1e-5)
    res = train(replace(cfg, teacher=str(path)), tmp_path / "student", progress=False)
    assert np.isfinite(res.final_metrics["loss"])


def test_teacher_targets_for_other_faces_are_refused(tmp_path):
    from exprsim.training.ferplus_data import make_teacher_targets

    train(_vgg(), tmp_path / "a", progress=False)
    path = make_teacher_targets([tmp_path / "a"], _vgg(), tmp_path / "t.npz")
    with pytest.raises(DataError, match="other faces"):
        load_data(_vgg(teacher=str(path), max_train=128))
    with pytest.raises(ValueError, match="teacher_weight"):
        train(_vgg(teacher=str(path), teacher_weight=2.0), tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match="no emotion classifier"):
        train(_tiny(), tmp_path / "s", progress=False)  # exprnet_s: no classifier of its own
        make_teacher_targets([tmp_path / "s"], _tiny(), tmp_path / "t2.npz")


def test_prob_pair_term_matches_a_loop_over_pairs():
    """The ``prob_pair`` term the trainer adds: squared distances between sqrt(p) against
    2 H^2 of the votes, over every pair of the batch (naive double loop here)."""
    from exprsim.losses.distribution import HellingerMatchingLoss

    g = torch.Generator().manual_seed(4)
    logits = torch.randn(5, 8, generator=g, dtype=torch.float64)
    votes = torch.randint(0, 4, (5, 8), generator=g).double() + torch.eye(5, 8).double()
    sp = (0.5 * logits.log_softmax(1)).exp()
    got = HellingerMatchingLoss(scale=2**0.5, squared=True)(sp, votes).item()
    p, v = logits.softmax(1).numpy(), (votes / votes.sum(1, keepdim=True)).numpy()
    gaps = []
    for i in range(5):
        for j in range(i + 1, 5):
            d2 = sum((p[i, c] ** 0.5 - p[j, c] ** 0.5) ** 2 for c in range(8))
            h2 = 1 - sum((v[i, c] * v[j, c]) ** 0.5 for c in range(8))  # squared Hellinger
            gaps.append((d2 - 2 * h2) ** 2)
    assert got == pytest.approx(sum(gaps) / len(gaps))


def test_teacher_distance_term_matches_a_loop_over_pairs_and_teachers():
    """The relational distillation term: the student's squared distances against the
    teachers' mean squared distance, every pair of the batch (naive loops here)."""
    from exprsim.losses.distribution import DistanceMatchingLoss, ensemble_sq_distances

    g = torch.Generator().manual_seed(5)
    z = torch.nn.functional.normalize(torch.randn(5, 6, generator=g, dtype=torch.float64), dim=1)
    tv = torch.nn.functional.normalize(
        torch.randn(5, 3, 4, generator=g, dtype=torch.float64), dim=2
    )
    goal = ensemble_sq_distances(tv)
    got = DistanceMatchingLoss()(z, goal).item()
    zn, tn = z.numpy(), tv.numpy()
    gaps = []
    for i in range(5):
        for j in range(5):
            d_t = np.mean(
                [sum((tn[i, t, c] - tn[j, t, c]) ** 2 for c in range(4)) for t in range(3)]
            )
            assert goal[i, j].item() == pytest.approx(d_t)
            if j > i:
                d_s = sum((zn[i, c] - zn[j, c]) ** 2 for c in range(6))
                gaps.append((d_s - d_t) ** 2)
    assert got == pytest.approx(sum(gaps) / len(gaps))


def test_teacher_vectors_are_saved_per_teacher_and_drive_the_relational_term(tmp_path):
    from exprsim.models.embedder import load_model
    from exprsim.training.ferplus_data import load_teacher_vectors, make_teacher_targets

    a, b = tmp_path / "a", tmp_path / "b"
    train(_vgg(), a, progress=False)
    train(_vgg(seed=3, split_seed=0), b, progress=False)
    cfg = _vgg()
    path = make_teacher_targets([a, b], cfg, tmp_path / "teach.npz")
    full = load_data(replace(cfg, val_fraction=0.0))[0]
    vecs = load_teacher_vectors(path, full.images)
    assert vecs.shape == (len(full.images), 2, 16)
    for t, m in enumerate((a, b)):  # each teacher's own shipped vector (float16 in the file)
        np.testing.assert_allclose(
            vecs[:, t], load_model(str(m)).embed_crops(full.images), atol=2e-3
        )
    student = replace(cfg, teacher=str(path), teacher_weight=0.0, teacher_pair_weight=0.5)
    tr, va = load_data(student)
    assert tr.teacher_vecs is not None and va.teacher_vecs is None
    assert tr.teacher_vecs.shape == (len(tr.images), 2, 16)
    got = train(student, tmp_path / "s", progress=False).final_metrics
    base = train(cfg, tmp_path / "plain", progress=False).final_metrics
    assert got["teacher_pair"] > 0 and base["teacher_pair"] == 0
    assert np.isfinite(got["loss"]) and got["loss"] != base["loss"]


def test_relational_distillation_needs_a_teacher_with_vectors(tmp_path):
    with pytest.raises(ValueError, match="teacher_pair_weight"):
        train(_vgg(teacher_pair_weight=0.5), tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match="teacher_pair_weight"):
        train(_vgg(teacher_pair_weight=-1.0), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()
    old = tmp_path / "old.npz"  # a file from before vectors were kept: dist and digest only
    full = load_data(replace(_vgg(), val_fraction=0.0))[0]
    from exprsim.training.ferplus_data import pixel_digest

    np.savez(old, dist=full.dist, digest=np.array(pixel_digest(full.images)))
    with pytest.raises(DataError, match="vecs"):
        load_data(_vgg(teacher=str(old), teacher_pair_weight=0.5))
    assert load_data(_vgg(teacher=str(old)))[0].target is not None  # still fine for dist


def test_hellinger_and_prob_pair_options_train_and_change_the_run(tmp_path):
    base = train(_vgg(), tmp_path / "base", progress=False).final_metrics
    hel = train(_vgg(distribution_loss="hellinger", kl_weight=2.0), tmp_path / "h", progress=False)
    pp = train(_vgg(prob_pair_weight=0.25), tmp_path / "pp", progress=False).final_metrics
    assert np.isfinite(hel.final_metrics["loss"]) and np.isfinite(pp["loss"])
    assert hel.final_metrics["kl"] != base["kl"]
    assert pp["prob_pair"] > 0 and base["prob_pair"] == 0
    assert pp["loss"] != base["loss"]


def test_bad_loss_choices_fail_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="distribution_loss"):
        train(_tiny(distribution_loss="js"), tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match="prob_pair_weight"):
        train(_tiny(prob_pair_weight=-1.0), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_size_schedule_picks_the_side_of_each_epoch():
    from exprsim.training.ferplus import train_side

    cfg = _tiny(epochs=6, size_schedule=((1, 24), (3, 32), (5, 48)))
    assert [train_side(cfg, e) for e in range(6)] == [None, 24, 24, 32, 32, 48]
    assert train_side(_tiny(epochs=6), 4) is None


def test_resize_batch_matches_pillow_and_keeps_full_size_batches():
    from PIL import Image

    from exprsim.training.ferplus import resize_batch

    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, size=(48, 48)).astype(np.float32)
    x = torch.from_numpy(img)[None, None]
    got = resize_batch(x, 32)[0, 0].numpy()
    # independent reference: Pillow's antialiased (triangle-filter) bilinear on float pixels
    ref = np.asarray(Image.fromarray(img, mode="F").resize((32, 32), Image.Resampling.BILINEAR))
    np.testing.assert_allclose(got, ref, atol=0.05)
    assert resize_batch(x, 48) is x


def test_a_size_schedule_run_trains_at_each_side_then_exports_at_full_size(tmp_path, monkeypatch):
    import exprsim.training.ferplus as fp
    from exprsim.models.embedder import load_model

    seen: list[tuple[int, int]] = []
    plain_resize = fp.resize_batch

    def spy(x, side):
        out = plain_resize(x, side)
        seen.append((side, int(out.shape[-1])))
        return out

    monkeypatch.setattr(fp, "resize_batch", spy)
    cfg = _vgg(epochs=2, size_schedule=((0, 24), (1, 48)))
    res = train(cfg, tmp_path / "r", progress=False)
    steps = len(load_data(cfg)[0].images) // cfg.batch_size
    assert seen == [(24, 24)] * steps + [(48, 48)] * steps
    plain = train(_vgg(epochs=2), tmp_path / "p", progress=False)
    assert res.final_metrics["loss"] != plain.final_metrics["loss"]
    crops = np.random.default_rng(1).integers(0, 256, size=(3, 48, 48), dtype=np.uint8)
    emb = load_model(str(tmp_path / "r")).embed_crops(crops)
    assert emb.shape == (3, 16) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "schedule",
    [((1, 32), (0, 48)), ((0, 8),), ((0, 10**9),), ((2, 32),), ((0, 32), (0, 48)), ((-1, 32),)],
)
def test_bad_size_schedules_fail_before_any_work(tmp_path, schedule):
    with pytest.raises(ValueError, match="size_schedule"):
        train(_tiny(epochs=2, size_schedule=schedule), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_class_balance_weights_match_a_loop_over_faces_and_classes():
    from exprsim.training.ferplus import class_balance_weights

    rng = np.random.default_rng(0)
    votes = rng.integers(0, 5, size=(40, 8)).astype(float)
    votes[:, 7] = 0.0  # one class nobody voted for
    votes[votes.sum(1) == 0, 0] = 1.0
    d = votes / votes.sum(1, keepdims=True)
    for power in (0.0, 0.5, 1.0):
        mass = [sum(d[f, c] for f in range(40)) for c in range(8)]
        raw = [m**-power if m > 0 else 0.0 for m in mass]
        face = [sum(d[f, c] * raw[c] for c in range(8)) for f in range(40)]
        want = np.array(raw) / (sum(face) / 40)
        got = class_balance_weights(votes, power)  # counts are normalised per face
        np.testing.assert_allclose(got, want, rtol=1e-12)
        assert (d @ got).mean() == pytest.approx(1.0)
    w = class_balance_weights(votes, 1.0)
    assert w[7] == 0 and np.argmax(w[:7]) == np.argmin(d.sum(0)[:7])  # rarest weighs most


def test_class_balance_weights_each_faces_term_by_its_votes(tmp_path):
    """The per-face term of one step against a loop: ``mean_f (d_f @ w) KL(d_f || p_f)``."""
    from exprsim.training.ferplus import _build, _step_fec, _to_input, class_balance_weights

    cfg = _vgg(class_balance=0.5, pair_weight=0.0)
    tr, va = load_data(cfg)
    s = _build(cfg, tr, va, None)
    s.model.eval()  # no dropout / batch statistics: the logits below are the step's
    idx = np.arange(16)
    x = _to_input(tr.images[idx], cfg.preprocess, None, "cpu")
    d_np = tr.train_target[idx]
    with torch.no_grad():
        p = s.model.head(x)[1].double().softmax(1).numpy()
    w = class_balance_weights(tr.train_target, 0.5)
    want = 0.0
    for f in range(16):
        kl = sum(d_np[f, c] * np.log(d_np[f, c] / p[f, c]) for c in range(8) if d_np[f, c] > 0)
        want += float(d_np[f] @ w) * kl / 16
    terms = _step_fec(s, cfg, d_np, x, torch.from_numpy(d_np), np.random.default_rng(0))
    assert float(terms["kl"]) == pytest.approx(want, rel=1e-4)
    plain = _build(replace(cfg, class_balance=0.0), tr, va, None)
    assert plain.class_weights is None and s.class_weights is not None


def test_class_balance_run_trains_and_bad_values_fail_early(tmp_path):
    base = train(_vgg(), tmp_path / "base", progress=False).final_metrics
    bal = train(_vgg(class_balance=1.0), tmp_path / "bal", progress=False).final_metrics
    assert np.isfinite(bal["loss"]) and bal["kl"] != base["kl"]
    with pytest.raises(ValueError, match="class_balance"):
        train(_tiny(class_balance=-0.5), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()
