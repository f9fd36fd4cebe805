"""Review of the eleventh round's video code: time on screen after an early stop
(finding 1), the memory of the search back over guided frames (2) and the frame numbers of
an AVI whose codec delays its first frame (3)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from exprsim.video import pipeline
from exprsim.video.frames import FrameReader
from exprsim.video.pipeline import VideoConfig, analyze_video, sample_seconds

from .conftest import CLIP_H as H
from .conftest import CLIP_W as W
from .conftest import faces_frame as _frame


def _write(
    path: Path,
    frames: list[np.ndarray],
    codec: str = "libx264",
    rate: int = 25,
    fmt: str | None = None,
    options: dict[str, str] | None = None,
    max_b_frames: int | None = None,
) -> Path:
    """Encode frames at ``rate`` (frame ``i`` at ``i / rate`` s)."""
    import av

    tb = Fraction(1, rate)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        if max_b_frames is not None:
            stream.codec_context.max_b_frames = max_b_frames
        stream.options = options or {}
        for i, im in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(im, format="rgb24")
            frame.pts, frame.time_base = i, tb
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


# ----------------------------------------------------------------- 1: early stop


def test_the_last_collected_sample_ends_at_the_next_sampled_frame():
    # 10 fps decoded, every 2nd sampled (period 0.2); a Ctrl-C left 3 of the 11 sampled
    # frames collected, the reader having decoded all 21 frames
    decoded = [k / 10 for k in range(21)]
    at = list(range(0, 21, 2))
    times = [decoded[k] for k in at[:3]]
    for finished in (True, False):
        got = sample_seconds(times, 0.2, 0.0, decoded, at, finished)
        # was [0.2, 0.2, 1.7] (finished) / [0.2, 0.2, 1.8]: every frame decoded ahead
        np.testing.assert_allclose(got, [0.2, 0.2, 0.2])


def test_the_last_sample_before_an_early_stop_stands_for_a_period_at_most():
    # stopped (not finished) two frames after the last sampled one: a complete read
    # would have sampled the next frame 0.2 s after it
    decoded = [0.0, 0.1, 0.2, 0.3]
    got = sample_seconds([0.0, 0.2], 0.2, 0.0, decoded, [0, 2], finished=False)
    np.testing.assert_allclose(got, [0.2, 0.2])  # was [0.2, 0.3]
    # every 3rd frame of a slow stretch: its own frames take longer than the period
    decoded = [0.0, 0.5, 1.0, 1.5, 2.0]
    got = sample_seconds([0.0, 1.5], 0.3, 0.0, decoded, [0, 3], finished=False)
    np.testing.assert_allclose(got, [1.5, 0.5])  # was [1.5, 0.8]
    # read to its end: unchanged (the last frame stands for the gap before it)
    got = sample_seconds([0.0, 1.5], 0.3, 0.0, decoded, [0, 3], finished=True)
    np.testing.assert_allclose(got, [1.5, 1.0])


def test_time_on_screen_after_a_stop_from_on_frame(face_patches, embedder, tmp_path):
    frames = [_frame(face_patches, {"grace": 100}) for _ in range(50)]
    clip = _write(tmp_path / "on.mp4", frames, options={"preset": "ultrafast", "crf": "18"})

    def stop(done: int, total: int | None) -> None:
        if done == 4:
            raise KeyboardInterrupt

    cfg = VideoConfig(fps=5, identity="iou", workers=2, sharpness_threshold=0.0)
    a = analyze_video(clip, embedder, cfg, classifier=None, on_frame=stop, keep_on_interrupt=True)
    assert a.interrupted
    (st,) = a.person_stats
    assert st.frames_present == a.n_sampled >= 4
    # every sampled frame stands for 0.2 s (was 2.0 s for 4: the frames decoded ahead)
    assert st.time_on_screen == pytest.approx(0.2 * st.frames_present)


# ----------------------------------------------------------------- 2: back search memory


@dataclass
class _Faces:
    """A stand-in for :class:`~exprsim.faces.stream.ImageFaces` of a guided frame."""

    faces: tuple = ()
    guided: bool = True


def test_guided_frames_held_for_the_search_back_are_capped(monkeypatch, caplog):
    image = np.zeros((H, W, 3), np.uint8)
    monkeypatch.setattr(pipeline, "BACK_SEARCH_BYTES", 10 * image.nbytes, raising=False)
    cfg = SimpleNamespace(redetect_every=300)
    search = pipeline._BackSearch(SimpleNamespace(cfg=cfg))
    out, held = [], []
    with caplog.at_level(logging.INFO, logger=pipeline.log.name):
        for slot in range(100):
            out += [s for s, _, _ in search.push(slot, SimpleNamespace(image=image), _Faces())]
            held.append(len(search.waiting))
        out += [s for s, _, _ in search.drain()]
    assert max(held) == 10  # was 100: every guided frame since the last full detection
    assert out == list(range(100))  # every frame collected once, in order
    said = [r for r in caplog.records if "reaches back 10 sampled frames" in r.getMessage()]
    assert len(said) == 1
    # never fewer than the default redetect_every needs, whatever the frame size
    monkeypatch.setattr(pipeline, "BACK_SEARCH_BYTES", 1, raising=False)
    assert search.cap(image) == 4
    # nothing shortened: nothing said
    search = pipeline._BackSearch(SimpleNamespace(cfg=SimpleNamespace(redetect_every=5)))
    assert search.cap(np.zeros((4000, 4000, 3), np.uint8)) == 4 and not search.capped


def test_a_short_appearance_within_the_cap_is_found(face_patches, embedder, tmp_path, monkeypatch):
    # full detections at slots 0 and 12; Eileen on screen in slots 8-13, the guided slots
    # 8-11 within the 4 frames kept
    frames = [
        _frame(face_patches, {"grace": 20, **({"eileen": 180} if 8 <= i <= 13 else {})})
        for i in range(16)
    ]
    clip = _write(tmp_path / "cap.mp4", frames, rate=5, options={"preset": "ultrafast"})
    monkeypatch.setattr(pipeline, "BACK_SEARCH_BYTES", 1, raising=False)
    held: list[int] = []
    push = pipeline._BackSearch.push

    def counted(self, *args):
        ready = push(self, *args)
        held.append(len(self.waiting))
        return ready

    monkeypatch.setattr(pipeline._BackSearch, "push", counted)
    cfg = VideoConfig(fps=5, identity="iou", workers=1, sharpness_threshold=0.0, redetect_every=12)
    a = analyze_video(clip, embedder, cfg, classifier=None)
    assert max(held) == 4  # was 11
    assert a.n_persons == 2
    eileen = a.person_stats[1]
    assert eileen.frames_present == 6
    assert eileen.first_seen == pytest.approx(1.6) and eileen.last_seen == pytest.approx(2.6)


# ----------------------------------------------------------------- 3: AVI decoder delay


@pytest.mark.parametrize(
    ("codec", "options", "max_b_frames"),
    [
        ("mpeg4", {"bf": "2", "qscale": "3"}, 2),  # MPEG-4 Part 2 (Xvid/DivX) with B-frames
        ("libx264", {"bf": "2", "preset": "ultrafast"}, None),  # H.264 with B-frames
        ("libx264", {"bf": "0", "preset": "ultrafast"}, None),  # H.264: a delay all the same
    ],
)
def test_a_complete_avi_loses_no_leading_frame(tmp_path, codec, options, max_b_frames):
    frames = []
    for i in range(30):  # frame i: a white bar at x = 4i
        im = np.full((96, 128, 3), 60, np.uint8)
        im[:, 4 * i : 4 * i + 4] = 255
        frames.append(im)
    clip = _write(
        tmp_path / "c.avi",
        frames,
        codec=codec,
        fmt="avi",
        options=options,
        max_b_frames=max_b_frames,
    )
    with FrameReader(clip, every=1) as reader:
        got = list(reader)
    assert len(got) == 30
    # was 1, with "the first 1 frame(s) do not decode" and frames numbered 1..30
    assert reader.leading_lost == 0
    assert not any("do not decode" in w for w in reader.warnings)
    assert [f.index for f in got] == list(range(30))
    # frame i shows image i
    assert [int(f.image.mean(axis=(0, 2)).argmax()) // 4 for f in got] == list(range(30))
