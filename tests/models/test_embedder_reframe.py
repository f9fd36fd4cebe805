"""``Embedder.embed_crops`` re-frames loosely framed crops (:mod:`exprsim.faces.reframe`);
crops exprsim aligned itself, and FER2013-sized ones, are embedded as they are."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import exprsim.faces.reframe as reframe_mod
from exprsim.errors import ArgumentError, BackendUnavailableError
from exprsim.faces.align import AlignConfig, align_face
from exprsim.io import load_image
from exprsim.models.embedder import embed_aligned, load_model
from exprsim.samples import sample_path

#: grace_hopper.jpg's hand-checked landmarks (tests/faces/conftest.py)
_LM = np.array([[221, 190], [305, 188], [268, 243], [230, 280], [303, 277]], float)


@pytest.fixture(scope="module")
def model():
    return load_model()


def _cut(factor: float, size: int) -> np.ndarray:
    cfg = AlignConfig(size=size, eye_distance=0.355 / factor, border="replicate")
    return align_face(load_image(sample_path("grace_hopper.jpg")), _LM, cfg)


def _refuse(*args, **kwargs):
    raise AssertionError("reframe_crops must not run")


def test_fer_sized_crops_never_reach_the_detector(model, monkeypatch) -> None:
    crops = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    plain = model.embed_crops(crops, reframe=False)
    monkeypatch.setattr(reframe_mod, "reframe_crops", _refuse)
    assert np.array_equal(model.embed_crops(crops), plain)
    assert np.array_equal(model.emotion_proba(crops), model.emotion_proba(crops, reframe=False))


def test_embed_images_and_embed_aligned_do_not_reframe(model, monkeypatch) -> None:
    monkeypatch.setattr(reframe_mod, "reframe_crops", _refuse)
    got = model.embed_images([sample_path("grace_hopper.jpg")])
    assert len(got) == 1
    crop = got[0].aligned.crop
    assert np.array_equal(
        embed_aligned(model, crop[None]), model.embed_crops(crop[None], reframe=False)
    )


def test_a_mixed_batch_puts_every_row_in_its_place(model) -> None:
    loose = _cut(2.0, 200)
    usual = _cut(1.0, 200)
    blank = np.full((200, 200, 3), 120, np.uint8)
    batch = np.stack([blank, loose, usual])
    got = model.embed_crops(batch)
    done = reframe_mod.reframe_crops(batch, model.config.preprocess.align_config())
    assert done.reframed.tolist() == [False, True, False]
    np.testing.assert_array_equal(got, model.embed_crops(done.crops, reframe=False))
    one_by_one = np.concatenate([model.embed_crops(c[None]) for c in batch])
    np.testing.assert_allclose(got, one_by_one, atol=1e-5)
    z, p = model.embed_with_proba(batch)
    np.testing.assert_allclose(z, got, atol=1e-5)
    np.testing.assert_allclose(p, model.emotion_proba(batch), atol=1e-6)
    plain = model.embed_crops(batch, reframe=False)
    assert not np.allclose(got[1], plain[1], atol=1e-3)  # the loose one is cut again
    np.testing.assert_allclose(got[[0, 2]], plain[[0, 2]], atol=0.05)  # the others: resampling


def test_a_loose_crop_embeds_near_the_aligned_face(model) -> None:
    aligned = model.embed_crops(_cut(1.0, 112)[None], reframe=False)[0]
    loose = _cut(2.2, 224)[None]
    plain = model.embed_crops(loose, reframe=False)[0]
    again = model.embed_crops(loose)[0]
    assert np.linalg.norm(again - aligned) < 0.5 * np.linalg.norm(plain - aligned)


def test_reframe_must_be_a_bool(model) -> None:
    with pytest.raises(ArgumentError, match="reframe must be True or False"):
        model.embed_crops(np.zeros((1, 48, 48), np.uint8), reframe="yes")


def test_no_detector_embeds_as_is_with_one_warning(model, monkeypatch, caplog) -> None:
    import exprsim.models.embedder as emb_mod

    def missing(*args, **kwargs):
        raise BackendUnavailableError("detector 'mediapipe' is unavailable: no mediapipe")

    monkeypatch.setattr(reframe_mod, "reframe_crops", missing)
    monkeypatch.setattr(emb_mod, "_warned_no_detector", False)
    loose = _cut(2.0, 200)[None]
    with caplog.at_level(logging.WARNING, logger="exprsim.models.embedder"):
        a = model.embed_crops(loose)
        b = model.embed_crops(loose)
    assert np.array_equal(a, model.embed_crops(loose, reframe=False)) and np.array_equal(a, b)
    said = [r.getMessage() for r in caplog.records if "re-framing" in r.getMessage()]
    assert len(said) == 1 and "no mediapipe" in said[0]


def test_a_duck_typed_embedder_is_called_as_it_is() -> None:
    class Stub:
        def embed_crops(self, crops: np.ndarray) -> np.ndarray:
            return np.ones((len(crops), 16), np.float32)

    assert embed_aligned(Stub(), np.zeros((2, 112, 112, 3), np.uint8)).shape == (2, 16)


def test_bad_batches_fail_as_before(model) -> None:
    from exprsim.errors import ModelError

    with pytest.raises(ModelError, match="uint8"):
        model.embed_crops(np.zeros((1, 100, 100), np.float32))
    with pytest.raises(ModelError):
        model.embed_crops(np.zeros((1, 100, 100, 4), np.uint8))
