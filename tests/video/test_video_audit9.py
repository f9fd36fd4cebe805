"""Ninth audit (the API as a long-lived library), video side: ``analyze_video`` closes the
video on every failure path and checks the detector before opening it (finding 6), a
``FrameReader`` is read once (finding 7), ``max_frames`` and the rates are checked, type
first, when the reader is created (findings 8 and 9)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from exprsim.errors import ExprsimError
from exprsim.samples import sample_dir, sample_path
from exprsim.video import pipeline
from exprsim.video.frames import FrameReader, VideoError
from exprsim.video.pipeline import VideoConfig, analyze_video

from .conftest import numbered_frames

CLIP = sample_dir() / "langer_clip.mp4"


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert text and "\n" not in text, text
    return text


def animated_webp(path: Path, n: int = 4) -> Path:
    ims = [Image.fromarray(f) for f in numbered_frames(n, 32, 24)]
    ims[0].save(path, "WEBP", save_all=True, append_images=ims[1:], duration=100, lossless=True)
    return path


def image_folder(path: Path, n: int = 3) -> Path:
    path.mkdir()
    for i, frame in enumerate(numbered_frames(n, 32, 24)):
        Image.fromarray(frame).save(path / f"f{i}.png")
    return path


@pytest.fixture(params=["file", "folder", "webp"])
def source(request, tmp_path) -> Path:
    if request.param == "file":
        return CLIP
    if request.param == "folder":
        return image_folder(tmp_path / "frames")
    return animated_webp(tmp_path / "anim.webp")


# ------------------------------------------------------------------ 7: read once


def test_a_frame_reader_is_read_once(source):
    """Was AttributeError ('NoneType' object has no attribute 'demux') for a file, no frame
    at all and no error for an animated WebP, and every frame again for a folder."""
    reader = FrameReader(source, every=1, max_frames=2)
    assert len(list(reader)) == 2
    with pytest.raises(VideoError) as exc:
        list(reader)
    assert "read once; create another" in one_line(exc)
    with FrameReader(source, every=1, max_frames=2) as again:  # a new reader reads it again
        assert len(list(again)) == 2


def test_a_closed_frame_reader_refuses_to_be_read(source):
    with FrameReader(source, every=1) as reader:
        pass
    with pytest.raises(VideoError) as exc:
        next(iter(reader))
    assert one_line(exc).endswith("the FrameReader is closed; create another")


# ------------------------------------------------------------------ 8 and 9: options


@pytest.mark.parametrize("bad", [0, -3, 1.5, "2", True])
def test_max_frames_must_be_a_positive_integer(bad):
    """``max_frames=0`` yielded one frame."""
    with pytest.raises(VideoError, match="max_frames must be an integer >= 1") as exc:
        FrameReader(CLIP, max_frames=bad)
    one_line(exc)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fps": "1"}, "fps must be in"),  # was TypeError: '<=' not supported
        ({"fps": None}, "fps must be in"),
        ({"fps": True}, "fps must be in"),
        ({"every": "2"}, "every must be an integer"),
        ({"every": 0}, "every must be an integer"),
        ({"source_fps": "25"}, "source_fps must be in"),
        ({"sequence_fps": 0}, "sequence_fps must be in"),
    ],
)
def test_reader_options_are_checked_type_first(kwargs, match):
    with pytest.raises(VideoError, match=match) as exc:
        FrameReader(CLIP, **kwargs)
    one_line(exc)


def test_numpy_integers_are_fine():
    with FrameReader(CLIP, every=np.int64(2), max_frames=np.int32(2)) as reader:
        assert [f.index for f in reader] == [0, 2]


# ------------------------------------------------------------------ 6: analyze_video


class _Recording(FrameReader):
    """A FrameReader that remembers every instance made."""

    made: ClassVar[list[FrameReader]] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _Recording.made.append(self)


@pytest.fixture
def readers(monkeypatch) -> list[FrameReader]:
    _Recording.made = []
    monkeypatch.setattr(pipeline, "FrameReader", _Recording)
    return _Recording.made


def assert_closed(reader: FrameReader) -> None:
    with pytest.raises(VideoError, match=r"FrameReader is closed; create another$"):
        next(iter(reader))


def test_an_unknown_detector_is_refused_before_the_video_is_opened(readers, embedder):
    """Each failed call left the clip open (30 calls: 30 file descriptors)."""
    for _ in range(3):
        with pytest.raises(ExprsimError, match="unknown detector 'nope'") as exc:
            analyze_video(CLIP, embedder, VideoConfig(detector="nope"))
        one_line(exc)
    assert readers == []  # not even opened


@pytest.mark.parametrize(
    ("config", "detector", "match"),
    [
        (VideoConfig(identity="nope"), None, "unknown identity method"),
        (VideoConfig(), object(), "detector must be a registry name or an object with detect"),
        (VideoConfig(), "nope", "unknown detector"),
    ],
)
def test_other_bad_settings_fail_before_the_video_is_opened(
    readers, embedder, config, detector, match
):
    with pytest.raises(ExprsimError, match=match) as exc:
        analyze_video(CLIP, embedder, config, detector=detector)
    one_line(exc)
    assert readers == []


def test_a_closed_detector_fails_before_the_video_is_opened(readers, embedder):
    from exprsim.faces.detect import create_detector

    with create_detector("haar") as det:
        pass
    with pytest.raises(ExprsimError, match="haar detector is closed") as exc:
        analyze_video(CLIP, embedder, VideoConfig(identity="iou"), detector=det)
    one_line(exc)
    assert readers == []


class _FakeMesher:
    made: ClassVar[list[_FakeMesher]] = []

    def __init__(self) -> None:
        self.closed = False
        _FakeMesher.made.append(self)

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("embedding", ["model", "pvae"])
def test_the_video_and_mesher_are_closed_when_setting_up_fails(readers, monkeypatch, embedding):
    """A failure after the video was opened (here: an embedder that is not one) closed
    neither the video nor the face mesher of ``embedding="pvae"``."""
    import exprsim.faces.landmarks as landmarks

    _FakeMesher.made = []
    monkeypatch.setattr(landmarks, "MeshLandmarker", _FakeMesher)
    cfg = VideoConfig(embedding=embedding, identity="iou", max_frames=2)
    with pytest.raises(AttributeError):
        analyze_video(CLIP, object(), cfg, pvae=object())
    assert len(readers) == 1
    assert_closed(readers[0])
    assert all(m.closed for m in _FakeMesher.made)
    assert len(_FakeMesher.made) == (embedding == "pvae")


def test_the_video_is_closed_when_the_frame_stage_cannot_start(readers, monkeypatch, embedder):
    """The progress bar, the guide and the front end are set up before reading starts; a
    failure there left the video open."""
    import exprsim.faces.stream as stream

    def broken(*args, **kwargs):
        raise RuntimeError("front end broken")

    monkeypatch.setattr(stream, "analyze_stream", broken)
    with pytest.raises(RuntimeError, match="front end broken"):
        analyze_video(CLIP, embedder, VideoConfig(identity="iou", max_frames=2), classifier=None)
    assert len(readers) == 1
    assert_closed(readers[0])


def test_a_photo_source_still_works(embedder):
    """The checks added do not refuse a good call (a still photo is a one-frame video)."""
    result = analyze_video(
        sample_path("grace_hopper.jpg"),
        embedder,
        VideoConfig(identity="iou", max_frames=1),
        classifier=None,
    )
    assert result.n_sampled == 1 and len(result.faces) == 1
