"""scripts/auc_bootstrap.py: paired bootstrap of per-class AUC gaps (no data needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from file_module import load_file_module

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "auc_bootstrap.py"


@pytest.fixture(scope="module")
def ab():
    yield from load_file_module(SCRIPT, "auc_bootstrap")


def _naive_auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y], s[~y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_observed_aucs_match_a_pairwise_count(ab):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    a = rng.random((60, 3))
    b = np.eye(3)[labels] * 0.5 + rng.random((60, 3))
    out = ab.paired_auc_bootstrap(labels, a, b, n_boot=20)
    for c in range(3):
        assert out["auc_a"][c] == pytest.approx(_naive_auc(labels == c, a[:, c]))
        assert out["auc_b"][c] == pytest.approx(_naive_auc(labels == c, b[:, c]))
    assert out["auc_a"][3] == pytest.approx(np.mean(out["auc_a"][:3]))
    assert out["gap"] == pytest.approx(np.subtract(out["auc_b"], out["auc_a"]).tolist())


def test_interval_excludes_zero_for_a_real_gap_and_is_zero_for_twins(ab):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 400)
    informative = np.eye(4)[labels] + 0.8 * rng.random((400, 4))
    noise = rng.random((400, 4))
    out = ab.paired_auc_bootstrap(labels, noise, informative, n_boot=200)
    assert min(out["gap_lo"]) > 0 and min(out["share_b_ahead"]) == 1.0
    same = ab.paired_auc_bootstrap(labels, noise, noise, n_boot=50)
    assert same["gap_lo"] == same["gap_hi"] == [0.0] * 5


def test_bad_counts_exit_with_usage(ab, capsys):
    with pytest.raises(SystemExit) as exc:
        ab.main(["--models", "a", "b", "--boot", "0"])
    assert exc.value.code == 2 and "--boot" in capsys.readouterr().err
