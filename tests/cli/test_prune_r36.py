"""Round 36 (an audit of every deletion): `index add DIR --prune` with a drive mounted in
DIR unmounted (its mount point an empty folder) forgot every file of the drive, with
their labels and tags; such a folder is named and kept. A folder whose photos were deleted
is still pruned (round 19), and so are faces without labels or tags (adding the photos
again brings everything back)."""

from __future__ import annotations

import shutil
from pathlib import Path

from cli_run import run

from exprsim.index.store import FaceIndex
from exprsim.samples import sample_path


def _album(tmp_path: Path) -> Path:
    album = tmp_path / "album"
    (album / "usbdrive").mkdir(parents=True)
    shutil.copy(sample_path("grace_hopper.jpg"), album)
    for name in ("pexels_langer_frame000.jpg", "pexels_langer_frame072.jpg"):
        shutil.copy(sample_path(name), album / "usbdrive")
    return album


def _label_all(db: Path) -> None:
    with FaceIndex(db) as ix:
        ix.set_label([r.id for r in ix.records()], "mum")


def test_an_unmounted_drive_inside_the_album_is_not_forgotten(capsys, tmp_path: Path) -> None:
    album, db = _album(tmp_path), tmp_path / "p.db"
    assert run(capsys, "index", "add", str(album), "--db", str(db))[0] == 0
    _label_all(db)
    (album / "usbdrive").rename(tmp_path / "offline")  # `umount album/usbdrive`
    (album / "usbdrive").mkdir()
    rc, out, err = run(capsys, "index", "add", str(album), "--db", str(db), "--prune")
    assert rc == 1
    assert "usbdrive is empty and none of its 2 indexed files is there" in err
    assert "labels or tags of 2 faces" in err and "exprsim index remove" in err
    assert "forgot 0 files" in out
    with FaceIndex(db) as ix:
        assert ix.info().n_files == 3 and all(r.label == "mum" for r in ix.records())


def test_deleted_photos_and_faces_without_labels_are_still_pruned(capsys, tmp_path: Path) -> None:
    album, db = _album(tmp_path), tmp_path / "p.db"
    assert run(capsys, "index", "add", str(album), "--db", str(db))[0] == 0
    _label_all(db)
    (album / "usbdrive" / "pexels_langer_frame000.jpg").unlink()  # one of two deleted
    rc, out, _ = run(capsys, "index", "add", str(album), "--db", str(db), "--prune")
    assert rc == 0 and "forgot 1 file" in out
    for f in (album / "usbdrive").iterdir():  # every photo of the folder deleted, no labels
        f.unlink()
    with FaceIndex(db) as ix:
        ix.set_label([r.id for r in ix.records()], None)
    rc, out, _ = run(capsys, "index", "add", str(album), "--db", str(db), "--prune")
    assert rc == 0 and "forgot 1 file" in out
    with FaceIndex(db) as ix:
        assert ix.info().n_files == 1
