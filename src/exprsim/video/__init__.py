"""Video analysis: frames -> faces -> persons -> smoothed expressions -> statistics.

* :mod:`exprsim.video.frames` — decoding (PyAV) and sampling with timestamps;
* :mod:`exprsim.video.tracks` — IoU tracks, dlib descriptors + DBSCAN, median smoothing;
* :mod:`exprsim.video.pipeline` — :func:`analyze_video` and its typed results;
* :mod:`exprsim.video.report` — the HTML report.

Importing this package loads only NumPy; PyAV, OpenCV, dlib, torch and scikit-learn are
imported when used.
"""

from __future__ import annotations

from exprsim.video.frames import Frame, FrameReader, VideoError, VideoInfo, read_frames
from exprsim.video.pipeline import (
    PersonStats,
    PersonSummary,
    StageTimes,
    VideoAnalysis,
    VideoConfig,
    VideoFace,
    VideoInterrupted,
    analyze_video,
    load_tag_references,
)
from exprsim.video.report import video_page

__all__ = [
    "Frame",
    "FrameReader",
    "PersonStats",
    "PersonSummary",
    "StageTimes",
    "VideoAnalysis",
    "VideoConfig",
    "VideoError",
    "VideoFace",
    "VideoInfo",
    "VideoInterrupted",
    "analyze_video",
    "load_tag_references",
    "read_frames",
    "video_page",
]
