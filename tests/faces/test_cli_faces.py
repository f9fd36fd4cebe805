"""`exprsim detectors` and `exprsim faces` through main(argv)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from exprsim.cli import main
from exprsim.samples import sample_path


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    shutil.copy(sample_path("grace_hopper.jpg"), d / "grace.jpg")
    shutil.copy(sample_path("pexels_langer_frame288.jpg"), d / "sub" / "frame.jpg")
    (d / "notes.txt").write_text("not an image, and not picked up from a folder")
    return d


def test_detectors_table(capsys):
    assert main(["detectors"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["name", "available", "description"]
    rows = {ln.split()[0]: ln.split()[1] for ln in lines[1:] if ln and not ln.startswith(" ")}
    assert rows["mediapipe"] == "yes" and rows["haar"] == "yes"
    assert "mtcnn" in rows


def test_faces_folder_to_csv_with_crops(images, tmp_path, capsys):
    out = tmp_path / "faces.csv"
    crops = tmp_path / "crops"
    assert main(["faces", str(images), "--out", str(out), "--crops", str(crops)]) == 0
    table = pd.read_csv(out)
    assert len(table) == 2
    assert sorted(table["source"].map(lambda s: s.split("/")[-1])) == ["frame.jpg", "grace.jpg"]
    assert {"x1", "score", "nose_x", "sharpness", "yaw", "pitch", "roll", "quality_ok", "crop"} <= (
        set(table.columns)
    )
    assert not {"file", "ok"} & set(table.columns)
    assert sorted(p.name for p in crops.iterdir()) == ["frame_0.png", "grace_0.png"]
    assert "2 files, 2 faces, 0 unreadable" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_faces_other_formats(images, tmp_path, suffix):
    out = tmp_path / f"faces{suffix}"
    assert main(["-q", "faces", str(images / "grace.jpg"), "--out", str(out)]) == 0
    table = pd.read_parquet(out) if suffix == ".parquet" else pd.read_json(out, lines=True)
    assert len(table) == 1 and table["face"].iloc[0] == 0


def test_faces_csv_on_stdout(images, capsys):
    assert main(["-q", "faces", str(images / "grace.jpg")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("source,face,x1") and len(out) == 2


def test_bad_files_reported_and_exit_codes(images, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    missing = tmp_path / "missing.jpg"
    out = tmp_path / "f.csv"
    assert main(["-q", "faces", str(images / "grace.jpg"), str(bad), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.png" in err and "empty" in err
    assert (
        main(["-q", "faces", str(images / "grace.jpg"), str(bad), "--strict", "--out", str(out)])
        == 1
    )
    capsys.readouterr()
    assert main(["-q", "faces", str(bad), str(missing), "--out", str(out)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and "missing.jpg" in err[1]
    assert "not written" in err[2]  # every input failed: an earlier table is kept


def test_bad_arguments(images, tmp_path, capsys):
    assert main(["faces", str(images), "--out", str(tmp_path / "x.xlsx")]) == 2
    assert "must end in .csv" in capsys.readouterr().err
    assert main(["faces", str(images), "--detector", "nope"]) == 2
    assert "unknown detector" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["faces", str(empty)]) == 2
    assert "no image files" in capsys.readouterr().err
