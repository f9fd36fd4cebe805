"""Eighteenth audit round, the video report: a video's name is shown printable."""

from __future__ import annotations

import dataclasses

from exprsim.video import report
from exprsim.video.frames import VideoInfo

from .test_video_report_audit12 import _analysis, _stub_figures


def test_the_title_escapes_a_right_to_left_override(monkeypatch) -> None:
    """Audit: ``interview_\\u202evom.mp4`` was put raw in <title> and <h1>, where a browser
    shows ``interview_4pm.mov``; every other report shows ``\\u202e``."""
    analysis = _analysis([3.0], [[2]])
    info = VideoInfo("/clips/interview_\u202evom.mp4", 640, 480, 5.0, 0.4, 2, "images")
    _stub_figures(monkeypatch)
    html = report.video_page(dataclasses.replace(analysis, info=info)).render()
    assert "\u202e" not in html
    assert "<title>Video: interview_\\u202evom.mp4" in html
