"""Twelfth robustness round: ``classify`` and ``tag IMAGE...`` on a large album kept every
face's 112x112 crop (and, with fragmentation, 100-170 KB of memory a face: 10-17 GB at
100,000 faces). They now take the faces one at a time and keep a crop only for the faces
their page can show (the first ``MAX_GALLERY``)."""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import pytest
from stub_embedder import StubConfig, StubEmbedder, write_images

from exprsim.faces.types import AlignedFace, Face, Quality
from exprsim.models.embedder import FaceEmbedding, faces_of

N_FACES = 12
SHOWN = 3


class CountingEmbedder:
    """Yields ``N_FACES`` faces one at a time and records, before each, how many crops
    handed out earlier are still alive (held by the caller)."""

    def __init__(self, name: str = "stub@1") -> None:
        self.config = StubConfig(name)
        self.alive_before: list[int] = []
        self._refs: list[weakref.ref] = []

    def iter_faces(self, images, detector=None, progress=False, failures=None):
        rng = np.random.default_rng(0)
        for i in range(N_FACES):
            self.alive_before.append(sum(r() is not None for r in self._refs))
            crop = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
            self._refs.append(weakref.ref(crop))
            e = rng.normal(size=16)
            face = Face(np.array([0, 0, 10, 10], np.float32), 0.9, np.zeros((5, 2), np.float32))
            q = Quality(5.0, 0.0, 0.0, 0.0, True)
            yield FaceEmbedding(f"img{i}.png", 0, AlignedFace(face, crop, q), e / np.linalg.norm(e))

    def embed_images(self, *a, **k):  # pragma: no cover - the apps must not call it
        raise AssertionError("embed_images holds every face: the apps iterate")


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> int:
    import exprsim.report.html as html

    monkeypatch.setattr(html, "MAX_GALLERY", SHOWN)
    return SHOWN


def test_classify_keeps_crops_only_for_the_faces_its_page_shows(shown: int) -> None:
    from exprsim.apps.classify import ReferenceSet, classify_images
    from exprsim.data.fer import FERPLUS_CLASSES

    rng = np.random.default_rng(1)
    emb = rng.normal(size=(40, 16))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ref = ReferenceSet(emb.astype(np.float32), np.arange(40) % 8, FERPLUS_CLASSES, "stub@1", 5)
    model = CountingEmbedder()
    result = classify_images(["x.png"], embedder=model, reference=ref)
    assert len(result.faces) == N_FACES
    assert [f.crop is not None for f in result.faces] == [True] * shown + [False] * (
        N_FACES - shown
    )
    # the faces were taken one at a time: past the shown crops, only the face in hand
    assert max(model.alive_before) <= shown + 1
    # the labels are those of every face's embedding, as before
    knn = ref.classifier()
    assert [f.label for f in result.faces] == [
        str(c) for c in knn.predict(np.stack([f.embedding for f in model_faces()]))
    ]


def model_faces() -> list[FaceEmbedding]:
    return list(CountingEmbedder().iter_faces(["x.png"]))


def test_tag_keeps_crops_only_for_the_faces_its_page_shows(tmp_path: Path, shown: int) -> None:
    from exprsim.apps.tag import Tagger
    from exprsim.index.store import FaceIndex

    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as index:
        e = np.zeros(16, np.float32)
        e[0] = 1.0
        index.add_tag_reference("calm", e, "stub@1")
        model = CountingEmbedder()
        results = Tagger(index, embedder=model).tag(["x.png"], threshold=2.0)
    assert len(results) == N_FACES
    assert [r.crop is not None for r in results] == [True] * shown + [False] * (N_FACES - shown)
    assert max(model.alive_before) <= shown + 1
    expect = [np.linalg.norm(f.embedding.astype(np.float64) - e) for f in model_faces()]
    assert [r.distances["calm"] for r in results] == pytest.approx(expect, abs=1e-12)


def test_faces_of_an_embedder_without_iter_faces_uses_its_list(tmp_path: Path) -> None:
    imgs = write_images(tmp_path / "imgs", 3)
    stub = StubEmbedder()
    got = list(faces_of(stub, imgs))
    assert [f.source for f in got] == [str(p) for p in imgs]
    failures: list = []
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert len(list(faces_of(stub, [*imgs, bad], failures=failures))) == 3
    assert len(failures) == 1


def test_embed_images_is_iter_faces_listed(random_embedder) -> None:
    from exprsim.samples import sample_path

    photos = [sample_path("grace_hopper.jpg"), sample_path("astronaut_eileen_collins.jpg")]
    listed = random_embedder.embed_images(photos)
    one_by_one = list(random_embedder.iter_faces(photos))
    assert [(f.source, f.face_index) for f in listed] == [
        (f.source, f.face_index) for f in one_by_one
    ]
    assert len(listed) == 2
    np.testing.assert_array_equal(
        np.stack([f.embedding for f in listed]), np.stack([f.embedding for f in one_by_one])
    )
