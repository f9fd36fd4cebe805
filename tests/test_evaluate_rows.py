"""score_embedding reports every metric of the SGM paper's protocol."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from exprsim.evaluate import RECALL_KS, score_embedding
from exprsim.metrics import classification_scores, knn_predict


def test_row_has_the_sgm_protocol() -> None:
    rng = np.random.default_rng(0)
    tr_lab, te_lab = rng.integers(0, 8, 300), rng.integers(0, 8, 80)
    centres = rng.normal(size=(8, 16))
    tr = centres[tr_lab] + rng.normal(0, 0.8, (300, 16))
    te = centres[te_lab] + rng.normal(0, 0.8, (80, 16))
    trip = SimpleNamespace(
        i=np.arange(10), j=np.arange(10, 20), k=np.arange(20, 30),
        odd=np.zeros(10, np.int64), ttype=np.arange(10) % 3,
    )  # fmt: skip
    row = score_embedding("x", tr, tr_lab, te, te_lab, trip)
    for key in ("nmi", "cluster_f1", "knn11_acc", "knn11_macro_f1", "knn11_f1_sgm"):
        assert 0.0 <= row[key] <= 1.0
    assert all(f"recall@{k}" in row and f"acc@{k}" in row for k in RECALL_KS)
    ref = classification_scores(te_lab, knn_predict(tr, tr_lab, te, k=11), labels=list(range(8)))
    assert row["knn11_macro_precision"] == pytest.approx(ref["macro_precision"])
    assert row["knn11_macro_recall"] == pytest.approx(ref["macro_recall"])
    p, r = ref["macro_precision"], ref["macro_recall"]
    assert row["knn11_f1_sgm"] == pytest.approx(2 * p * r / (p + r))
