"""Round 30: a user coming from py-feat, deepface, insightface and MediaPipe
(docs/robustness.md, "thirtieth round"). Each test fails on the code before the round."""

from __future__ import annotations

import base64
import io
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from PIL import Image

import exprsim
from exprsim.errors import ArgumentError, ImageError
from exprsim.io import as_rgb8, load_image
from exprsim.samples import sample_dir

GRACE = sample_dir() / "grace_hopper.jpg"
ASTRONAUT = sample_dir() / "astronaut_eileen_collins.jpg"


@pytest.fixture(scope="module")
def model():
    return exprsim.load_model()


# -- a generator of frames is read as it goes ---------------------------------------------


def test_iter_faces_reads_a_generator_as_it_goes(model) -> None:
    """``iter_faces`` listed its input first: a generator of 150 video frames of 4.7 MB
    was held whole (+782 MB) before the first face came out."""
    image = load_image(GRACE)
    pulled = 0

    def frames():
        nonlocal pulled
        for _ in range(300):
            pulled += 1
            yield image

    faces = model.iter_faces(frames())
    first = next(faces)
    assert first.source == "<array #0>"
    assert pulled < 300 - model.batch_size  # a batch ahead (64 faces), not all 300
    faces.close()


def test_embed_images_walks_a_folder(model, tmp_path: Path) -> None:
    """``embed_images(folder)`` said "is a directory" where embed_files, classify_images
    and index add walk it."""
    shutil.copy(GRACE, tmp_path / "a.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    faces = model.embed_images(tmp_path)
    assert [Path(f.source).name for f in faces] == ["a.jpg"]


# -- which face a one-face call takes -------------------------------------------------------


def _face(ok: bool, reasons: tuple[str, ...] = (), embedding=None):
    quality = SimpleNamespace(ok=ok, reasons=reasons)
    crop = np.zeros((112, 112, 3), np.uint8)
    face = SimpleNamespace(box=np.array([0.0, 0.0, 10.0, 10.0]), detector="stub")
    aligned = SimpleNamespace(quality=quality, crop=crop, face=face)
    e = np.zeros(16, np.float32) if embedding is None else embedding
    return SimpleNamespace(embedding=e, aligned=aligned, face_index=0, source="stub")


def _unit(i: int) -> np.ndarray:
    e = np.zeros(16, np.float32)
    e[i] = 1.0
    return e


class _Stub:
    """An embedder whose every image has a rejected largest face (a false detection: a
    spacesuit read upside down) then a good one."""

    config = SimpleNamespace(name_version="stub@1")
    embedding_dim = 16

    def embed_images(self, images, detector=None, **kw):
        return [_face(False, ("upside_down",), _unit(0)), _face(True, (), _unit(1))]


def test_usable_face_is_the_largest_that_passes_the_quality_check(caplog) -> None:
    from exprsim.faces.pipeline import usable_face

    assert usable_face([_face(True), _face(True)]) == 0
    with caplog.at_level(logging.WARNING):
        assert usable_face([_face(False, ("upside_down",)), _face(True)], "x.jpg") == 1
    assert "x.jpg: face 1 used" in caplog.text and "upside_down" in caplog.text
    assert usable_face([_face(False, ("blur",)), _face(False, ("yaw",))]) == 0  # none passes


def test_compare_search_and_tags_skip_a_rejected_largest_face(tmp_path: Path) -> None:
    """The helper's photo of Grace Hopper beside the astronaut: a false detection on the
    spacesuit (score 0.68, ``upside_down``) was face 0, and compare (0.649 where Grace's
    own face gives 0.08), search and tag add used it without a word."""
    from exprsim.apps.compare import compare_images
    from exprsim.apps.search import _query_face
    from exprsim.apps.tag import Tagger
    from exprsim.index.store import FaceIndex

    stub = _Stub()
    image = np.zeros((64, 64, 3), np.uint8)
    result = compare_images([image, image], stub)
    assert np.allclose(result.embeddings, [_unit(1), _unit(1)])
    assert _query_face(image, stub, None, None).face_index == 1
    assert _query_face(image, stub, 0, None).face_index == 0  # asked for: given
    with FaceIndex(tmp_path / "i.db") as ix:
        ref = Tagger(ix, embedder=stub).add("calm", image)
        assert np.allclose(ref.embedding, _unit(1))
        ref0 = Tagger(ix, embedder=stub).add("odd", image, face=0)
        assert np.allclose(ref0.embedding, _unit(0))


def test_the_web_apps_search_and_tags_take_the_usable_face_by_default() -> None:
    pytest.importorskip("fastapi")
    from exprsim.web.app import _nth_face

    found = [_face(False, ("upside_down",)), _face(True)]
    assert _nth_face(found, None) is found[1]
    assert _nth_face(found, 0) is found[0]


# -- the inputs a user of other tools passes ----------------------------------------------


def test_faces_of_in_memory_images_name_their_input(model) -> None:
    """Every face of ``embed_images([blank, a, b])`` was ``"<array>"``: which image it
    came from was lost when one had no face."""
    blank = np.zeros((100, 100, 3), np.uint8)
    image = load_image(GRACE)
    faces = model.embed_images([blank, image, image])
    assert [f.source for f in faces] == ["<array #1>", "<array #2>"]


def _sideways_jpeg() -> bytes:
    """Grace Hopper stored sideways with EXIF orientation 6, as a phone writes it."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.open(GRACE).transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def test_a_pil_image_is_an_input_with_its_exif_orientation(model) -> None:
    """A PIL image was refused, and the advice given (``np.asarray``) dropped its EXIF
    orientation: a phone photo was embedded sideways (distance 0.168 to the upright)."""
    data = _sideways_jpeg()
    assert np.array_equal(load_image(Image.open(io.BytesIO(data))), load_image(data))
    faces = model.embed_images(Image.open(io.BytesIO(data)))
    upright = model.embed_images(GRACE)
    assert len(faces) == 1 and faces[0].source == "<image #0>"
    assert np.linalg.norm(faces[0].embedding - upright[0].embedding) < 0.05


def test_a_data_uri_is_read_and_base64_text_is_refused_in_one_short_line() -> None:
    """A base64 string (deepface's habit) was read as a file name: an 81,775-character
    "File name too long" message."""
    data = GRACE.read_bytes()
    uri = "data:image/jpeg;base64," + base64.b64encode(data).decode()
    assert np.array_equal(load_image(uri), load_image(data))
    with pytest.raises(ImageError) as raised:
        load_image(base64.b64encode(data).decode())
    assert len(str(raised.value)) < 300 and "base64" in str(raised.value)
    with pytest.raises(ImageError, match="base64 data cannot be decoded"):
        load_image("data:image/jpeg;base64,@@@")


def test_a_uint16_array_of_8_bit_values_is_warned_about(caplog) -> None:
    """0..255 values in a uint16 array read as 16-bit (nearly black, no face) without a
    word, where float arrays of 0..255 values are warned about."""
    image = load_image(GRACE)
    with caplog.at_level(logging.WARNING, logger="exprsim.io"):
        out = as_rgb8(image.astype(np.uint16))
    assert int(out.max()) <= 1  # as 16-bit, as before
    assert "astype(np.uint8)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="exprsim.io"):
        as_rgb8(image.astype(np.uint16) * 257)  # real 16-bit values: no warning
    assert "astype(np.uint8)" not in caplog.text


def test_a_tensor_is_one_input_refused_with_a_hint(model) -> None:
    """A torch tensor was iterated row by row: 600 ``<Tensor>`` failures."""
    torch = pytest.importorskip("torch")
    failures: list[ImageError] = []
    assert model.embed_images(torch.zeros(10, 48, 48, 3), failures=failures) == []
    assert len(failures) == 1 and "tensor.numpy()" in str(failures[0])


def test_an_array_among_paths_and_a_path_among_pixels_are_said_plainly(model) -> None:
    """``embed_files([array])`` raised a raw ``TypeError: expected str, bytes or
    os.PathLike``; ``Detector.detect(path)`` said "expected (H, W) ... array, got ()"."""
    from exprsim.apps.embed import embed_files

    with pytest.raises(ArgumentError, match="embed_images"):
        embed_files([np.zeros((8, 8, 3), np.uint8)], model)
    with pytest.raises(ImageError, match=r"load_image"):
        as_rgb8(str(GRACE))
    detector = exprsim.faces.detect.create_detector("haar")
    with pytest.raises(ImageError, match=r"load_image"):
        detector.detect(str(GRACE))


def test_summarize_images_with_the_model_second_says_where_it_goes(model) -> None:
    """``summarize_images([S], m)`` (the order of classify_images and embed_files) said
    "n_clusters must be an integer >= 1, got <Embedder ...>"."""
    from exprsim.apps.summarize import summarize_images

    with pytest.raises(ArgumentError, match="embedder="):
        summarize_images([sample_dir()], model)  # type: ignore[arg-type]


def test_a_batch_without_faces_has_the_columns_of_one_with_faces(model, tmp_path) -> None:
    """``embed_files`` of faceless images made a 24-column table where the CLI (and a
    batch with faces) has ``model``, ``e0..e15`` and the file columns: batches did not
    concatenate."""
    from exprsim.apps.embed import embed_files, embedding_columns

    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.zeros((50, 50, 3), np.uint8))
    empty = embed_files([blank], model).to_frame()
    full = embed_files([GRACE], model).to_frame()
    assert list(empty.columns) == list(full.columns) == embedding_columns(16)
    assert len(empty) == 0 and len(full) == 1
