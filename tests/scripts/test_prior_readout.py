"""scripts/prior_readout.py: the re-weighting of emotion distributions (no data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from file_module import load_file_module

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "prior_readout.py"


@pytest.fixture(scope="module")
def pr():
    yield from load_file_module(SCRIPT, "prior_readout")


def test_reweight_matches_a_loop(pr):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(8), size=20)
    w = rng.uniform(0.2, 5.0, size=8)
    out = pr.reweight(p, w)
    for i in range(20):
        row = [p[i, c] * w[c] for c in range(8)]
        total = sum(row)
        for c in range(8):
            assert out[i, c] == pytest.approx(row[c] / total, rel=1e-5)


def test_uniform_weights_leave_p_unchanged_and_rare_weights_raise_rare_shares(pr):
    p = np.array([[0.7, 0.2, 0.0, 0.0, 0.0, 0.1, 0.0, 0.0]])
    np.testing.assert_allclose(pr.reweight(p, np.full(8, 3.0)), p, rtol=1e-6)
    w = np.ones(8)
    w[5] = 4.0
    q = pr.reweight(p, w)
    assert q[0, 5] == pytest.approx(0.4 / 1.3, rel=1e-6)
    assert q[0, 5] > p[0, 5] and q[0, 0] < p[0, 0]
