"""Round 34: ``analyze_video`` swallowed every Ctrl-C (it returned the partial analysis):
a loop over videos in a script or a notebook went on to the next video at each press.
By default the press is raised now (:class:`VideoInterrupted`, a ``KeyboardInterrupt``
carrying the partial analysis); the CLI, the web app and the demo keep the partial one."""

from __future__ import annotations

import pytest

from exprsim.video import VideoConfig, VideoInterrupted, analyze_video

from .conftest import InterruptingDetector, analyze_interrupted, numbered_frames


def test_a_ctrl_c_stops_a_loop_over_videos(clip_factory, embedder) -> None:
    clip = clip_factory("plain34.mp4", numbered_frames(20, 128, 96))
    cfg = VideoConfig(fps=5, identity="iou")
    done = []
    with pytest.raises(KeyboardInterrupt) as err:  # was: three videos, one flag each
        for _ in range(3):
            det = InterruptingDetector(at=4)
            done.append(analyze_video(clip, embedder, cfg, classifier=None, detector=det))
    assert done == [] and isinstance(err.value, VideoInterrupted)
    partial = err.value.analysis
    assert partial.interrupted and partial.n_sampled == 3


def test_keep_on_interrupt_returns_the_partial_analysis(clip_factory, embedder) -> None:
    a = analyze_interrupted(clip_factory("plain34.mp4", numbered_frames(20, 128, 96)), embedder, 4)
    assert a.interrupted and a.n_sampled == 3


def test_a_persons_emotion_shares_add_up_to_one() -> None:
    """Round 34 (numbers users see): shares rounded one by one to 4 places did not add up
    (3/7 + 3/7 + 1/7 written as 1.0001)."""
    import math

    from exprsim.video import PersonStats

    shares = {"happiness": 3 / 7, "neutral": 3 / 7, "sadness": 1 / 7}
    stats = PersonStats(0, 7, 1.0, 1.4, 0.0, 1.2, 7, {}, shares, ())
    row = stats.to_dict()
    total = math.fsum(row[f"share_{k}"] for k in shares)
    assert abs(total - 1.0) < 1e-12  # was 1.0001
