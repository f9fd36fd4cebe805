"""benchmarks/filtered_search.py: its synthetic faces pass the filters in the shares named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from file_module import load_file_module

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "filtered_search.py"


@pytest.fixture(scope="module")
def fs():
    yield from load_file_module(SCRIPT, "bench_filtered_search")


def test_the_faces_pass_the_filters_in_the_shares_named(fs):
    df, x = fs.faces(20_000, np.random.default_rng(0))
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5) and len(df) == 20_000
    assert abs(df["quality_ok"].mean() - 0.8) < 0.02
    assert abs((df["sharpness"] >= 99).mean() - 0.01) < 0.003
    assert set(fs.FILTERS) == {"none", "quality_ok 80%", "sharpness>=99 1%"}
