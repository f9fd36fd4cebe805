"""Round 21: ``labels="predict"`` with a model the shipped reference set was not made with
is refused before any image is embedded (it was refused after the whole embedding)."""

from __future__ import annotations

from pathlib import Path

import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.apps.labels import label_image_faces
from exprsim.errors import ExprsimError, ModelError


class _Counting(StubEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.embedded = 0

    def embed_images(self, *args: object, **kwargs: object) -> list[object]:
        self.embedded += 1
        return super().embed_images(*args, **kwargs)  # type: ignore[no-any-return]


def test_predict_with_another_model_is_refused_before_the_embedding(tmp_path: Path) -> None:
    write_images(tmp_path / "album", 2)
    stub = _Counting()  # "stub@1": the shipped reference set is another model's
    with pytest.raises(ModelError, match="--labels folder"):
        label_image_faces([tmp_path / "album"], stub, labels="predict")
    assert stub.embedded == 0
    from exprsim.apps.labels import check_labels

    with pytest.raises(ModelError, match="--labels folder"):
        check_labels("predict", stub)


def test_check_labels_guards() -> None:
    """Folder and none need no reference set; an unknown method is refused."""
    from exprsim.apps.labels import check_labels

    stub = StubEmbedder()
    assert check_labels("folder", stub) is None and check_labels("none", stub) is None
    with pytest.raises(ExprsimError, match="unknown labels"):
        check_labels("guess", stub)
