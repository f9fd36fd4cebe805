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

``exprsim evaluate --model runs/pvae-m2 [--also runs/pvae-vae] [--baselines]`` calls
:func:`evaluate_pvae`. The meshes are read from (or cached in) the ``landmark_cache`` the
first run was trained with, and FER+ from its ``data_dir`` (:func:`run_data`). A relative
``landmark_cache`` (the configs' ``runs/pvae``) was relative to the folder the run was
trained from: a run trained since round 34 records that folder made absolute in its
``result.json``, used while it is there; for older runs (or a project moved since) it is
looked for under each folder above the run, then under the working folder
(:func:`find_landmark_cache`), so a run evaluated from another folder still finds its
meshes instead of meshing FER+ again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from exprsim.errors import ModelError

if TYPE_CHECKING:
    from exprsim.pvae.codes import PVAEEncoder

log = logging.getLogger(__name__)

#: landmark cache of a run whose ``train_config.json`` names none (the training default)
DEFAULT_LANDMARK_CACHE = "runs/pvae"
#: FER+ splits whose meshes an evaluation reads (cached as ``mesh-<split>.npz``)
EVAL_SPLITS = ("Training", "PublicTest")


@dataclass(frozen=True)
class PVAERunData:
    """The data a perceptual-VAE run was trained on (its ``train_config.json``).

    Attributes:
        landmark_cache: folder of the cached FER meshes: the absolute folder the run's
            ``result.json`` records while it is there (:func:`recorded_landmark_cache`),
            else as written in the config (a relative path is found with
            :func:`find_landmark_cache`).
        data_dir: FER folder, or ``None`` (found automatically).
        data: ``"ferplus"`` or ``"synthetic"``.
    """

    landmark_cache: str = DEFAULT_LANDMARK_CACHE
    data_dir: str | None = None
    data: str = "ferplus"

    def mesh_files(self, run: str | Path | None = None) -> list[Path]:
        """The cached mesh files an evaluation of ``run`` reads (or writes when absent)."""
        folder = find_landmark_cache(self.landmark_cache, run)[0]
        return [Path(folder) / f"mesh-{split}.npz" for split in EVAL_SPLITS]


def find_landmark_cache(cache: str | Path, run: str | Path | None) -> tuple[str, list[Path]]:
    """The folder of a run's cached meshes, and where it was looked for in vain.

    An absolute ``cache`` is itself. A relative one is the first of: under each folder
    above ``run`` (nearest first; the run's own project before another one the command
    happens to run in), then under the working folder, that holds a mesh file
    (``mesh-Training.npz`` or ``mesh-PublicTest.npz``): the run was trained from a folder
    it does not record (``runs/pvae`` beside ``runs/pvae-m2``). When none does, the meshes
    will be made: under the nearest folder above ``run`` that holds the cache's parent
    folder (``runs/`` of ``runs/pvae``: the project the run lives in), else under the
    working folder (as training resolves it).

    Returns:
        The folder (``cache`` unchanged when it is absolute or found under the working
        folder) and, when no mesh file was found, the folders looked in (else ``[]``).
    """
    rel = Path(cache)
    if rel.is_absolute():
        return str(cache), []
    above = list(Path(run).resolve().parents) if run is not None else []
    here = Path.cwd()
    bases = [*above, *([] if here in above else [here])]  # the run's own project first
    for base in bases:
        if any((base / rel / f"mesh-{split}.npz").is_file() for split in EVAL_SPLITS):
            return (str(cache) if base == here else str(base / rel)), []
    looked = [(base / rel).absolute() for base in bases]
    beside = [b / rel for b in above if len(rel.parts) > 1 and (b / rel).parent.is_dir()]
    return (str(beside[0]) if beside else str(cache)), looked


def recorded_landmark_cache(run: str | Path, cache: str) -> str:
    """``cache`` (a run's configured ``landmark_cache``), or, when it is relative, the
    absolute folder the run's ``result.json`` records it was (runs trained since round 34,
    :func:`exprsim.pvae.data.fer_training_landmarks`) if that folder is there; ``cache``
    when nothing usable is recorded (an older run, a project moved since, an odd file)."""
    if Path(cache).is_absolute():
        return cache
    try:
        doc = json.loads((Path(run) / "result.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return cache
    recorded = doc.get("landmark_cache") if isinstance(doc, dict) else None
    if isinstance(recorded, str) and Path(recorded).is_absolute() and Path(recorded).is_dir():
        return recorded
    return cache


def run_data(run: str | Path) -> PVAERunData:
    """Where a perceptual-VAE run's data came from (``train_config.json``; the absolute
    mesh cache its ``result.json`` records, :func:`recorded_landmark_cache`); the training
    defaults for a run folder without that file.

    Raises:
        ModelError: the file cannot be read, is not a JSON object, or its
            ``landmark_cache``, ``data_dir`` or ``data`` is not text.
    """
    path = Path(run) / "train_config.json"
    if not path.is_file():
        return PVAERunData()
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelError(f"{path}: not a readable JSON run config ({exc})") from exc
    if not isinstance(doc, dict):
        raise ModelError(f"{path}: a run config is a JSON object")
    out = PVAERunData(
        doc.get("landmark_cache", DEFAULT_LANDMARK_CACHE),
        doc.get("data_dir"),
        doc.get("data", "ferplus"),
    )
    if not isinstance(out.landmark_cache, str) or not isinstance(out.data, str):
        raise ModelError(f"{path}: landmark_cache and data must be text")
    if out.data_dir is not None and not isinstance(out.data_dir, str):
        raise ModelError(f"{path}: data_dir must be text or null")
    return replace(out, landmark_cache=recorded_landmark_cache(run, out.landmark_cache))


def load_encoders(models: Sequence[str | Path]) -> list[tuple[str, PVAEEncoder]]:
    """``(name, encoder)`` of each run, checked to take the FER face-mesh features.

    Raises:
        ModelError: a run cannot be loaded, or was trained on features of another size
            (such as the 24-d synthetic landmarks), named in one line.
    """
    from exprsim.pvae.codes import load_pvae
    from exprsim.pvae.features import FEATURE_DIM

    out = []
    for path in models:
        # a damaged run is load_pvae's one-line ModelError; the feature size is checked
        # here, to name the data the run was trained on
        enc = load_pvae(path, feature_dim=None)
        dim = enc.config.input_dim
        if dim != FEATURE_DIM:
            data = run_data(path).data
            trained = f"{data} data with " if data != "ferplus" else ""
            raise ModelError(
                f"{path}: trained on {trained}{dim} landmark features per face, but FER+ "
                f"faces give {FEATURE_DIM} face-mesh features: it cannot be scored on FER+"
            )
        out.append((Path(path).name, enc))
    return out


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


def _run_cache(trained: PVAERunData, models: Sequence[str | Path]) -> str:
    """The first run's mesh cache (:func:`find_landmark_cache`), with one warning line
    naming where it was looked for when it holds no meshes (FER+ is meshed again)."""
    run = models[0] if models else None
    cache, looked = find_landmark_cache(trained.landmark_cache, run)
    if looked:
        shown = [*looked[:2], "...", looked[-1]] if len(looked) > 3 else looked  # cwd last
        where = ", ".join(str(p) for p in shown)
        log.warning(
            "%sno cached FER+ face meshes for landmark_cache %r (looked in %s): FER+ is "
            "meshed again, into %s (minutes)",
            f"{run}: " if run is not None else "",
            trained.landmark_cache,
            where,
            Path(cache).absolute(),
        )
    return cache


def evaluate_pvae(
    models: Sequence[str | Path] = (),
    baselines: bool = True,
    landmark_cache: str | Path | None = None,
    data_dir: str | None = None,
    n_triplets: int = 3000,
    pca_dim: int = 30,
    progress: bool = True,
) -> PVAEReport:
    """Score raw landmarks, PCA and trained models on FER+ PublicTest (module docstring).

    Every run is loaded and checked (:func:`load_encoders`) before any mesh is read.

    Args:
        models: trained run folders (``pvae_config.json`` + ``model.safetensors``).
        baselines: include the raw-landmark and PCA rows.
        landmark_cache: folder of the cached meshes (``None``: the one the first model was
            trained with, :func:`run_data`, found with :func:`find_landmark_cache`; without
            models ``runs/pvae``).
        data_dir: FER folder (``None``: the first model's, else found automatically).
        n_triplets: PublicTest triplets drawn before dropping mesh failures.
        pca_dim: PCA size.
        progress: the progress bars of the mesh extraction (when the cache lacks meshes).

    Raises:
        ModelError: a run cannot be loaded or takes other features (:func:`load_encoders`).
    """
    from exprsim.data.fer import load_ferplus
    from exprsim.data.triplets import validation_triplets
    from exprsim.pvae.data import fer_training_landmarks
    from exprsim.pvae.features import extract_fer_landmarks

    encoders = load_encoders(models)
    trained = run_data(models[0]) if models else PVAERunData()
    cache = landmark_cache if landmark_cache is not None else _run_cache(trained, models)
    data_dir = data_dir if data_dir is not None else trained.data_dir
    data, stats = fer_training_landmarks(cache, data_dir, 0.05, 0, progress=progress)
    test_lm = extract_fer_landmarks("PublicTest", cache, data_dir, progress=progress)
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
    for name, enc in encoders:
        z_train, z_test = enc.encode_features(x_train), enc.encode_features(x_test)
        rows.append(score_representation(name, z_train, y_train, z_test, y_test, trip))
    return PVAEReport(
        rows=tuple(rows),
        n_train=len(x_train),
        n_test=len(x_test),
        n_triplets=int(keep.sum()),
        mesh_success_train=float(stats["success_rate"]),
        mesh_success_test=test_lm.success_rate,
    )
