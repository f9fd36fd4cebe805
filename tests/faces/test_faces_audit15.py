"""Fifteenth robustness round, faces: a disk that fills never spoils what an earlier run
wrote (crops, tables)."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pandas as pd
import pytest

from exprsim.faces.pipeline import FaceTable, analyze_files
from exprsim.samples import sample_path


def test_a_crop_the_disk_cannot_hold_leaves_the_earlier_crop_whole(
    tmp_path: Path, mp_detector: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audit: on a full disk, `faces --crops` overwrote every earlier crop of the same name
    with a cut PNG (9 of 9 unreadable)."""
    from PIL import Image

    album = tmp_path / "album"
    album.mkdir()
    shutil.copy(sample_path("grace_hopper.jpg"), album / "a.jpg")
    crops = tmp_path / "crops"
    analyze_files([album], detector=mp_detector, crops_dir=crops)
    (crop,) = crops.iterdir()
    before = crop.read_bytes()

    def full_disk(self: Image.Image, fp: object, *args: object, **kw: object) -> None:
        with open(fp, "wb") as fh:  # type: ignore[arg-type]
            fh.write(b"\x89PNG\r\n")  # a start, then no room
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    table = analyze_files([album], detector=mp_detector, crops_dir=crops)
    assert not table.rows and "No space left on device" in table.errors[0][1]
    monkeypatch.undo()
    assert [p.name for p in crops.iterdir()] == [crop.name]  # no temporary file left
    assert crop.read_bytes() == before
    Image.open(crop).load()


def test_a_table_the_disk_cannot_hold_leaves_the_earlier_table_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audit: `classify`, `summarize`, `search` and `tag calibrate -o` (and
    FaceTable.save) wrote over the earlier table in place: a full disk left a cut one."""
    import exprsim.io
    from exprsim.cli.apps_cmd import _write_table

    out = tmp_path / "t.csv"
    old = pd.DataFrame({"source": ["a.jpg", "b.jpg"], "face": [0, 0]})
    old.to_csv(out, index=False)
    before = out.read_bytes()
    real = exprsim.io._write_table  # the writer of a table's bytes, into a temporary

    def full_disk(table: object, path: object) -> None:
        Path(str(path)).write_text("source,fa")  # a start, then no room
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(exprsim.io, "_write_table", full_disk)
    new = pd.DataFrame({"source": ["c.jpg"] * 5, "face": range(5)})
    for write in (lambda: _write_table(new, str(out)), lambda: FaceTable(rows=[{}]).save(out)):
        with pytest.raises(OSError):
            write()
        assert out.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]
    monkeypatch.setattr(exprsim.io, "_write_table", real)
    _write_table(new, str(out))
    assert pd.read_csv(out)["source"].tolist() == ["c.jpg"] * 5


def _phone_photo() -> object:
    """A 4032x3024 photo (a phone's 12 MP) holding the bundled faces at 130-250 px, on a
    smooth random background: the full-range model runs on its tiles."""
    import cv2
    import numpy as np

    from exprsim.faces.pipeline import analyze_image
    from exprsim.io import load_image
    from exprsim.samples import sample_images

    rng = np.random.default_rng(1)
    canvas = cv2.resize((rng.random((12, 16, 3)) * 120 + 60).astype(np.uint8), (4032, 3024))
    for k, path in enumerate(sorted(sample_images())[:6]):
        width = 130 + 24 * k
        src = load_image(path)
        x1, _, x2, _ = max(analyze_image(src), key=lambda a: a.face.width).face.box
        s = width / (x2 - x1)
        small = cv2.resize(src, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)[:900, :900]
        ox, oy = 150 + (k % 3) * 1300, 300 + (k // 3) * 1400
        canvas[oy : oy + small.shape[0], ox : ox + small.shape[1]] = small
    return canvas


@pytest.mark.slow
def test_both_engines_find_the_same_faces_in_a_phone_photo() -> None:
    """Audit: on 12-MP photos the default detector (BlazeFace on LiteRT) kept full-range
    anchors scoring 0.5-0.6, which MediaPipe's graph drops; averaged into a detection, they
    moved its box by up to 6 px and swapped face numbers, though `mediapipe-graph` is
    documented as finding the same faces."""
    import numpy as np

    from exprsim.faces.detect import create_detector

    photo = _phone_photo()
    lite = create_detector("mediapipe").detect(photo)
    graph = create_detector("mediapipe-graph").detect(photo)
    assert len(lite) == len(graph) >= 4
    for a, b in zip(lite, graph, strict=True):
        np.testing.assert_allclose(a.box, b.box, atol=0.01)


def test_table_rows_keep_the_quality_values_a_filter_reads() -> None:
    """Audit: tables rounded sharpness to 3 decimals and yaw to 2; an index bulk-loaded from
    `embed`'s table then kept a face (sharpness 4.329) that the same photo indexed directly
    (4.32871...) left out under `--min-sharpness 4.3288`."""
    import numpy as np

    from exprsim.faces.pipeline import face_row
    from exprsim.faces.quality import Quality
    from exprsim.faces.types import AlignedFace, Face

    face = Face(np.array([1.0, 2, 30, 40]), 0.9, np.zeros((5, 2), np.float32), "mediapipe")
    q = Quality(4.328711986541748, -1.4469102536967269, 0.1234, -7.77777, ok=True)
    row = face_row("a.jpg", 0, AlignedFace(face, np.zeros((8, 8, 3), np.uint8), q))
    assert (row["sharpness"], row["yaw"], row["pitch"], row["roll"]) == (
        q.sharpness,
        q.yaw,
        q.pitch,
        q.roll,
    )
