"""Round 36 (an audit of every overwrite): `video --out DIR` holding the complete report of
another video replaced it without a word; it is refused. The same video again, from
another working folder too, still replaces its own report."""

from __future__ import annotations

import json
import shutil

import pytest
from cli_run import one_line, run

from exprsim.samples import sample_path

pytest.importorskip("av", reason="the video extra (PyAV) is not installed")


def test_the_report_of_another_video_is_not_replaced(capsys, tmp_path, monkeypatch) -> None:
    for name in ("talk1.mp4", "talk2.mp4"):
        shutil.copy(sample_path("langer_clip.mp4"), tmp_path / name)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "vrep"
    assert run(capsys, "video", "talk1.mp4", "--out", str(out), "--max-frames", "3")[0] == 0
    before = (out / "analysis.json").read_bytes()
    rc, _, err = run(capsys, "video", "talk2.mp4", "--out", str(out), "--max-frames", "3")
    assert rc == 2
    assert "holds the report of another video (talk1.mp4)" in one_line(err)
    assert (out / "analysis.json").read_bytes() == before
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # the same video named from elsewhere: its own
    rc, _, _ = run(capsys, "video", "../talk1.mp4", "--out", str(out), "--max-frames", "3")
    assert rc == 0
    assert json.loads((out / "analysis.json").read_text())["video"]["source"] == "../talk1.mp4"


def test_two_cameras_files_of_one_name_are_two_videos(capsys, tmp_path, monkeypatch) -> None:
    for day in ("day1", "day2"):
        (tmp_path / day).mkdir()
        shutil.copy(sample_path("langer_clip.mp4"), tmp_path / day / "GOPR0001.MP4")
    out = tmp_path / "vrep"
    first = str(tmp_path / "day1" / "GOPR0001.MP4")
    assert run(capsys, "video", first, "--out", str(out), "--max-frames", "3")[0] == 0
    second = str(tmp_path / "day2" / "GOPR0001.MP4")
    rc, _, err = run(capsys, "video", second, "--out", str(out), "--max-frames", "3")
    assert rc == 2 and "holds the report of another video" in err
