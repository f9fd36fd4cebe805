"""Round 24 (docs/robustness.md): frame times of animations and streams whose
timestamps do not advance, and a GIF whose last frame is held, read without a false
"truncated" or lost frames."""

from __future__ import annotations

import fractions
from pathlib import Path

import numpy as np
from PIL import Image

from exprsim.video.frames import FrameReader


def _frames(n: int) -> list[np.ndarray]:
    return [np.full((48, 64, 3), 20 + 9 * i, np.uint8) for i in range(n)]


def test_a_gif_whose_last_frame_is_held_is_not_truncated(tmp_path: Path) -> None:
    # 19 frames of 100 ms, then the last held 5 s: the file is whole (6.9 s)
    path = tmp_path / "hold.gif"
    ims = [Image.fromarray(f) for f in _frames(20)]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=[100] * 19 + [5000])
    with FrameReader(path, every=1) as reader:
        frames = list(reader)
    assert len(frames) == 20
    assert not reader.truncated, reader.warnings  # was: "stream ends at 2.00 s of 6.90 s"
    assert not [w for w in reader.warnings if "truncated" in w]


def test_an_animated_webp_without_durations_keeps_every_frame(tmp_path: Path) -> None:
    path = tmp_path / "zero.webp"
    ims = [Image.fromarray(f) for f in _frames(12)]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=0, lossless=True)
    with FrameReader(path, fps=5) as reader:
        frames = list(reader)
    times = np.array(reader.decoded_times)
    assert len(times) == 12 and np.allclose(np.diff(times), 0.1)  # ANIMATION_FPS
    assert len(frames) == 6  # 1.2 s at 5 fps (was: 1 frame, every time 0)
    assert any("no duration declared" in w for w in reader.warnings)


def test_a_stream_whose_timestamps_do_not_advance_keeps_its_frames(tmp_path: Path) -> None:
    import av

    path = tmp_path / "same.mkv"
    tb = fractions.Fraction(1, 1000)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = tb
        for im in _frames(10):
            frame = av.VideoFrame.from_ndarray(im, format="rgb24")
            frame.pts, frame.time_base = 0, tb
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with FrameReader(path, every=1) as reader:
        list(reader)
    times = np.array(reader.decoded_times)
    if len(times) > 1 and np.all(np.diff(times) == 0):
        raise AssertionError("timestamps still all equal")
    assert np.all(np.diff(times) > 0), times  # was: every frame at 0 s
    assert any("timestamp of the frame before" in w for w in reader.warnings)


def test_a_held_last_frame_counts_its_own_duration(tmp_path: Path) -> None:
    """Audit: the held last frame stood for the gap before it (0.1 s), so a face seen for
    the whole 6.9 s of the GIF got 2.0 s on screen."""
    import pytest

    from exprsim.video.pipeline import sample_seconds

    path = tmp_path / "hold.gif"
    ims = [Image.fromarray(f) for f in _frames(20)]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=[100] * 19 + [5000])
    with FrameReader(path, every=1) as reader:
        list(reader)
    assert reader.last_duration == pytest.approx(5.0)
    d = list(reader.decoded_times)
    seconds = sample_seconds(
        d, 0.1, 0.0, d, list(range(len(d))), reader.finished, reader.last_duration
    )
    assert seconds.sum() == pytest.approx(6.9)  # was 2.0 in the report (1.9 + 0.1)
    assert sample_seconds(d, 0.1, 0.0, d, list(range(len(d))), True).sum() == pytest.approx(2.0)
