"""Eleventh audit, video side (silent wrong answers): a short appearance that guided
detection missed (finding 1), times from the container's start (2), a Matroska clip with a
start offset called truncated (3), time on screen of a low-rate stretch and with
``--every`` (4), the sampling of a folder of frames (5), an even smoothing window (6) and
frame numbers after leading frames the decoder drops (7)."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from exprsim.errors import ExprsimError
from exprsim.video.frames import FrameReader
from exprsim.video.pipeline import VideoConfig, analyze_video, sample_seconds
from exprsim.video.report import _overview_rows
from exprsim.video.tracks import median_smooth

from .conftest import faces_frame as _frame
from .conftest import numbered_frames


def _write(
    path: Path,
    frames: list[np.ndarray],
    pts: list[int],
    time_base: Fraction,
    rate: int = 25,
    fmt: str | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode frames at the given timestamps (units of ``time_base``)."""
    import av

    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        stream.options = {"crf": "18", "preset": "ultrafast", **(options or {})}
        for im, p in zip(frames, pts, strict=True):
            frame = av.VideoFrame.from_ndarray(im, format="rgb24")
            frame.pts, frame.time_base = p, time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


# ----------------------------------------------------------------- 1: short appearance


def test_a_short_appearance_between_full_detections_is_a_person(face_patches, embedder, tmp_path):
    # 5 fps, every frame sampled; full detections at slots 0, 5, 10, 15. Eileen is on
    # screen in slots 6-11: the guided slots 6-9 searched only near Grace
    frames = [
        _frame(face_patches, {"grace": 20, **({"eileen": 180} if 6 <= i <= 11 else {})})
        for i in range(20)
    ]
    clip = _write(tmp_path / "short.mp4", frames, list(range(20)), Fraction(1, 5), rate=5)
    cfg = VideoConfig(fps=5, identity="iou", workers=1, sharpness_threshold=0.0)
    a = analyze_video(clip, embedder, cfg, classifier=None)
    assert a.n_persons == 2  # was 1: Eileen found in slots 10, 11 only, under min_samples
    eileen = a.person_stats[1]
    assert eileen.frames_present == 6
    assert eileen.first_seen == pytest.approx(1.2) and eileen.last_seen == pytest.approx(2.2)
    assert eileen.time_on_screen == pytest.approx(1.2)
    # as the full detector on every frame finds them
    cfg = replace(cfg, redetect_every=1)
    full = analyze_video(clip, embedder, cfg, classifier=None)
    assert [f.slot for f in a.faces] == [f.slot for f in full.faces]


# ----------------------------------------------------------------- 2: container start


def _av_clip(path: Path) -> Path:
    """An mp4 whose AAC audio starts at 0 s and whose video (25 fps, 2 s) starts at 1.0 s."""
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.options = {"preset": "ultrafast"}
        audio = out.add_stream("aac", rate=44100)
        for k in range(0, 3 * 44100, 1024):
            a = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
            a.sample_rate, a.pts, a.time_base = 44100, k, Fraction(1, 44100)
            for packet in audio.encode(a):
                out.mux(packet)
        for i, im in enumerate(numbered_frames(50)):
            f = av.VideoFrame.from_ndarray(im, format="rgb24")
            f.pts, f.time_base = 25 + i, Fraction(1, 25)
            for packet in video.encode(f):
                out.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode():
                out.mux(packet)
    return path


def test_times_count_from_the_container_start(tmp_path):
    clip = _av_clip(tmp_path / "av.mp4")
    with FrameReader(clip, fps=5) as reader:
        frames = list(reader)
    # as players show them (was 0.0, 0.2, ...: from the video stream's own start)
    assert [round(f.time, 3) for f in frames[:3]] == [1.0, 1.2, 1.4]
    assert [f.index for f in frames[:3]] == [0, 5, 10]
    assert min(f.time for f in frames) >= 0.0
    assert reader.info.duration == pytest.approx(2.0) and not reader.truncated


# ----------------------------------------------------------------- 3: Matroska start


@pytest.mark.parametrize("suffix", [".mkv", ".webm", ".mp4"])
def test_a_complete_clip_with_a_start_offset_is_not_truncated(tmp_path, suffix):
    import av

    if suffix == ".webm" and "libvpx-vp9" not in av.codecs_available:
        pytest.skip("no VP9 encoder")
    frames = numbered_frames(50)
    pts = [i + 50 for i in range(50)]  # 2 s of video from 2.0 s on
    if suffix == ".webm":
        clip = tmp_path / "off.webm"
        with av.open(str(clip), "w") as out:
            stream = out.add_stream("libvpx-vp9", rate=25)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            stream.options = {"deadline": "realtime", "cpu-used": "8"}
            for p, im in zip(pts, frames, strict=True):
                f = av.VideoFrame.from_ndarray(im, format="rgb24")
                f.pts, f.time_base = p, Fraction(1, 25)
                for packet in stream.encode(f):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    else:
        clip = _write(tmp_path / f"off{suffix}", frames, pts, Fraction(1, 25))
    with FrameReader(clip, every=1) as reader:
        got = list(reader)
    assert len(got) == 50 and got[0].time == pytest.approx(0.0)
    # was: "declared 4.00 s" (Matroska's duration counts from 0), truncated with a warning
    assert reader.info.duration == pytest.approx(2.0, abs=0.05)
    assert not reader.truncated and reader.warnings == []


# ----------------------------------------------------------------- 4: time on screen


def test_a_low_rate_stretch_counts_in_full(face_patches, embedder, tmp_path):
    # 0-2 s at 30 fps, then 2-6 s at 2 fps; Grace on screen from 1.0 s to 5.0 s
    times = [i / 30 for i in range(60)] + [2.0 + k / 2 for k in range(8)]
    frames = [_frame(face_patches, {"grace": 100} if 1.0 <= t < 5.0 else {}) for t in times]
    pts = [round(t * 1000) for t in times]
    clip = _write(tmp_path / "vfr.mkv", frames, pts, Fraction(1, 1000), rate=30)
    a = analyze_video(clip, embedder, VideoConfig(fps=5, identity="iou"), classifier=None)
    (st,) = a.person_stats
    assert sorted({round(f.time, 3) for f in a.faces})[4:] == [1.8, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5]
    # each frame of the 2 fps stretch stands for 0.5 s (was capped at 2 x 0.2 = 0.4 s: 3.4)
    assert st.time_on_screen == pytest.approx(4.0, abs=1e-3)


def test_every_nth_frame_time_on_screen_does_not_depend_on_the_container(
    face_patches, embedder, tmp_path
):
    # 0-2 s at 30 fps, 2-4 s at 10 fps; Grace from 1.0 s to 3.0 s. The containers give
    # different average rates (mkv 30, mp4 about 21), hence different sample periods
    times = [i / 30 for i in range(60)] + [2.0 + k / 10 for k in range(20)]
    frames = [_frame(face_patches, {"grace": 100} if 1.0 <= t < 3.0 else {}) for t in times]
    got = []
    for suffix in (".mkv", ".mp4"):
        pts = [round(t * 1000) for t in times]
        clip = _write(tmp_path / f"vfr{suffix}", frames, pts, Fraction(1, 1000), rate=30)
        cfg = VideoConfig(every=3, identity="iou")
        (st,) = analyze_video(clip, embedder, cfg, classifier=None).person_stats
        got.append(st.time_on_screen)
    # samples at 1.0, 1.1, ..., 1.9 (0.1 s each), 2.0, 2.3, 2.6, 2.9 (0.3 s each); was
    # 1.8 (mkv: 0.3 s gaps capped at 0.2) and 2.14 (mp4)
    assert got == pytest.approx([2.2, 2.2], abs=1e-3)


def test_sample_seconds_from_the_decoded_frames():
    # decoded at 10 fps, then 2 fps; every 3rd decoded frame sampled; period 0.3
    decoded = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 1.5, 2.0, 2.5]
    at = [0, 3, 6, 9]
    times = [decoded[k] for k in at]
    got = sample_seconds(times, 0.3, 0.0, decoded, at, finished=True)
    np.testing.assert_allclose(got, [0.3, 0.7, 1.5, 0.5])
    # a lone long gap among regular frames is a hole: counts 2 x period at most
    decoded = [0.0, 0.1, 0.2, 3.2, 3.3, 3.4]
    got = sample_seconds(decoded, 0.1, 0.0, decoded, range(6), finished=True)
    np.testing.assert_allclose(got, [0.1, 0.1, 0.2, 0.1, 0.1, 0.1])
    # not read to the end (max_frames): the last sampled frame stands for the period
    got = sample_seconds([0.0, 0.5, 1.0], 0.2, 0.0, [0.0, 0.5, 1.0], [0, 1, 2], finished=False)
    np.testing.assert_allclose(got, [0.5, 0.5, 0.2])


# ----------------------------------------------------------------- 5: folder sampling


def test_a_folder_reports_every_image_sampled(embedder, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, im in enumerate(numbered_frames(6, 64, 48)):
        Image.fromarray(im).save(folder / f"f{i}.png")
    a = analyze_video(folder, embedder, VideoConfig(identity="iou"), classifier=None)
    assert a.n_sampled == 6
    # was fps 5.0, every None: "sampling 5 fps" although every image was used
    assert (a.config.fps, a.config.every) == (None, 1)
    assert a.to_dict()["config"]["every"] == 1
    rows = {r["what"]: r["value"] for r in _overview_rows(a)}
    assert rows["sampling"] == "every image"


# ----------------------------------------------------------------- 6: even window


def test_an_even_smoothing_window_is_refused(embedder, tmp_path):
    x = np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32)
    for window in (2, 4):
        with pytest.raises(ExprsimError, match="odd"):
            median_smooth(x, window)  # was: smoothed over window + 1 faces
    assert median_smooth(x, 3).shape == (8, 16) and median_smooth(x, 1).shape == (8, 16)
    with pytest.raises(ExprsimError, match="smooth_window must be odd"):
        analyze_video(tmp_path / "never-opened.mp4", embedder, VideoConfig(smooth_window=4))


# ----------------------------------------------------------------- 7: leading frames


def test_frame_numbers_count_the_frames_a_cut_stream_starts_without(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(100)]
    whole = _write(
        tmp_path / "gop.ts",
        frames,
        list(range(100)),
        Fraction(1, 25),
        fmt="mpegts",
        options={"g": "50", "bf": "3"},
    )
    data = whole.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[(len(data) // 4) // 188 * 188 :])  # from the middle of a GOP
    with FrameReader(cut, every=1) as reader:
        got = list(reader)
    assert got[0].time > 0.06  # the decoder dropped the frames before the next keyframe
    # every frame number is the one its timestamp says (was: counted from 0 at got[0])
    assert [f.index for f in got] == [round(f.time * 25) for f in got]
    assert reader.leading_lost == got[0].index > 0
    assert any("do not decode" in w for w in reader.warnings)
