"""Table II of the paper on FER+: linear-SVM accuracy and satisfied triplets per representation.

Representations compared on the same faces: the raw landmark features (375-d), PCA to the
latent size (fitted on the training faces), and the posterior means of trained VAE / M1 / M2
models (30-d).

* **Accuracy**: a linear SVM (one-vs-rest, ``LinearSVC(C=1)``, primal, on standardised features, no
  tuning) trained on the training faces of the exprsim hold-out split (FER+ Training minus
  the 5% validation faces, mesh found) predicts the FER+ majority label (8 classes) of the
  PublicTest faces whose mesh was found.
* **Triplets** (paper, eq. 12): the share of satisfied ordered triplets
  ``||z_ref - z_+|| <= ||z_ref - z_-||``. The fixed PublicTest vote triplets
  (:func:`exprsim.data.triplets.validation_triplets`: 3000, seed 0, gap >= 0.2, equal type
  shares) with all three meshes found are used; each odd-one-out triplet ``(a, b | c)``
  gives two ordered triplets, ``(a; b, c)`` and ``(b; a, c)``.
* **Odd one out**: exprsim's stricter FEC-style triplet accuracy
  (:func:`exprsim.metrics.triplet_accuracy`) on the same triplets.

``exprsim evaluate --model runs/pvae-m2 [--baselines]`` calls :func:`evaluate_pvae`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PVAEEvalRow:
    """One representation's scores.

    Attributes:
        name: ``raw``, ``pca`` or the model folder's name.
        dim: representation size.
        accuracy: linear-SVM PublicTest accuracy (FER+ majority, 8 classes).
        triplets: share of satisfied ordered PublicTest triplets.
        odd_one_out: FEC-style odd-one-out accuracy on the same triplets.
    """

    name: str
    dim: int
    accuracy: float
    triplets: float
    odd_one_out: float


@dataclass(frozen=True)
class PVAEReport:
    """Rows plus the data sizes they were measured on."""

    rows: tuple[PVAEEvalRow, ...]
    n_train: int
    n_test: int
    n_triplets: int
    mesh_success_train: float
    mesh_success_test: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows"] = [asdict(r) for r in self.rows]
        return d

    def to_text(self) -> str:
        lines = [
            f"SVM: {self.n_train} training faces -> {self.n_test} PublicTest faces; "
            f"{self.n_triplets} PublicTest triplets (x2 ordered); mesh found on "
            f"{100 * self.mesh_success_train:.1f}% of Training, "
            f"{100 * self.mesh_success_test:.1f}% of PublicTest",
            f"{'representation':<16}{'dim':>5}{'accuracy':>10}{'triplets':>10}{'odd-one-out':>13}",
        ]
        for r in self.rows:
            lines.append(
                f"{r.name:<16}{r.dim:>5}{r.accuracy:>10.3f}{r.triplets:>10.3f}{r.odd_one_out:>13.3f}"
            )
        return "\n".join(lines)


def satisfied_share(
    emb: np.ndarray, i: np.ndarray, j: np.ndarray, k: np.ndarray, odd: np.ndarray
) -> float:
    """Share of satisfied ordered triplets (module docstring) over both pair orientations.

    Args:
        emb: ``(N, D)`` representation.
        i, j, k, odd: ``(T,)`` odd-one-out triplets.
    """
    faces = np.stack([i, j, k], axis=1)
    pair = np.array([[1, 2], [0, 2], [0, 1]])[odd]
    rows = np.arange(len(odd))
    a, b, c = faces[rows, pair[:, 0]], faces[rows, pair[:, 1]], faces[rows, odd]
    d = lambda u, v: np.linalg.norm(emb[u] - emb[v], axis=1)  # noqa: E731
    sat = np.concatenate([d(a, b) <= d(a, c), d(b, a) <= d(b, c)])
    return float(sat.mean())


def linear_svm_accuracy(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    seed: int = 0,
) -> float:
    """One-vs-rest linear SVM (``C=1``, standardised inputs) test accuracy."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    clf = make_pipeline(
        StandardScaler(), LinearSVC(C=1.0, dual=False, max_iter=5000, random_state=seed)
    )
    clf.fit(x_train, y_train)
    return float((clf.predict(x_test) == y_test).mean())


def score_representation(
    name: str,
    z_train: np.ndarray,
    y_train: np.ndarray,
    z_test: np.ndarray,
    y_test: np.ndarray,
    triplets: tuple[np.ndarray, ...],
) -> PVAEEvalRow:
    """Accuracy, satisfied triplets and odd-one-out accuracy of one representation."""
    from exprsim.metrics import triplet_accuracy

    i, j, k, odd = triplets
    acc = linear_svm_accuracy(z_train, y_train, z_test, y_test)
    sat = satisfied_share(z_test, i, j, k, odd)
    ooo = triplet_accuracy(z_test, i, j, k, odd)["all"]
    log.info("%s: accuracy %.3f, triplets %.3f, odd-one-out %.3f", name, acc, sat, ooo)
    return PVAEEvalRow(name, int(z_test.shape[1]), acc, sat, float(ooo))


def evaluate_pvae(
    models: Sequence[str | Path] = (),
    baselines: bool = True,
    landmark_cache: str | Path = "runs/pvae",
    data_dir: str | None = None,
    n_triplets: int = 3000,
    pca_dim: int = 30,
) -> PVAEReport:
    """Score raw landmarks, PCA and trained models on FER+ PublicTest (module docstring).

    Args:
        models: trained run folders (``pvae_config.json`` + ``model.safetensors``).
        baselines: include the raw-landmark and PCA rows.
        landmark_cache: folder of the cached meshes.
        data_dir: FER folder.
        n_triplets: PublicTest triplets drawn before dropping mesh failures.
        pca_dim: PCA size.
    """
    from exprsim.data.fer import load_ferplus
    from exprsim.data.triplets import validation_triplets
    from exprsim.pvae.codes import load_pvae
    from exprsim.pvae.data import fer_training_landmarks
    from exprsim.pvae.features import extract_fer_landmarks

    data, stats = fer_training_landmarks(landmark_cache, data_dir, 0.05, 0)
    test_lm = extract_fer_landmarks("PublicTest", landmark_cache, data_dir)
    test = load_ferplus("PublicTest", data_dir)
    x_test_all = test_lm.features()
    ok = test_lm.ok
    ts = validation_triplets(test, n=n_triplets, seed=0)
    keep = ok[ts.i] & ok[ts.j] & ok[ts.k]
    # re-index the kept triplets into the mesh-found PublicTest faces
    new_index = np.cumsum(ok) - 1
    trip = (new_index[ts.i[keep]], new_index[ts.j[keep]], new_index[ts.k[keep]], ts.odd[keep])
    x_test, y_test = x_test_all[ok], test.majority[ok]
    x_train, y_train = data.x_train, data.maj_train

    rows: list[PVAEEvalRow] = []
    if baselines:
        from sklearn.decomposition import PCA

        rows.append(score_representation("raw", x_train, y_train, x_test, y_test, trip))
        pca = PCA(pca_dim, random_state=0).fit(x_train)
        rows.append(
            score_representation(
                "pca", pca.transform(x_train), y_train, pca.transform(x_test), y_test, trip
            )
        )
    for path in models:
        enc = load_pvae(path)
        rows.append(
            score_representation(
                Path(path).name,
                enc.encode_features(x_train),
                y_train,
                enc.encode_features(x_test),
                y_test,
                trip,
            )
        )
    return PVAEReport(
        rows=tuple(rows),
        n_train=len(x_train),
        n_test=len(x_test),
        n_triplets=int(keep.sum()),
        mesh_success_train=stats["success_rate"],
        mesh_success_test=test_lm.success_rate,
    )
