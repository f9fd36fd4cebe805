"""Per-class quality of embeddings on a run's validation faces (issue 12: rare emotions).

For each model, the validation faces of ``--run`` (its hold-out, as the trainer scores it)
are embedded with the training faces as the kNN reference, and the script prints kNN11
accuracy and macro-F1, the per-class F1, and the one-vs-rest AUC of kNN-200 class shares
per class and their mean (``exprsim evaluate``'s AUC200, on validation instead of
PublicTest). Labels are the majority of the votes. Nothing here looks at PublicTest.

    python scripts/val_classes.py --run runs/robust-swa-v5 --models runs/ens7r other/ens \\
        --json docs/results/val-classes.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from exprsim.data.fer import FERPLUS_CLASSES


def class_scores(
    train_emb: np.ndarray, train_labels: np.ndarray, val_emb: np.ndarray, val_labels: np.ndarray
) -> dict[str, object]:
    """kNN11 accuracy / macro-F1 / per-class F1 and per-class AUC200 (``(N, D)`` arrays)."""
    from exprsim import metrics

    n = len(FERPLUS_CLASSES)
    pred = metrics.knn_predict(train_emb, train_labels, val_emb, k=11, n_classes=n)
    cls = metrics.classification_scores(val_labels, pred, labels=list(range(n)))
    auc = metrics.knn_auc(train_emb, train_labels, val_emb, val_labels, k=200, n_classes=n)
    f1 = metrics.per_class_prf(val_labels, pred, labels=range(n))[2].tolist()
    return {
        "knn11_acc": float(cls["accuracy"]),
        "knn11_macro_f1": float(cls["macro_f1"]),
        "auc200_mean": float(auc["mean"]),
        "f1_per_class": dict(zip(FERPLUS_CLASSES, f1, strict=True)),
        "auc200_per_class": dict(zip(FERPLUS_CLASSES, map(float, auc["per_class"]), strict=True)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="run folder whose hold-out is scored")
    p.add_argument("--models", nargs="+", required=True, help="model folders or names")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    from exprsim.evaluate import embedding_function
    from exprsim.training.ferplus import load_run_config
    from exprsim.training.ferplus_data import load_data

    train, val = load_data(load_run_config(args.run))
    tr_lab, val_lab = train.dist.argmax(1), val.dist.argmax(1)
    counts = np.bincount(val_lab, minlength=len(FERPLUS_CLASSES))
    print("validation faces per class:", dict(zip(FERPLUS_CLASSES, counts.tolist(), strict=True)))
    rows = {}
    for model in args.models:
        fn = embedding_function(model)
        r = class_scores(fn(train.images), tr_lab, fn(val.images), val_lab)
        rows[model] = r
        per = "  ".join(
            f"{c} F1 {r['f1_per_class'][c]:.3f} AUC {r['auc200_per_class'][c]:.3f}"  # type: ignore[index]
            for c in FERPLUS_CLASSES
        )
        print(
            f"{model}: kNN11 {r['knn11_acc']:.4f}  macro-F1 {r['knn11_macro_f1']:.4f}  "
            f"AUC200 {r['auc200_mean']:.4f}\n    {per}",
            flush=True,
        )
    if args.json:
        doc = {"run": args.run, "val_faces_per_class": counts.tolist(), "models": rows}
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
