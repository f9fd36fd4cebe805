"""Vote triplets: the rule, types, balance and determinism, checked against loops."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from exprsim.data.triplets import (
    DEFAULT_THRESHOLD,
    BalancedTripletSampler,
    TripletSet,
    decide_odd,
    decision_stability,
    mine_vote_triplets,
    shuffled_batches,
    survival_stats,
    triplet_type,
    validation_triplets,
)
from exprsim.errors import DataError


def _synthetic(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Votes (n, 8) of 10 raters, majority labels, distributions."""
    rng = np.random.default_rng(seed)
    main = rng.choice(8, size=n, p=[0.35, 0.25, 0.12, 0.12, 0.08, 0.03, 0.03, 0.02])
    votes = np.zeros((n, 8))
    for r in range(n):
        p = np.full(8, 0.3 / 7)
        p[main[r]] = 0.7
        votes[r] = rng.multinomial(10, rng.dirichlet(p * 5))
    labels = votes.argmax(1)
    return votes, labels, votes / votes.sum(1, keepdims=True)


def _hellinger(p, q) -> float:
    return math.sqrt(
        0.5 * sum((math.sqrt(a) - math.sqrt(b)) ** 2 for a, b in zip(p, q, strict=True))
    )


def _loop_decision(dist, i, j, k):
    faces = [i, j, k]
    d = {}
    for o in range(3):
        a, b = [faces[p] for p in range(3) if p != o]
        d[o] = _hellinger(dist[a], dist[b])
    ordered = sorted(d.values())
    return min(d, key=lambda o: (d[o], o)), ordered[1] - ordered[0]


def _loop_type(la, lb, lc) -> int:
    n_labels = len({la, lb, lc})
    return {1: 0, 2: 1, 3: 2}[n_labels]


def test_decide_odd_matches_loop() -> None:
    _, _, dist = _synthetic(50)
    rng = np.random.default_rng(1)
    t = rng.integers(0, 50, size=(200, 3))
    odd, gap = decide_odd(np.sqrt(dist), t[:, 0], t[:, 1], t[:, 2])
    for r in range(200):
        ref_odd, ref_gap = _loop_decision(dist, *t[r])
        assert gap[r] == pytest.approx(ref_gap, abs=1e-9)
        if ref_gap > 1e-9:
            assert odd[r] == ref_odd


def test_triplet_type_matches_loop() -> None:
    rng = np.random.default_rng(2)
    lab = rng.integers(0, 3, size=(300, 3))
    types = triplet_type(lab[:, 0], lab[:, 1], lab[:, 2])
    assert [int(x) for x in types] == [_loop_type(*row) for row in lab.tolist()]


def test_mined_triplets_obey_the_rule() -> None:
    votes, labels, dist = _synthetic()
    ts = mine_vote_triplets(votes, labels, 600, np.random.default_rng(0), threshold=0.15)
    assert len(ts) == 600
    assert ts.type_counts() == {"one": 200, "two": 200, "three": 200}
    for r in range(len(ts)):
        i, j, k = int(ts.i[r]), int(ts.j[r]), int(ts.k[r])
        assert len({i, j, k}) == 3
        ref_odd, ref_gap = _loop_decision(dist, i, j, k)
        assert ref_gap >= 0.15 - 1e-9
        assert ts.odd[r] == ref_odd
        assert ts.gap[r] == pytest.approx(ref_gap, abs=1e-6)
        assert ts.ttype[r] == _loop_type(labels[i], labels[j], labels[k])
    keys = {tuple(sorted(f)) for f in ts.faces().tolist()}
    assert len(keys) == len(ts)  # no repeated triplet
    assert set(np.bincount(ts.odd, minlength=3).nonzero()[0]) == {0, 1, 2}  # odd slot is shuffled


def test_mining_is_deterministic_and_seed_dependent() -> None:
    votes, labels, _ = _synthetic()
    a = mine_vote_triplets(votes, labels, 90, np.random.default_rng(5))
    b = mine_vote_triplets(votes, labels, 90, np.random.default_rng(5))
    c = mine_vote_triplets(votes, labels, 90, np.random.default_rng(6))
    assert np.array_equal(a.faces(), b.faces()) and np.array_equal(a.odd, b.odd)
    assert not np.array_equal(a.faces(), c.faces())


def test_uniform_mode_and_custom_shares() -> None:
    votes, labels, _ = _synthetic()
    ts = mine_vote_triplets(votes, labels, 500, np.random.default_rng(0), type_shares=None)
    assert len(ts) == 500 and ts.gap.min() >= DEFAULT_THRESHOLD
    counts = ts.type_counts()
    assert counts["two"] > counts["one"]  # natural shares: one-class triplets are rare
    ts = mine_vote_triplets(votes, labels, 100, np.random.default_rng(0), type_shares=(0, 1, 1))
    assert ts.type_counts() == {"one": 0, "two": 50, "three": 50}


def test_impossible_requests_raise() -> None:
    votes = np.tile(np.eye(8)[0] * 10, (30, 1))  # identical votes: every gap is 0
    with pytest.raises(DataError, match="found only 0"):
        mine_vote_triplets(
            votes, np.zeros(30, np.int64), 10, np.random.default_rng(0), max_rounds=3
        )
    with pytest.raises(DataError):
        mine_vote_triplets(np.ones((2, 8)), np.zeros(2, np.int64), 1, np.random.default_rng(0))
    with pytest.raises(DataError):
        mine_vote_triplets(np.zeros((5, 8)), np.zeros(5, np.int64), 1, np.random.default_rng(0))
    with pytest.raises(ValueError):
        mine_vote_triplets(
            np.ones((5, 8)), np.zeros(5, np.int64), 1, np.random.default_rng(0), threshold=-1
        )


def test_tripletset_helpers() -> None:
    ts = TripletSet(
        np.arange(4),
        np.arange(4) + 4,
        np.arange(4) + 8,
        np.array([0, 1, 2, 0]),
        np.array([0, 1, 2, 2]),
    )
    assert np.isnan(ts.gap).all()
    assert ts.faces().shape == (4, 3)
    assert len(TripletSet.concat([ts, ts.subset(slice(0, 2))])) == 6
    frame = ts.to_frame()
    assert list(frame["type"]) == ["one", "two", "three", "three"]
    assert ts.to_dict()["types"] == {"one": 1, "two": 1, "three": 2}
    with pytest.raises(ValueError):
        TripletSet(np.arange(3), np.arange(2), np.arange(3), np.arange(3), np.arange(3))


def test_balanced_sampler() -> None:
    votes, labels, _ = _synthetic()
    sampler = BalancedTripletSampler(votes, labels, batch_size=30, batches_per_epoch=5, seed=3)
    assert len(sampler) == 5
    batches = list(sampler.epoch(0))
    assert len(batches) == 5
    for batch in batches:
        assert len(batch) == 30
        assert batch.type_counts() == {"one": 10, "two": 10, "three": 10}
        assert batch.gap.min() >= DEFAULT_THRESHOLD
    again = list(sampler.epoch(0))
    assert all(np.array_equal(a.faces(), b.faces()) for a, b in zip(batches, again, strict=True))
    other = list(sampler.epoch(1))
    assert not np.array_equal(batches[0].faces(), other[0].faces())
    first, second = list(iter(sampler)), list(iter(sampler))  # __iter__ advances the epoch
    assert np.array_equal(first[0].faces(), batches[0].faces())
    assert np.array_equal(second[0].faces(), other[0].faces())
    with pytest.raises(ValueError):
        BalancedTripletSampler(votes, labels, batch_size=31)


def test_balanced_sampler_pool() -> None:
    votes, labels, _ = _synthetic()
    sampler = BalancedTripletSampler(
        votes, labels, batch_size=9, batches_per_epoch=20, pool_size=30
    )
    from collections import Counter

    seen: Counter[tuple[int, ...]] = Counter()
    for batch in sampler.epoch(0):
        assert batch.type_counts() == {"one": 3, "two": 3, "three": 3}
        seen.update(tuple(f) for f in batch.faces().tolist())
    # 20 batches x 3 per type = two full passes over a pool of 30 per type: each used twice
    assert len(seen) == 90 and set(seen.values()) == {2}


def test_validation_triplets_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    from exprsim.data.fer import FerSplit

    votes, _, _ = _synthetic(400, 7)
    split = FerSplit(
        images=np.zeros((400, 48, 48), np.uint8),
        votes=votes.astype(np.float32),
        emotion=np.zeros(400, np.int64),
        rows=np.arange(400),
        usage="PublicTest",
    )
    a = validation_triplets(split, n=300)
    b = validation_triplets(split, n=300)
    assert np.array_equal(a.faces(), b.faces()) and np.array_equal(a.odd, b.odd)
    assert a.type_counts() == {"one": 100, "two": 100, "three": 100}
    assert not np.array_equal(validation_triplets(split, n=300, seed=1).faces(), a.faces())


def test_survival_stats_and_stability() -> None:
    votes, labels, _ = _synthetic()
    st = survival_stats(votes, labels, np.random.default_rng(0), 0.2, 20_000)
    assert 0 < st["survival"] < 1
    assert sum(st["types_after"].values()) == pytest.approx(1.0)
    looser = survival_stats(votes, labels, np.random.default_rng(0), 0.05, 20_000)
    assert looser["survival"] > st["survival"]
    # a clear triplet (two identical pure faces vs a face of another class) is fully stable
    clear = np.array(
        [[100, 0, 0, 0, 0, 0, 0, 0], [100, 0, 0, 0, 0, 0, 0, 0], [0, 100, 0, 0, 0, 0, 0, 0]], float
    )
    ts = TripletSet([0], [1], [2], [2], [1])
    assert decision_stability(clear, ts, np.random.default_rng(0), n_draws=16)[0] == 1.0
    assert (
        decision_stability(
            clear, TripletSet([0], [1], [2], [0], [1]), np.random.default_rng(0), 16
        )[0]
        == 0.0
    )


def test_shuffled_batches() -> None:
    batches = list(shuffled_batches(10, 4, np.random.default_rng(0)))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    assert [len(b) for b in shuffled_batches(10, 4, np.random.default_rng(0), drop_last=True)] == [
        4,
        4,
    ]


def _fer_dir() -> Path:
    from exprsim.data.fer import default_data_dir

    return default_data_dir()


@pytest.mark.data
@pytest.mark.slow
def test_real_publictest_triplets() -> None:
    if (
        not (_fer_dir() / "fer2013new.csv.gz").is_file()
        and not (_fer_dir() / "fer2013new.csv").is_file()
    ):
        pytest.skip(f"FER data not found at {_fer_dir()}")
    from exprsim.data.fer import load_ferplus

    split = load_ferplus("PublicTest")
    ts = validation_triplets(split, n=3000)
    assert ts.type_counts() == {"one": 1000, "two": 1000, "three": 1000}
    assert ts.gap.min() >= DEFAULT_THRESHOLD
    st = survival_stats(
        split.dist, split.majority, np.random.default_rng(0), DEFAULT_THRESHOLD, 50_000
    )
    assert 0.5 < st["survival"] < 0.7  # measured 0.61 on 200k candidates
