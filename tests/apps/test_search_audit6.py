"""search() arguments found by the sixth audit (docs/robustness.md): k, the filters and
the face number are checked; a query given as a file's bytes excludes that file."""

from __future__ import annotations

import pytest

from exprsim.apps.search import search
from exprsim.errors import ExprsimError, ImageError
from exprsim.index.store import FaceIndex


@pytest.fixture
def index(image_index) -> FaceIndex:
    return image_index(6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": float("nan")}, "k must be an integer"),  # NaN gave 0 hits
        ({"k": 2.5}, "k must be an integer"),
        ({"k": "3"}, "k must be an integer"),  # a raw TypeError
        ({"max_abs_yaw": float("nan")}, "max_abs_yaw must be a finite"),  # 0 hits
        ({"min_sharpness": "5"}, "min_sharpness must be a number"),  # a raw TypeError
        ({"identity_threshold": -1.0}, "identity_threshold must be a finite"),
        ({"face": 0.5}, "face must be an integer"),
    ],
)
def test_bad_arguments_are_one_clear_error(index, tmp_path, kwargs, match) -> None:
    with pytest.raises(ExprsimError, match=match):
        search(tmp_path / "imgs" / "img_0000.png", index, **kwargs)


def test_a_query_given_as_bytes_excludes_its_own_file(index, tmp_path) -> None:
    query = tmp_path / "imgs" / "img_0003.png"
    hits = search(query.read_bytes(), index, k=10).hits
    assert len(hits) == 5  # was 6, the file itself first at distance 0
    assert str(query.resolve()) not in {h.source for h in hits}
    assert len(search(query.read_bytes(), index, k=10, exclude_same_image=False).hits) == 6


def test_a_query_name_too_long_is_an_image_error(index, tmp_path) -> None:
    with pytest.raises(ImageError, match="too long"):
        search(str(tmp_path / ("q" * 300 + ".png")), index)
