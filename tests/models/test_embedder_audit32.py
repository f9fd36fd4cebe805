"""Thirty-second round, models: a model named by a URL is a ``DownloadDisabledError`` (a
``ModelError``), the error exprsim had declared for it and raised nowhere (round 30)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from exprsim.errors import DownloadDisabledError, ModelError
from exprsim.models.embedder import _weights_dir, check_model_files, load_model


@pytest.mark.parametrize(
    "url", ["https://example.com/models/v9", "HTTP://host/m", "s3://bucket/m", "gs://b/m"]
)
def test_a_url_is_refused_as_a_download(url: str) -> None:
    """Before: a plain ``ModelError`` naming the folded path ``https:/example.com/...``."""
    with pytest.raises(DownloadDisabledError, match="never downloads weights") as info:
        load_model(url)
    assert url in str(info.value) and "a URL" in str(info.value)
    assert isinstance(info.value, ModelError)  # every existing handler still catches it


def test_other_missing_models_are_not_called_downloads(tmp_path: Path) -> None:
    for name in ("nope", str(tmp_path / "missing"), "file.safetensors"):
        with pytest.raises(ModelError) as info:
            check_model_files(name)
        assert not isinstance(info.value, DownloadDisabledError), name


def test_a_folder_that_exists_under_a_url_like_name_still_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The URL check comes after the files are looked for: ``https://m`` is the folder
    ``https:/m`` when one is there."""
    folder = tmp_path / "https:" / "m"
    folder.mkdir(parents=True)
    for f in ("config.json", "model.safetensors"):
        shutil.copy(_weights_dir("default") / f, folder / f)
    monkeypatch.chdir(tmp_path)
    assert check_model_files("https://m") == Path("https:/m")


def test_a_crop_at_another_side_is_embedded_through_the_aligned_side() -> None:
    """Audit: ``embed_crops(crops, reframe=False)``, which the README gives for crops exprsim
    aligned itself, took a 224 px crop straight to 48 px, while ``reframe=True`` and every
    detected face go through the aligned side (112 px): two answers for one crop, and the
    first 0.030 from its face's embedding (Grace Hopper) where the second is 0.007 (at
    96 px: 0.059 and 0.026)."""
    import cv2

    import exprsim
    from exprsim.faces.align import AlignConfig
    from exprsim.samples import sample_path

    model = exprsim.load_model()
    image = exprsim.load_image(sample_path("grace_hopper.jpg"))
    face = model.embed_images([image])[0]
    pre = model.config.preprocess
    for side, bound in ((96, 0.04), (224, 0.02)):
        cfg = AlignConfig(size=side, template=pre.template, border=pre.border)
        crop = exprsim.align_face(image, face.aligned.face.landmarks, cfg)[None]
        plain = model.embed_crops(crop, reframe=False)
        at_112 = cv2.resize(crop[0], (112, 112), interpolation=cv2.INTER_AREA)[None]
        np.testing.assert_array_equal(plain, model.embed_crops(at_112, reframe=False))
        np.testing.assert_array_equal(plain, model.embed_crops(crop))  # not re-framed
        assert np.linalg.norm(plain[0] - face.embedding) < bound, side
