"""benchmarks/big_photos.py: the phone-sized photos it times are what it says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from file_module import load_file_module

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "big_photos.py"


@pytest.fixture(scope="module")
def bp():
    yield from load_file_module(SCRIPT, "bench_big_photos")


@pytest.mark.slow
def test_three_12_megapixel_jpegs_with_a_face_each(bp, tmp_path):
    from exprsim.faces.pipeline import analyze_image
    from exprsim.io import load_image

    files = bp.make_big(tmp_path)
    assert len(files) == 3
    for f in files:
        img = load_image(f)
        assert img.shape == (3024, 4032, 3) and img.dtype == np.uint8
    assert len(analyze_image(load_image(files[0]))) == 1  # Grace Hopper, found at 12 MP
