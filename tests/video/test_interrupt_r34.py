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
