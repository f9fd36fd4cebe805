"""Labelled face sets for the apps (``exprsim subclasses``' image folders)."""

from __future__ import annotations

import numpy as np
import pytest
from stub_embedder import write_images

from exprsim.apps.labels import LABEL_METHODS, label_image_faces
from exprsim.errors import ExprsimError, ModelError


@pytest.fixture
def album(tmp_path):
    write_images(tmp_path / "happy", 2, seed=1)
    write_images(tmp_path / "sad", 3, seed=2)
    return tmp_path


def test_folder_labels(stub, album) -> None:
    faces = label_image_faces([album], stub, labels="folder")
    assert faces.class_names == ("happy", "sad") and len(faces) == 5
    assert faces.labels.dtype == np.int64 and faces.labels.tolist() == [0, 0, 1, 1, 1]
    assert faces.embeddings.shape == (5, 16) and faces.embeddings.dtype == np.float32
    assert all(s.endswith("#0") for s in faces.sources) and "happy" in faces.sources[0]
    assert len(faces.crops) == 5 and faces.crops[0].dtype == np.uint8


def test_one_class_and_errors(stub, album, tmp_path) -> None:
    faces = label_image_faces([album / "sad"], stub, labels="none")
    assert faces.class_names == ("all",) and faces.labels.tolist() == [0, 0, 0]
    assert LABEL_METHODS == ("predict", "folder", "none")
    with pytest.raises(ExprsimError, match="unknown labels"):
        label_image_faces([album], stub, labels="guess")
    with pytest.raises(ModelError, match="--labels folder"):  # the shipped set is another model's
        label_image_faces([album], stub, labels="predict")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExprsimError, match="no image files"):
        label_image_faces([tmp_path / "empty"], stub, labels="none")
    write_images(tmp_path / "black", 1)
    from PIL import Image

    Image.new("RGB", (32, 32)).save(tmp_path / "black" / "img_0000.png")  # the stub: no face
    with pytest.raises(ExprsimError, match="no faces"):
        label_image_faces([tmp_path / "black"], stub, labels="none")
