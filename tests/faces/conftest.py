"""Shared fixtures for the face front-end tests: sample photos and hand-checked landmarks."""

from __future__ import annotations

import errno
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from exprsim.io import load_image
from exprsim.samples import sample_path

#: Landmarks read off by eye from 6x magnified views of the bundled photos with a 5-px grid
#: (pupil / eye-opening centre, nose tip, outer lip corners), in LANDMARK_NAMES order.
HAND_CHECKED: dict[str, np.ndarray] = {
    "grace_hopper.jpg": np.array(
        [[221, 190], [305, 188], [268, 243], [230, 280], [303, 277]], float
    ),
    "astronaut_eileen_collins.jpg": np.array(
        [[203, 101], [247, 103], [223, 128], [201, 140], [247, 140]], float
    ),
    "pexels_langer_frame000.jpg": np.array(
        [[371, 181], [468, 175], [414, 235], [388, 279], [473, 272]], float
    ),
    "pexels_langer_frame288.jpg": np.array(
        [[400, 131], [502, 135], [452, 174], [404, 237], [493, 238]], float
    ),
    "pexels_langer_frame432.jpg": np.array(
        [[372, 186], [465, 147], [450, 207], [405, 270], [500, 229]], float
    ),
}


@pytest.fixture(scope="session")
def load_sample():
    cache: dict[str, np.ndarray] = {}

    def load(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = load_image(sample_path(name))
        return cache[name].copy()

    return load


@pytest.fixture(scope="session")
def mp_detector():
    """The default detector, shared (MediaPipe graphs take about a second to build)."""
    from exprsim.faces.pipeline import resolve_detector

    return resolve_detector("mediapipe")


@pytest.fixture(scope="session")
def mesh_detector():
    """The default detector with face-mesh landmarks (``mediapipe-mesh``), shared."""
    from exprsim.faces.pipeline import resolve_detector

    return resolve_detector("mediapipe-mesh")


@pytest.fixture
def album_abc(tmp_path: Path) -> Path:
    """``tmp_path/album`` holding ``a.jpg``, ``b.jpg`` and ``c.jpg``, one face each."""
    album = tmp_path / "album"
    album.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        shutil.copy(sample_path("grace_hopper.jpg"), album / name)
    return album


@pytest.fixture
def full_disk(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[Callable[[str], bool] | None], None]:
    """``full_disk(refused)``: PIL's ``Image.save`` raises ENOSPC ("No space left on
    device") for every path ``p`` with ``refused(str(p))`` (a crop is saved under a
    temporary name that contains its final one); ``full_disk(None)``: room again."""
    from PIL import Image

    save = Image.Image.save

    def fill(refused: Callable[[str], bool] | None) -> None:
        if refused is None:
            monkeypatch.setattr(Image.Image, "save", save)
            return

        def refusing(self: Image.Image, fp: object, *args: object, **kw: object) -> None:
            if refused(str(fp)):
                raise OSError(errno.ENOSPC, "No space left on device")
            save(self, fp, *args, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(Image.Image, "save", refusing)

    return fill
