"""Round 24 (docs/robustness.md): batches of crops the re-framing path mishandled."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.errors import ModelError
from exprsim.faces.align import AlignConfig, align_face
from exprsim.io import load_image
from exprsim.models.embedder import load_model
from exprsim.samples import sample_path

#: grace_hopper.jpg's hand-checked landmarks (tests/faces/conftest.py)
_LM = np.array([[221, 190], [305, 188], [268, 243], [230, 280], [303, 277]], float)


@pytest.fixture(scope="module")
def model():
    return load_model()


def _loose_gray() -> np.ndarray:
    cfg = AlignConfig(size=200, eye_distance=0.355 / 2.0, border="replicate")
    rgb = align_face(load_image(sample_path("grace_hopper.jpg")), _LM, cfg)
    return rgb.mean(axis=2).round().astype(np.uint8)


def test_one_channel_crops_are_reframed_like_gray_ones(model) -> None:
    # (N, H, W, 1) was embedded as it is while the same (N, H, W) crops were re-framed
    gray = _loose_gray()[None]
    assert not np.allclose(model.embed_crops(gray), model.embed_crops(gray, reframe=False))
    np.testing.assert_array_equal(model.embed_crops(gray[..., None]), model.embed_crops(gray))
    np.testing.assert_array_equal(model.emotion_proba(gray[..., None]), model.emotion_proba(gray))


@pytest.mark.parametrize("shape", [(2, 0, 100), (2, 100, 0), (1, 0, 100, 3)])
def test_empty_crops_fail_as_a_model_error_whatever_reframe(model, shape) -> None:
    # an ImageError naming a shape the caller never passed came out with re-framing
    crops = np.zeros(shape, np.uint8)
    for reframe in (True, False):
        with pytest.raises(ModelError, match="crops must be"):
            model.embed_crops(crops, reframe=reframe)
        with pytest.raises(ModelError, match="crops must be"):
            model.embed_with_proba(crops, reframe=reframe)


@pytest.mark.parametrize("shape", [(1, 70, 32767), (1, 2, 100000), (1, 65, 65000, 3)])
def test_strips_wider_than_opencv_warps_embed(model, shape) -> None:
    # the detector's warp refused sides of 32,767 px or more: a raw cv2.error
    crops = np.zeros(shape, np.uint8)
    got = model.embed_crops(crops)
    np.testing.assert_array_equal(got, model.embed_crops(crops, reframe=False))


def test_a_headless_model_refuses_a_bad_batch_too() -> None:
    import torch

    from exprsim.models.embedder import Embedder

    class Plain(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.normalize(x.flatten(1)[:, :16], dim=1)

    headless = Embedder(Plain(), load_model().config)
    assert headless.emotion_proba(np.zeros((1, 48, 48), np.uint8)) is None
    with pytest.raises(ModelError, match="crops must be"):
        headless.emotion_proba("not crops")
