"""Round 24: ``QualityConfig`` checks itself (a ``patch_size`` of 1e5 made OpenCV allocate
147 TB, an eye distance of 0 divided by zero, a NaN threshold changed every verdict without
a word)."""

from __future__ import annotations

import math

import pytest

from exprsim.errors import ExprsimError
from exprsim.faces.quality import QualityConfig


@pytest.mark.parametrize(
    "kw",
    [
        {"patch_size": 1e5},
        {"patch_size": 0},
        {"patch_size": math.nan},
        {"reference_eye_distance": 0},
        {"blur_sigma": -1},
        {"sharpness_threshold": math.nan},
        {"max_abs_yaw": math.nan},
        {"max_abs_yaw": "50"},
        {"check_orientation": "no"},
    ],
)
def test_bad_values_are_refused(kw: dict) -> None:
    with pytest.raises(ExprsimError, match=next(iter(kw))):
        QualityConfig(**kw)


def test_the_defaults_and_the_edges_used_pass() -> None:
    QualityConfig()
    QualityConfig(sharpness_threshold=0.0, max_abs_yaw=180.0, check_orientation=False)
    QualityConfig(sharpness_threshold=1e9)
