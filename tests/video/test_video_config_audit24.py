"""Round 24: ``VideoConfig`` given directly (the Python API) is checked as the CLI checks
its options: counts are whole numbers, thresholds finite (a NaN threshold compared false
with every face and went by without a word)."""

from __future__ import annotations

import math

import pytest

from exprsim.errors import ExprsimError
from exprsim.video.pipeline import VideoConfig, _check_config


class _Detector:
    def detect(self, image):
        return []


@pytest.mark.parametrize(
    "field, value",
    [
        ("smooth_window", 0),
        ("smooth_window", 2.0),
        ("n_summary", 0),
        ("min_samples", 0),
        ("descriptor_stride", 0),
        ("batch_size", True),
        ("max_gap", -1),
        ("sharpness_threshold", math.nan),
        ("sharpness_threshold", -1.0),
        ("max_abs_yaw", math.nan),
        ("eps", -1.0),
        ("eps", math.nan),
        ("min_iou", 1.5),
        ("tag_threshold", math.nan),
        ("tag_threshold", "0.5"),
    ],
)
def test_a_bad_number_is_refused_before_the_video_is_opened(field, value) -> None:
    with pytest.raises(ExprsimError, match=field):
        _check_config(VideoConfig(**{field: value}), _Detector())


def test_the_defaults_and_the_cli_edges_pass() -> None:
    _check_config(VideoConfig(), _Detector())
    edges = VideoConfig(sharpness_threshold=0.0, max_abs_yaw=0.0, max_gap=0, min_iou=0.0)
    _check_config(edges, _Detector())
    _check_config(VideoConfig(tag_threshold=None, smooth_window=1), _Detector())
