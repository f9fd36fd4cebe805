"""``embed --engine ray``, ninth round: the default detector by name is the default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exprsim.errors import ExprsimError


def test_the_default_detector_by_name_is_the_default(tmp_path: Path) -> None:
    from exprsim.faces.detect import DEFAULT_DETECTOR
    from exprsim.scale.ray_embed import STAMP_NAME, _check_stamp, _stamp

    _check_stamp(tmp_path, _stamp("default", None, 2))
    assert json.loads((tmp_path / STAMP_NAME).read_text())["detector"] == DEFAULT_DETECTOR
    _check_stamp(tmp_path, _stamp("default", DEFAULT_DETECTOR, 2))  # was: refused
    with pytest.raises(ExprsimError, match="detector mediapipe, not haar"):
        _check_stamp(tmp_path, _stamp("default", "haar", 2))


def test_a_folder_stamped_with_no_detector_name_takes_the_default_by_name(tmp_path: Path) -> None:
    from exprsim.faces.detect import DEFAULT_DETECTOR
    from exprsim.scale.ray_embed import STAMP_NAME, _check_stamp, _stamp

    stamp = _stamp("default", None, 2)
    (tmp_path / STAMP_NAME).write_text(json.dumps({**stamp, "detector": None}))  # older stamp
    _check_stamp(tmp_path, _stamp("default", DEFAULT_DETECTOR, 2))
    with pytest.raises(ExprsimError, match="not haar"):
        _check_stamp(tmp_path, _stamp("default", "haar", 2))
