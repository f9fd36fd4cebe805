"""Frame times are the nearest double of the exact time (round 35): the stream's time
base was made a float, so an mp4 at 10 fps (time base 1/10240) put faces at
1.4000000000000001 s and 2.8000000000000003 s, and ``persons.csv`` (rounded) at 2.8: an
exact join of the two tables failed. Every reference below is one correctly rounded
division of whole numbers (``k / 10``), independent of the reader's arithmetic."""

from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from exprsim.video.frames import FrameReader
from exprsim.video.pipeline import VideoConfig, analyze_video

from .conftest import faces_frame, numbered_frames, write_clip
from .test_video_audit11 import _av_clip, _write


def _pts_seconds(path: Path) -> list[Fraction]:
    """Each frame's exact time from the file itself: ``(pts - start) * time_base``."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = stream.start_time or 0
        return [(f.pts - start) * stream.time_base for f in container.decode(stream)]


@pytest.mark.parametrize("fps", [10, 5])
def test_mp4_frame_times_are_the_nearest_doubles(tmp_path: Path, fps: int) -> None:
    clip = write_clip(tmp_path / f"c{fps}.mp4", numbered_frames(30), fps=fps)
    exact = _pts_seconds(clip)
    assert exact == [Fraction(k, fps) for k in range(30)]  # the clip is what we meant
    with FrameReader(clip, every=1) as reader:
        times = [f.time for f in reader]
    expected = [k / fps for k in range(30)]
    assert times == expected  # was 0.30000000000000004 (10 fps), 0.6000000000000001 (5 fps)
    assert list(reader.decoded_times) == expected


def test_sampled_times_are_exact_too(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c10.mp4", numbered_frames(30), fps=10)
    with FrameReader(clip, fps=5) as reader:
        times = [f.time for f in reader]
    assert times == [k / 5 for k in range(15)]  # was 1.4000000000000001, 2.8000000000000003


def test_times_after_a_stream_lead_are_exact(tmp_path: Path) -> None:
    """Video from 1.0 s after the container's start (audio first): pts 12800 + 512 k in
    1/12800 s, so frame k is at (25 + k) / 25 s."""
    with FrameReader(_av_clip(tmp_path / "av.mp4"), every=1) as reader:
        times = [f.time for f in reader]
    assert times == [(25 + k) / 25 for k in range(50)]  # was 1.3599999999999999 for 1.36


def test_times_after_timestamps_jump_back_are_exact(tmp_path: Path) -> None:
    """Two 10 fps recordings joined end to end: the second is timed on from the first."""
    one = write_clip(tmp_path / "a.ts", numbered_frames(10, 64, 48), fps=10, fmt="mpegts")
    joined = tmp_path / "joined.ts"
    joined.write_bytes(one.read_bytes() * 2)
    with FrameReader(joined, every=1) as reader:
        times = [f.time for f in reader]
    assert any("timestamps jump back" in w for w in reader.warnings)
    assert times == [k / 10 for k in range(20)]  # was 0.7000000000000001, 1.7000000000000002


def test_animation_frames_without_durations_are_timed_exactly(tmp_path: Path) -> None:
    """An animated WebP whose frames declare no duration: timed 1/10 s apart, exactly."""
    import numpy as np
    from PIL import Image

    images = [Image.fromarray(np.full((48, 64, 3), 20 + 20 * i, np.uint8)) for i in range(8)]
    path = tmp_path / "still.webp"
    images[0].save(path, save_all=True, append_images=images[1:], duration=0, lossless=True)
    with FrameReader(path, every=1) as reader:
        times = [f.time for f in reader]
    assert any("no duration declared" in w for w in reader.warnings)
    assert times == [k / 10 for k in range(8)]  # was 0.30000000000000004 (0.1 + 0.1 + 0.1)


def test_faces_csv_times_join_persons_csv(face_patches, embedder, tmp_path: Path) -> None:
    """The written faces.csv holds 2.8, as persons.csv does: an exact join works."""
    frames = [faces_frame(face_patches, {"grace": 100}) for _ in range(30)]
    clip = _write(tmp_path / "g.mp4", frames, [1024 * k for k in range(30)], Fraction(1, 10240))
    assert _pts_seconds(clip) == [Fraction(k, 10) for k in range(30)]
    cfg = VideoConfig(fps=5, identity="iou", workers=1, sharpness_threshold=0.0)
    analysis = analyze_video(clip, embedder, cfg, classifier=None)
    paths = analysis.save(tmp_path / "out", html=False)
    with open(paths["faces_csv"], newline="") as fh:
        faces = list(csv.DictReader(fh))
    with open(paths["persons_csv"], newline="") as fh:
        (person,) = csv.DictReader(fh)
    written = [row["time"] for row in faces]
    assert written == [repr(k / 5) for k in range(15)]  # was "1.4000000000000001", ...
    assert person["last_seen_s"] == written[-1] == "2.8"
    assert person["first_seen_s"] in {row["time"] for row in faces}


def _reference_times(start, tb, fps, by_index, lead, frames):
    """The clock's rule with Fraction at every frame (the first exact version)."""
    from fractions import Fraction

    step, offset, last, out = 1 / Fraction(fps), Fraction(0), None, []
    for i, pts in frames:
        if by_index or pts is None:
            t = i / Fraction(fps) + offset
        else:
            t = (pts - start) * tb + lead + offset
        if last is not None and t < last - step:
            offset += last + step - t
            t = last + step
        elif t == last:
            offset += step
            t = last + step
        if last is None or t > last:
            last = t
        out.append(float(t))
    return out


def test_the_integer_path_gives_the_exact_times() -> None:
    """Review: a Fraction a frame cost 15 to 25 us; the integer path must give the same
    doubles, through jumps back, stalls and frames without a timestamp."""
    from fractions import Fraction
    from pathlib import Path

    from exprsim.video.frames import _Clock

    rng = np.random.default_rng(0)
    pts = np.cumsum(rng.integers(900, 1100, size=400)).tolist()
    pts[150:] = [p - 200_000 for p in pts[150:]]  # recordings joined end to end
    pts[60] = pts[59]  # a stall
    frames = [(i, None if i in (90, 91) else p) for i, p in enumerate(pts)]
    for by_index, lead in ((False, Fraction(0)), (False, Fraction(1, 3)), (True, Fraction(0))):
        clock = _Clock(
            Path("v"), 500, Fraction(1, 30000), 30000 / 1001, by_index, lambda m: None, lead
        )
        got = [clock.time(i, p) for i, p in frames]
        want = _reference_times(500, Fraction(1, 30000), 30000 / 1001, by_index, lead, frames)
        assert got == want
