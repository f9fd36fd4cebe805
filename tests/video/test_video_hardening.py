"""Video analysis against awkward clips and interruptions (the fourth robustness round,
docs/robustness.md): two people taking turns in one place, phone rotation, strict JSON,
all-or-nothing saves, empty tables with headers, Ctrl-C at the wrong moment, extreme fps."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from exprsim.video.frames import FrameReader, VideoError
from exprsim.video.pipeline import VideoConfig, analyze_video

from .conftest import LEFT, compose, numbered_frames


def _strict(text: str) -> object:
    def refuse(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.slow
def test_people_taking_turns_in_one_place_are_told_apart(face_patches, clip_factory, embedder):
    pytest.importorskip("dlib")
    # Eileen and Grace alternate at the same spot every 4 frames: one IoU track throughout
    who = [("eileen", "grace")[(k // 4) % 2] for k in range(32)]
    clip = clip_factory("turns.mp4", [compose(face_patches, {w: LEFT}) for w in who], fps=5)
    a = analyze_video(clip, embedder, VideoConfig(fps=5), classifier=None)
    assert a.identity_method == "dlib" and a.n_persons == 2
    pairs = {(who[f.frame], int(p)) for f, p in zip(a.faces, a.persons, strict=True)}
    # each person is one of the two women, never a mix (was: 1 person, or 2 mixed ones)
    assert len(pairs) == 2 and {p for _, p in pairs} == {0, 1}


def test_appearance_is_a_correlation():
    from exprsim.video.tracks import appearance

    rng = np.random.default_rng(0)
    crop = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
    a = appearance(crop)
    assert a.shape == (576,) and abs(float(a @ a) - 1.0) < 1e-5
    assert float(a @ appearance(crop // 2 + 20)) > 0.99  # brightness and contrast do not count
    assert float(a @ appearance(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8))) < 0.3


def test_linker_split_goes_on_under_a_new_id():
    from exprsim.video.tracks import TrackLinker

    link = TrackLinker()
    box = np.array([[10, 10, 50, 50]])
    (t,) = link.update(0, box)
    new = link.split(t)
    assert new != t and link.update(1, box) == [new]  # the next box continues the new track


def _rotated_clip(path: Path, frames: list[np.ndarray]) -> Path:
    """Frames stored turned clockwise, with an mp4 display matrix that turns them back
    (what phones write)."""
    from .conftest import write_clip

    write_clip(path, [np.ascontiguousarray(np.rot90(f, -1)) for f in frames], fps=5)
    data = bytearray(path.read_bytes())
    i = data.find(b"tkhd")
    version = data[i + 4]
    off = i + 8 + (32 if version == 1 else 20) + 8 + 8
    data[off : off + 36] = struct.pack(">9i", 0, -65536, 0, 65536, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
    return path


def test_phone_rotation_is_applied(face_patches, tmp_path):
    frames = [compose(face_patches, {"eileen": LEFT}) for _ in range(4)]
    clip = _rotated_clip(tmp_path / "phone.mp4", frames)
    got = next(iter(FrameReader(clip, fps=5)))
    if got.image.shape[:2] != frames[0].shape[:2]:
        assert got.image.shape[:2] == frames[0].shape[1::-1]
        pytest.fail("the display rotation was ignored: the frame came out sideways")
    assert np.abs(got.image.astype(int) - frames[0]).mean() < 8  # upright, as shown


def test_sampling_rate_is_bounded(tmp_path, clip_factory):
    clip = clip_factory("n.mp4", numbered_frames(4))
    for fps in (1e308, 1e-320, 0.0, float("nan")):
        with pytest.raises(VideoError, match="fps must be in"):
            FrameReader(clip, fps=fps)
    from exprsim.cli import main

    with pytest.raises(SystemExit) as exit_:  # argparse's one usage line (was a traceback)
        main(["video", str(clip), "--out", str(tmp_path / "o"), "--fps", "1e308"])
    assert exit_.value.code == 2


def test_no_face_clip_writes_strict_json_and_tables_with_headers(clip_factory, embedder, tmp_path):
    import pandas as pd

    clip = clip_factory("empty.mp4", numbered_frames(6))
    a = analyze_video(clip, embedder, VideoConfig(fps=5, identity="iou"), classifier=None)
    paths = a.save(tmp_path / "out")
    data = _strict(paths["json"].read_text())  # was: "per_second": NaN
    assert isinstance(data, dict) and data["faces"] == 0
    persons = pd.read_csv(paths["persons_csv"])  # was a file with no header at all
    assert list(persons.columns[:3]) == ["person", "frames_present", "appearance_rate"]
    assert len(persons) == 0


def test_save_is_all_or_nothing(clip_factory, embedder, tmp_path, monkeypatch):
    import exprsim.video.report as report

    clip = clip_factory("few.mp4", numbered_frames(4))
    a = analyze_video(clip, embedder, VideoConfig(fps=5, identity="iou"), classifier=None)
    out = tmp_path / "out"
    out.mkdir()
    old = {n: f"old {n}" for n in ("faces.csv", "persons.csv", "analysis.json", "report.html")}
    for name, text in old.items():
        (out / name).write_text(text)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "video_page", interrupted)
    with pytest.raises(KeyboardInterrupt):
        a.save(out)
    # the previous run is left whole: no new table beside the old report, no temp folder
    assert {p.name: p.read_text() for p in out.iterdir()} == old
    monkeypatch.undo()
    a.save(out, html=False)
    assert not (out / "report.html").exists()  # an old report would describe another run
    assert (out / "faces.csv").read_text() != old["faces.csv"]


@pytest.mark.slow
def test_ctrl_c_between_a_face_and_its_crop_still_reports(monkeypatch, embedder):
    import exprsim.video.pipeline as pipeline
    from exprsim.samples import sample_dir

    real = pipeline._thumb
    calls = {"n": 0}

    def thumb(crop, size):
        calls["n"] += 1
        if calls["n"] == 5:  # Ctrl-C lands while the 5th thumbnail is encoded
            raise KeyboardInterrupt
        return real(crop, size)

    monkeypatch.setattr(pipeline, "_thumb", thumb)
    a = analyze_video(
        sample_dir() / "langer_clip.mp4",
        embedder,
        VideoConfig(max_frames=10, identity="iou"),
        classifier=None,
        keep_on_interrupt=True,
    )  # was: IndexError while flushing a crop whose face was never recorded
    assert a.interrupted and len(a.faces) == 4


def test_persons_of_rejected_faces_only_are_unassigned():
    from exprsim.video.pipeline import _drop_rejected_only

    persons = np.array([0, 0, 1, 1, 2, -1, 2])
    accepted = np.array([False, False, True, False, True, True, True])
    assert _drop_rejected_only(persons, accepted).tolist() == [-1, -1, 0, 0, 1, -1, 1]
