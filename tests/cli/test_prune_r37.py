"""Round 37 (a review of round 36): `index add DIR --prune` kept an unmounted drive's files
only when its mount point stayed as an empty folder; automounters and desktops
(``/media/user/DRIVE``) remove the mount point too, and every file of the drive was
forgotten with its labels and tags. A gone folder whose files all carried labels or tags
is named and kept; a deleted photo of a folder still there is pruned as before."""

from __future__ import annotations

import shutil
from pathlib import Path

from cli_run import run

from exprsim.index.store import FaceIndex
from exprsim.samples import sample_path


def _media(tmp_path: Path) -> Path:
    media = tmp_path / "media"
    for drive, name in (("A", "grace_hopper.jpg"), ("B", "pexels_langer_frame000.jpg")):
        (media / drive).mkdir(parents=True)
        shutil.copy(sample_path(name), media / drive)
    return media


def test_a_drive_whose_mount_point_went_with_it_is_not_forgotten(capsys, tmp_path: Path) -> None:
    media, db = _media(tmp_path), tmp_path / "p.db"
    assert run(capsys, "index", "add", str(media), "--db", str(db))[0] == 0
    with FaceIndex(db) as ix:
        ix.add_tags([r.id for r in ix.records()], "family")
    (media / "A").rename(tmp_path / "offline")  # unmounted: /media/user/A removed
    rc, out, err = run(capsys, "index", "add", str(media), "--db", str(db), "--prune")
    assert rc == 1
    assert "A is gone and none of its 1 indexed file is there" in err
    assert "labels or tags of 1 face" in err and "exprsim index remove" in err
    assert "forgot 0 files" in out
    with FaceIndex(db) as ix:
        assert ix.info().n_files == 2 and all(r.tags == ("family",) for r in ix.records())
    # forgotten on purpose, as the message says
    assert run(capsys, "index", "remove", "--db", str(db), str(media / "A"))[0] == 0
    rc, out, err = run(capsys, "index", "add", str(media), "--db", str(db), "--prune")
    assert rc == 0 and "is gone" not in err


def test_a_gone_folder_without_labels_or_tags_is_pruned(capsys, tmp_path: Path) -> None:
    media, db = _media(tmp_path), tmp_path / "p.db"
    assert run(capsys, "index", "add", str(media), "--db", str(db))[0] == 0
    shutil.rmtree(media / "A")
    rc, out, _ = run(capsys, "index", "add", str(media), "--db", str(db), "--prune")
    assert rc == 0 and "forgot 1 file" in out
    with FaceIndex(db) as ix:
        assert ix.info().n_files == 1


def test_a_renamed_tagged_folder_is_pruned_its_tags_kept_where_it_is_now(
    capsys, tmp_path: Path
) -> None:
    """A review of this round: the first version held the old name of a renamed folder for
    ever (its files are gone, their faces tagged), though the tags are carried to the
    photos under the new name."""
    media, db = _media(tmp_path), tmp_path / "p.db"
    assert run(capsys, "index", "add", str(media), "--db", str(db))[0] == 0
    with FaceIndex(db) as ix:
        ix.add_tags([r.id for r in ix.records()], "family")
    (media / "A").rename(media / "A-trip")
    rc, out, err = run(capsys, "index", "add", str(media), "--db", str(db), "--prune")
    assert rc == 0 and "is gone" not in err and "forgot 1 file" in out
    with FaceIndex(db) as ix:
        got = {Path(r.source).parent.name: r.tags for r in ix.records()}
    assert got == {"A-trip": ("family",), "B": ("family",)}


def test_a_backup_copy_without_the_labels_does_not_let_a_drive_be_forgotten(
    capsys, tmp_path: Path
) -> None:
    """A review of this round: the same photo indexed in a backup folder, without the
    drive's label and tag, counted as the drive's photo carried elsewhere."""
    media, db = _media(tmp_path), tmp_path / "p.db"
    backup = tmp_path / "backup"
    backup.mkdir()
    shutil.copy(media / "A" / "grace_hopper.jpg", backup)
    assert run(capsys, "index", "add", str(media), str(backup), "--db", str(db))[0] == 0
    with FaceIndex(db) as ix:
        drive = [r.id for r in ix.records() if "/A/" in r.source]
        ix.set_label(drive, "grace")
        ix.add_tags(drive, "family")
    (media / "A").rename(tmp_path / "offline")
    rc, _, err = run(capsys, "index", "add", str(media), "--db", str(db), "--prune")
    assert rc == 1 and "A is gone" in err  # was: forgot it, its label and tag with it
    with FaceIndex(db) as ix:
        assert sum(r.label == "grace" for r in ix.records()) == 1
