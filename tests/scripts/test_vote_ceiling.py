"""scripts/vote_ceiling.py: vote splits and split-panel agreement (no data needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from exprsim.data.triplets import TripletSet, decide_odd
from file_module import load_file_module

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "vote_ceiling.py"


@pytest.fixture(scope="module")
def vc():
    yield from load_file_module(SCRIPT, "vote_ceiling")


def test_split_votes_partitions_every_face(vc):
    rng = np.random.default_rng(0)
    votes = rng.multinomial(10, np.full(8, 1 / 8), size=200).astype(np.float32)
    votes[0] = [7, 0, 0, 0, 0, 0, 0, 0]  # an odd count: 3 to A, 4 to B
    a, b = vc.split_votes(votes, rng)
    np.testing.assert_array_equal(a + b, votes)
    assert (a >= 0).all() and (b >= 0).all()
    np.testing.assert_array_equal(a.sum(1), votes.sum(1).astype(int) // 2)
    assert a[0, 0] == 3 and b[0, 0] == 4


def _triplets(n_faces: int, t: int, rng) -> TripletSet:
    ijk = np.array([rng.choice(n_faces, 3, replace=False) for _ in range(t)])
    return TripletSet(ijk[:, 0], ijk[:, 1], ijk[:, 2], np.zeros(t, int), rng.integers(0, 3, t))


def test_many_raters_agree_and_a_random_space_is_at_chance(vc):
    rng = np.random.default_rng(1)
    dist = rng.dirichlet(np.full(8, 0.3), size=300)
    votes = np.stack([rng.multinomial(4000, d) for d in dist]).astype(np.float64)
    trip = _triplets(300, 600, rng)
    # keep clear decisions only, as evaluate's triplets are
    odd, gap = decide_odd(np.sqrt(dist), trip.i, trip.j, trip.k)
    trip = TripletSet(trip.i, trip.j, trip.k, odd, trip.ttype).subset(gap > 0.1)
    emb = {"truth": np.sqrt(dist), "noise": rng.normal(size=(300, 8))}
    out = vc.panel_agreement(votes, trip, emb, 2, rng)
    assert out["triplets_kept"] == 1.0
    assert out["human"]["all"] == 1.0 and out["truth"]["all"] == 1.0
    assert 0.2 < out["noise"]["all"] < 0.47
    # ten raters per face: the panels disagree often, and no better than the truth agrees
    few = np.stack([rng.multinomial(10, d) for d in dist]).astype(np.float64)
    out = vc.panel_agreement(few, trip, emb, 5, rng)
    assert out["human"]["all"] < 0.9
    assert out["truth"]["all"] > out["human"]["all"]
