"""scripts/val_classes.py: per-class scores against naive loops (no data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from file_module import load_file_module

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "val_classes.py"


@pytest.fixture(scope="module")
def vc():
    yield from load_file_module(SCRIPT, "val_classes")


def _naive_knn(train, labels, x, k):
    d = ((x[:, None, :] - train[None, :, :]) ** 2).sum(-1)
    out = []
    for row in d:
        near = labels[np.argsort(row, kind="stable")[:k]]
        counts = np.bincount(near, minlength=8)
        out.append(int(np.argmax(counts)))  # ties: the smallest class index
    return np.array(out)


def test_per_class_f1_and_accuracy_match_loops(vc):
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(8, 4)) * 2.0
    tr_lab = rng.integers(0, 8, 300)
    va_lab = rng.integers(0, 8, 80)
    tr = centres[tr_lab] + rng.normal(size=(300, 4))
    va = centres[va_lab] + rng.normal(size=(80, 4))
    r = vc.class_scores(tr, tr_lab, va, va_lab)
    pred = _naive_knn(tr, tr_lab, va, 11)
    assert r["knn11_acc"] == pytest.approx(float((pred == va_lab).mean()))
    f1s = []
    for c, name in enumerate(vc.FERPLUS_CLASSES):
        tp = int(((pred == c) & (va_lab == c)).sum())
        fp = int(((pred == c) & (va_lab != c)).sum())
        fn = int(((pred != c) & (va_lab == c)).sum())
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        f1s.append(f1)
        assert r["f1_per_class"][name] == pytest.approx(f1)
    assert r["knn11_macro_f1"] == pytest.approx(np.mean(f1s))
    aucs = list(r["auc200_per_class"].values())
    assert r["auc200_mean"] == pytest.approx(np.nanmean(aucs)) and 0.5 < r["auc200_mean"] <= 1
