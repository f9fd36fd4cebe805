"""Video analysis, fifth robustness round (docs/robustness.md): a Ctrl-C after the frames
are read still writes a partial report, time on screen follows the real timestamps of a
variable-frame-rate clip, and a raw H.264/H.265 stream (no container, no declared frame
rate) is read with a warning or at the rate given by ``source_fps``."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from exprsim.video.frames import FrameReader, VideoError
from exprsim.video.pipeline import VideoConfig, analyze_video, sample_seconds

from .conftest import (
    LEFT,
    analyze_interrupted,
    compose,
    numbered_frames,
    write_clip,
)


def _strict(text: str) -> dict:
    def refuse(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    data = json.loads(text, parse_constant=refuse)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def grace_clip(face_patches, clip_factory) -> Path:
    """10 frames (1 s at 10 fps) of one face; 5 sampled frames at 5 fps."""
    return clip_factory("fifth_grace.mp4", [compose(face_patches, {"grace": LEFT})] * 10)


# ----------------------------------------------------------------- Ctrl-C after reading


def _raise_once(monkeypatch, owner, name: str) -> None:
    """``owner.name`` raises KeyboardInterrupt on its first call, then works as before."""
    real = getattr(owner, name)
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, interrupted)


class _InterruptedClassifier:
    """A kNN stand-in pressed Ctrl-C on while classifying."""

    classes_ = np.array(["neutral", "happy"])

    def predict_proba(self, x):
        raise KeyboardInterrupt


def _interrupt(stage: str, monkeypatch, embedder) -> object:
    """Arrange a Ctrl-C in ``stage``; returns the classifier to analyse with."""
    import importlib

    import exprsim.video.tracks as tracks_mod

    # the module (exprsim.apps exports a function of the same name)
    summarize_mod = importlib.import_module("exprsim.apps.summarize")

    if stage == "embedding":
        _raise_once(monkeypatch, embedder, "embed_crops")
    elif stage == "person grouping":
        _raise_once(monkeypatch, tracks_mod, "cluster_identities")
    elif stage == "smoothing":
        _raise_once(monkeypatch, tracks_mod, "median_smooth")
    elif stage == "emotions":
        return _InterruptedClassifier()
    elif stage == "summaries":
        _raise_once(monkeypatch, summarize_mod, "summarize")
    return None


@pytest.mark.parametrize(
    "stage", ["embedding", "person grouping", "smoothing", "emotions", "summaries"]
)
def test_ctrl_c_after_reading_keeps_the_faces(stage, grace_clip, embedder, monkeypatch, tmp_path):
    classifier = _interrupt(stage, monkeypatch, embedder)
    cfg = VideoConfig(fps=5, identity="iou")
    # was: the KeyboardInterrupt propagated and nothing could be saved
    a = analyze_video(grace_clip, embedder, cfg, classifier=classifier, keep_on_interrupt=True)
    assert a.interrupted and a.n_sampled == 5
    assert [f.slot for f in a.faces] == list(range(5))  # every face read is kept
    assert any(w.startswith(f"interrupted during {stage};") for w in a.warnings), a.warnings
    # one valid person: the face track when the grouping did not finish
    assert a.n_persons == 1 and set(a.persons.tolist()) == {0}
    assert a.person_stats[0].frames_present == 5
    assert a.person_stats[0].time_on_screen == pytest.approx(1.0)
    assert a.summaries == ()
    assert a.emotions.shape == (5, 0) and a.classes == ()  # no half-made emotion columns
    embedded = np.isfinite(a.embeddings).all(axis=1)
    assert not embedded.any() if stage == "embedding" else embedded.all()
    paths = a.save(tmp_path / "out")
    data = _strict(paths["json"].read_text())
    assert data["interrupted"] is True and data["faces"] == 5
    assert len(data["persons"]) == 1 and data["summaries"] == {}
    html = paths["html"].read_text()
    assert "Partial result" in html and "interrupted before this person" in html


def test_ctrl_c_during_dlib_grouping_falls_back_to_tracks(grace_clip, embedder, monkeypatch):
    pytest.importorskip("dlib")
    import exprsim.video.tracks as tracks_mod

    _raise_once(monkeypatch, tracks_mod, "cluster_identities")
    cfg = VideoConfig(fps=5, identity="dlib")
    a = analyze_video(grace_clip, embedder, cfg, classifier=None, keep_on_interrupt=True)
    assert a.interrupted and a.identity_method == "iou" and a.n_persons == 1
    (warning,) = [w for w in a.warnings if "interrupted" in w]
    assert warning.startswith("interrupted during person grouping; not done: person grouping")
    assert "each face track is counted as a person of its own" in warning


def test_ctrl_c_while_reading_and_again_after(grace_clip, embedder, monkeypatch):
    """A first Ctrl-C stops reading, a second one the stages after: both are reported."""
    import exprsim.video.tracks as tracks_mod

    _raise_once(monkeypatch, tracks_mod, "cluster_identities")
    a = analyze_interrupted(grace_clip, embedder, 3)
    assert a.interrupted and a.n_sampled == 2
    assert a.warnings[-2:] == (
        "interrupted after 2 sampled frames",
        "interrupted during person grouping; not done: person grouping, smoothing, emotions, "
        "tags, summaries; each face track is counted as a person of its own",
    )


def test_a_second_ctrl_c_while_the_partial_result_is_built_loses_nothing(
    grace_clip, embedder, monkeypatch, tmp_path
):
    """A second Ctrl-C right after the first (while the stand-in persons are made, then
    while the partial report is written) used to lose the whole report."""
    import signal

    import exprsim.video.pipeline as pipe_mod
    import exprsim.video.tracks as tracks_mod

    _raise_once(monkeypatch, tracks_mod, "cluster_identities")
    real = pipe_mod._track_persons

    def impatient(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)  # the user presses Ctrl-C again
        return real(*args, **kwargs)

    monkeypatch.setattr(pipe_mod, "_track_persons", impatient)
    cfg = VideoConfig(fps=5, identity="iou")
    a = analyze_video(grace_clip, embedder, cfg, classifier=None, keep_on_interrupt=True)
    assert a.interrupted and len(a.faces) == 5 and a.n_persons == 1


def test_cli_ctrl_c_after_reading_writes_the_partial_report(
    grace_clip, embedder, monkeypatch, tmp_path, capsys
):
    import signal

    import pandas as pd

    import exprsim.models.embedder as emb_mod
    import exprsim.video.tracks as tracks_mod
    from exprsim.cli import main
    from exprsim.video.pipeline import VideoAnalysis

    monkeypatch.setattr(emb_mod, "load_model", lambda name="default": embedder)
    _raise_once(monkeypatch, tracks_mod, "cluster_identities")
    real_save = VideoAnalysis.save

    def impatient_save(self, *args, **kwargs):
        signal.raise_signal(signal.SIGINT)  # a second Ctrl-C as the report is written
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(VideoAnalysis, "save", impatient_save)
    out = tmp_path / "o"
    rc = main(["-q", "video", str(grace_clip), "--out", str(out), "--identity", "iou"])
    assert rc == 130  # as for a Ctrl-C while reading
    assert "interrupted; partial report written" in capsys.readouterr().err
    data = _strict((out / "analysis.json").read_text())
    assert data["interrupted"] is True and data["faces"] == 5
    assert any(w.startswith("interrupted during person grouping") for w in data["warnings"])
    assert len(pd.read_csv(out / "faces.csv")) == 5
    assert pd.read_csv(out / "persons.csv")["person"].tolist() == [0]
    assert (out / "report.html").is_file()


# ----------------------------------------------------------------- variable frame rate


def _write_timed(path: Path, frames: list[np.ndarray], times: list[float]) -> Path:
    """Encode frames shown at the given seconds (irregular: a variable-frame-rate clip)."""
    import av

    tb = Fraction(1, 1000)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "preset": "ultrafast"}
        stream.time_base = tb
        stream.codec_context.time_base = tb
        for im, t in zip(frames, times, strict=True):
            frame = av.VideoFrame.from_ndarray(im, format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), tb
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_time_on_screen_follows_the_timestamps_of_a_variable_frame_rate_clip(
    face_patches, embedder, tmp_path
):
    # 10 fps, with a 0.3 s gap after 0.9 s: frames at 0.0-0.9 and 1.2-2.1 (2.2 s of video)
    times = [k / 10 for k in range(10)] + [1.2 + k / 10 for k in range(10)]
    frames = [compose(face_patches, {"grace": LEFT})] * len(times)
    clip = _write_timed(tmp_path / "vfr.mp4", frames, times)
    a = analyze_video(clip, embedder, VideoConfig(fps=5, identity="iou"), classifier=None)
    sampled = sorted({round(f.time, 3) for f in a.faces})
    assert sampled == [0.0, 0.2, 0.4, 0.6, 0.8, 1.2, 1.4, 1.6, 1.8, 2.0]
    (st,) = a.person_stats
    assert st.frames_present == 10 and a.sample_period == pytest.approx(0.2)
    # the sample at 0.8 s stands for the 0.4 s until the next one (was 10 x 0.2 = 2.0 s)
    assert st.time_on_screen == pytest.approx(2.2, abs=1e-3)


def test_sample_seconds_rule():
    # gaps: 0.2, 0.2, capped at 2 x 0.2, 0.3 (more than the jitter off), the last: period
    got = sample_seconds([0.0, 0.2, 0.4, 1.4, 1.7], 0.2, jitter=0.05)
    np.testing.assert_allclose(got, [0.2, 0.2, 0.4, 0.3, 0.2])
    np.testing.assert_allclose(sample_seconds([0.0, 0.25], 0.2, jitter=0.05), [0.2, 0.2])
    assert sample_seconds([], 0.2).shape == (0,)
    np.testing.assert_allclose(sample_seconds([3.0], 0.5), [0.5])
    np.testing.assert_allclose(sample_seconds([1.0, 0.9], 0.2), [0.0, 0.2])  # out of order


@pytest.mark.parametrize(
    ("rate", "suffix", "kw"),
    [
        (24, ".mp4", {"fps": 5}),
        (Fraction(30000, 1001), ".mp4", {"fps": 5}),
        (30, ".mkv", {"fps": 5}),
        (30, ".mkv", {"every": 1}),
        (Fraction(30000, 1001), ".mp4", {"every": 3}),
    ],
)
def test_constant_frame_rate_time_per_sample_is_the_period(tmp_path, rate, suffix, kw):
    """On a constant-frame-rate clip every sample still stands for exactly the period,
    although the sampled frames' gaps wander by a source frame (24 fps at 5 fps: 5, 5, 4,
    5, 5 frames) or by timestamp rounding (Matroska's milliseconds)."""
    clip = write_clip(tmp_path / f"cfr{suffix}", numbered_frames(72), fps=rate)
    with FrameReader(clip, **kw) as reader:
        times = [f.time for f in reader]
        period, jitter = reader.sample_period, reader.sample_jitter
    assert len(times) > 10
    np.testing.assert_allclose(sample_seconds(times, period, jitter), period)


# ----------------------------------------------------------------- raw elementary streams


def _write_raw(path: Path, frames: list[np.ndarray], fmt: str, codec: str, fps: int) -> Path:
    """A raw elementary stream (no container): no timestamps, no declared frame rate."""
    import av

    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV/FFmpeg has no {codec} encoder to write a raw {fmt} stream")
    return write_clip(path, frames, fps=fps, codec=codec, fmt=fmt)


@pytest.fixture(scope="module", params=[("h264", "libx264", ".h264"), ("hevc", "libx265", ".hevc")])
def raw_stream(request, tmp_path_factory) -> Path:
    """20 frames written at 10 fps as a raw stream (FFmpeg reads it at 25 fps)."""
    fmt, codec, suffix = request.param
    path = tmp_path_factory.mktemp("raw") / f"clip{suffix}"
    return _write_raw(path, numbered_frames(20), fmt, codec, fps=10)


def test_raw_stream_rate_is_assumed_with_a_warning(raw_stream, embedder):
    a = analyze_video(raw_stream, embedder, VideoConfig(fps=5, identity="iou"), classifier=None)
    assert a.info.fps == pytest.approx(25.0)
    # was: no warning at all, the times silently counted at 25 fps
    (warning,) = [w for w in a.warnings if "frame rate not declared" in w]
    assert "assuming 25 fps" in warning and "--source-fps" in warning


def test_raw_stream_at_the_given_source_fps(raw_stream):
    with FrameReader(raw_stream, fps=5, source_fps=10) as reader:
        frames = list(reader)
    assert reader.info.fps == 10.0 and reader.warnings == []
    assert [f.index for f in frames] == list(range(0, 20, 2))
    np.testing.assert_allclose([f.time for f in frames], np.arange(10) * 0.2, atol=1e-9)
    assert reader.sample_period == pytest.approx(0.2)


def test_source_fps_is_ignored_for_a_file_that_declares_its_rate(clip_factory):
    clip = clip_factory("fifth_declared.mp4", numbered_frames(20), fps=10)
    with FrameReader(clip, fps=5, source_fps=25) as reader:
        frames = list(reader)
    assert reader.info.fps == pytest.approx(10.0)
    np.testing.assert_allclose([f.time for f in frames], np.arange(10) * 0.2, atol=1e-6)
    (warning,) = reader.warnings
    assert "source_fps 25 ignored" in warning


def test_source_fps_times_a_folder_of_frames(tmp_path):
    from PIL import Image

    for i, im in enumerate(numbered_frames(4)):
        Image.fromarray(im).save(tmp_path / f"f{i}.png")
    with FrameReader(tmp_path, source_fps=2) as reader:
        assert [f.time for f in reader] == [0.0, 0.5, 1.0, 1.5]
    assert reader.info.fps == 2.0 and reader.info.duration == 2.0


@pytest.mark.parametrize("bad", [0.0, -1.0, 1001.0, float("nan"), float("inf")])
def test_source_fps_is_bounded(clip_factory, bad):
    clip = clip_factory("fifth_bounded.mp4", numbered_frames(4))
    with pytest.raises(VideoError, match="source_fps must be in"):
        FrameReader(clip, source_fps=bad)


@pytest.mark.parametrize("bad", ["0", "-2", "1001", "nan", "fast"])
def test_cli_source_fps_bad_value_one_line_exit_2(clip_factory, tmp_path, capsys, bad):
    from exprsim.cli import main

    clip = clip_factory("fifth_cli_bad.mp4", numbered_frames(4))
    with pytest.raises(SystemExit) as exit_:
        main(["video", str(clip), "--out", str(tmp_path / "o"), "--source-fps", bad])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("exprsim video: error: argument --source-fps")
    assert not (tmp_path / "o").exists()


def test_cli_raw_stream_warns_and_source_fps_fixes_it(raw_stream, embedder, monkeypatch, tmp_path):
    import exprsim.models.embedder as emb_mod
    from exprsim.cli import main

    monkeypatch.setattr(emb_mod, "load_model", lambda name="default": embedder)
    base = ["-q", "video", str(raw_stream), "--identity", "iou"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    warned = _strict((tmp_path / "a" / "analysis.json").read_text())
    assert any("frame rate not declared" in w for w in warned["warnings"])
    assert warned["frames_sampled"] == 4  # 20 frames taken for 0.8 s at 25 fps
    assert main([*base, "--out", str(tmp_path / "b"), "--source-fps", "10"]) == 0
    fixed = _strict((tmp_path / "b" / "analysis.json").read_text())
    assert fixed["warnings"] == [] and fixed["video"]["fps"] == 10.0
    assert fixed["config"]["source_fps"] == 10.0 and fixed["frames_sampled"] == 10


def test_ctrl_c_inside_a_frame_counts_that_frame(grace_clip, embedder, monkeypatch):
    """A Ctrl-C while a sampled frame's faces are being recorded keeps that frame's faces;
    the frame now counts as sampled (was: appearance rate 2.0, frames_sampled 1)."""
    import exprsim.video.pipeline as pipeline

    real = pipeline._FaceCollector._add_face
    calls = {"n": 0}

    def add_face(self, *args, **kwargs):
        calls["n"] += 1
        out = real(self, *args, **kwargs)
        if calls["n"] == 2:  # the second frame's face is recorded, then Ctrl-C
            raise KeyboardInterrupt
        return out

    monkeypatch.setattr(pipeline._FaceCollector, "_add_face", add_face)
    cfg = VideoConfig(fps=5, identity="iou")
    a = analyze_video(grace_clip, embedder, cfg, classifier=None, keep_on_interrupt=True)
    assert a.interrupted and a.n_sampled == 2
    assert max(f.slot for f in a.faces) < a.n_sampled
    assert all(0 < s.appearance_rate <= 1 for s in a.person_stats)


def test_time_on_screen_is_capped_by_the_frames_decoded_when_no_duration_is_declared():
    from types import SimpleNamespace

    from exprsim.video.pipeline import _duration

    raw = SimpleNamespace(info=SimpleNamespace(duration=float("nan"), fps=10.0), n_decoded=10)
    assert _duration(raw) == pytest.approx(1.0)  # was inf: 1 s of video gave 2 s on screen
    declared = SimpleNamespace(
        info=SimpleNamespace(duration=3.0, fps=10.0),
        n_decoded=10,
        decoded_times=[i / 10 for i in range(10)],
        sample_period=0.2,
        finished=True,
        last_duration=float("nan"),
    )
    assert _duration(declared) == 3.0
    nothing = SimpleNamespace(
        info=SimpleNamespace(duration=float("nan"), fps=float("nan")), n_decoded=0
    )
    assert _duration(nothing) == float("inf")
