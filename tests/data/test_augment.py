"""Augmentation: determinism, exact identities, geometry, numpy/torch agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from exprsim.data.augment import (
    AugmentConfig,
    apply_numpy,
    apply_torch,
    augment,
    augment_torch,
    sample_params,
)

IDENTITY = AugmentConfig(
    flip_p=0.0,
    rotate_deg=0.0,
    scale=(1.0, 1.0),
    translate=0.0,
    brightness=0.0,
    contrast=(1.0, 1.0),
    blur_p=0.0,
)


def _faces(n: int = 16, h: int = 48, w: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    return np.clip(base[None] + rng.normal(0, 20, size=(n, h, w)), 0, 255).astype(np.uint8)


def test_deterministic_shapes_and_dtypes() -> None:
    imgs = _faces()
    a = augment(imgs, np.random.default_rng(1))
    b = augment(imgs, np.random.default_rng(1))
    c = augment(imgs, np.random.default_rng(2))
    assert a.dtype == np.uint8 and a.shape == imgs.shape
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    rgb = np.stack([imgs] * 3, axis=-1)[:, :40, :30]
    out = augment(rgb, np.random.default_rng(1))
    assert out.shape == rgb.shape and out.dtype == np.uint8


def test_identity_and_flip_are_exact() -> None:
    imgs = _faces(n=4, h=40, w=36)
    assert np.array_equal(augment(imgs, np.random.default_rng(0), IDENTITY), imgs)
    flip = AugmentConfig(**{**IDENTITY.to_dict(), "flip_p": 1.0})
    assert np.array_equal(augment(imgs, np.random.default_rng(0), flip), imgs[:, :, ::-1])
    x = torch.from_numpy(imgs).float()
    assert torch.allclose(augment_torch(x, np.random.default_rng(0), flip), x.flip(-1), atol=1e-3)


def test_affine_moves_a_blob_where_the_matrix_says() -> None:
    h = w = 48
    yy, xx = np.mgrid[0:h, 0:w]
    src = (20.0, 27.0)  # (x, y)
    blob = np.exp(-((xx - src[0]) ** 2 + (yy - src[1]) ** 2) / (2 * 1.5**2)) * 250
    imgs = np.repeat(blob[None].astype(np.uint8), 8, axis=0)
    cfg = AugmentConfig(brightness=0.0, contrast=(1.0, 1.0), blur_p=0.0, flip_p=0.5)
    params = sample_params(8, (h, w), np.random.default_rng(3), cfg)
    out = apply_numpy(imgs, params, cfg).astype(np.float64)
    for n in range(8):
        fwd = np.linalg.inv(np.vstack([params.inverse[n], [0, 0, 1]]))
        expect = fwd @ np.array([src[0], src[1], 1.0])
        wsum = out[n].sum()
        centroid = ((out[n] * xx).sum() / wsum, (out[n] * yy).sum() / wsum)
        assert centroid == pytest.approx((expect[0], expect[1]), abs=0.3)


def test_parameter_ranges() -> None:
    cfg = AugmentConfig()
    p = sample_params(2000, (48, 48), np.random.default_rng(0), cfg)
    lin = np.linalg.inv(np.vstack([p.inverse[0], [0, 0, 1]]))[:2, :2]
    scale = np.sqrt(abs(np.linalg.det(lin)))
    assert 0.9 <= scale <= 1.1
    assert np.all((p.contrast >= 0.8) & (p.contrast <= 1.2))
    assert np.all(np.abs(p.brightness) <= 25.5)
    assert 0.05 < (p.blur_sigma > 0).mean() < 0.15
    sig = p.blur_sigma[p.blur_sigma > 0]
    assert sig.min() >= 0.3 and sig.max() <= 1.0
    with pytest.raises(ValueError):
        AugmentConfig(blur_ksize=4)


def test_jitter_matches_loop() -> None:
    imgs = _faces(n=3)
    cfg = AugmentConfig(**{**IDENTITY.to_dict(), "brightness": 0.2, "contrast": (0.5, 1.5)})
    p = sample_params(3, (48, 48), np.random.default_rng(4), cfg)
    out = apply_numpy(imgs, p, cfg)
    for n in range(3):
        x = imgs[n].astype(np.float64)
        ref = np.clip(np.rint((x - x.mean()) * p.contrast[n] + x.mean() + p.brightness[n]), 0, 255)
        assert np.abs(out[n].astype(np.float64) - ref).max() <= 1.0


def test_numpy_and_torch_agree() -> None:
    imgs = _faces(n=64)
    cfg = AugmentConfig(blur_p=0.5)
    p = sample_params(64, (48, 48), np.random.default_rng(5), cfg)
    a = apply_numpy(imgs, p, cfg).astype(np.float64)
    b = apply_torch(torch.from_numpy(imgs), p, cfg).numpy().astype(np.float64)
    diff = np.abs(a - b)
    assert diff.mean() < 0.6
    assert np.percentile(diff, 99.9) < 6.0
    # channels-first RGB and a [0, 1] value range give the same picture
    rgb = torch.from_numpy(np.stack([imgs] * 3, axis=1)).float()
    out = apply_torch(rgb / 255.0, p, cfg, value_max=1.0) * 255.0
    assert out.shape == (64, 3, 48, 48)
    assert torch.allclose(out[:, 1], torch.from_numpy(b).float(), atol=1e-3)


def test_shape_mismatch_raises() -> None:
    p = sample_params(2, (48, 48), np.random.default_rng(0))
    with pytest.raises(ValueError):
        apply_numpy(np.zeros((3, 48, 48), np.uint8), p)
    with pytest.raises(ValueError):
        apply_torch(torch.zeros(2, 40, 48), p)


def test_erasing_fills_one_box_per_chosen_image_in_both_backends() -> None:
    imgs = _faces(n=40, h=48, w=48, seed=5)
    cfg = AugmentConfig(**{**IDENTITY.to_dict(), "erase_p": 0.5, "erase_size": (8, 19)})
    p = sample_params(len(imgs), (48, 48), np.random.default_rng(3), cfg)
    assert p.erase is not None
    out_np = apply_numpy(imgs, p, cfg)
    out_t = apply_torch(torch.from_numpy(imgs).float(), p, cfg).numpy()
    n_boxes = 0
    for i in range(len(imgs)):
        y0, x0, bh, bw, grey = (int(v) for v in p.erase[i])
        expect = imgs[i].copy()
        if bh:
            n_boxes += 1
            assert 8 <= bh <= 19 and 8 <= bw <= 19
            assert y0 + bh <= 48 and x0 + bw <= 48
            expect[y0 : y0 + bh, x0 : x0 + bw] = grey  # naive reference: paint the box
        np.testing.assert_array_equal(out_np[i], expect)
        np.testing.assert_allclose(out_t[i], expect, atol=1e-3)
    assert 8 <= n_boxes <= 32  # about half of 40


def test_erasing_draws_after_the_other_parameters() -> None:
    """Erasing draws come last: with or without it, the other parameters are the same, so
    earlier configs (``erase_p=0``) augment exactly as before."""
    a = sample_params(8, (48, 48), np.random.default_rng(0), AugmentConfig())
    b = sample_params(8, (48, 48), np.random.default_rng(0), AugmentConfig(erase_p=0.5))
    np.testing.assert_array_equal(a.inverse, b.inverse)
    np.testing.assert_array_equal(a.contrast, b.contrast)
    np.testing.assert_array_equal(a.brightness, b.brightness)
    assert a.erase is not None and b.erase is not None
    assert not (a.erase[:, 2] > 0).any() and (b.erase[:, 2] > 0).any()
