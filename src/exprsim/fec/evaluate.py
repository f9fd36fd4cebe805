"""FEC test-set evaluation: triplet prediction accuracy by type, beside the human baseline.

FECNet's *triplet prediction accuracy* (CVPR 2019, Sec. 5.2): a test triplet counts as
correct when the embedding distance of its most similar pair (by the raters' maximum-voted
label) is smaller than both distances from those two faces to the third, i.e. the predicted
odd one (the face outside the closest pair) is the labelled one
(:func:`exprsim.metrics.triplet_accuracy`, L2 distance). Only strongly-agreed test
triplets are used, as in the paper. The rater-agreement "human" baseline
(:func:`exprsim.data.fec.human_baseline`) is computed on the same triplets and, for
reference, on all strong triplets of the CSV.

Paper numbers (reported beside the result): FECNet-16d 81.8% overall, 77.1 / 85.1 / 82.6%
on one- / two- / three-class triplets; median rater 87.5% (85.3 / 89.3 / 87.2); FEENet 84.5%
(trained on the ~80% of images it could still fetch). Random choice: 33.3%.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.data.fec import PAPER_NUMBERS, TYPE_NAMES, human_baseline
from exprsim.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FecEvalResult:
    """Triplet accuracy of one model on an FEC test CSV.

    Attributes:
        model: the model evaluated (name/folder and version).
        test_csv: the CSV.
        agreement: minimum rater agreement of the evaluated triplets (``"strong"``).
        n_eligible: triplets of the CSV with that agreement.
        n_triplets: of those, evaluated (all three faces have a crop).
        accuracy: ``{"all", "one", "two", "three"}`` in ``[0, 1]`` (NaN when empty).
        counts: triplets per type evaluated.
        human: human baseline on the evaluated triplets (``HumanBaseline.to_dict()``).
        human_all: human baseline on all ``n_eligible`` triplets.
        paper: the papers' numbers, for reference.
    """

    model: str
    test_csv: str
    agreement: str
    n_eligible: int
    n_triplets: int
    accuracy: dict[str, float]
    counts: dict[str, int]
    human: dict[str, Any]
    human_all: dict[str, Any]
    paper: dict[str, Any]

    @property
    def coverage(self) -> float:
        return self.n_triplets / self.n_eligible if self.n_eligible else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "test_csv": self.test_csv,
            "agreement": self.agreement,
            "n_eligible": self.n_eligible,
            "n_triplets": self.n_triplets,
            "coverage": self.coverage,
            "accuracy": self.accuracy,
            "counts": self.counts,
            "human": self.human,
            "human_all": self.human_all,
            "paper": self.paper,
        }

    def to_frame(self) -> Any:
        """One row per triplet type + ``all``: model, human median, paper FECNet, paper human."""
        import pandas as pd

        rows = []
        for key in (*TYPE_NAMES, "all"):
            human = self.human["median"] if key == "all" else self.human["by_type"][key]["median"]
            rows.append(
                {
                    "type": key,
                    "triplets": self.counts[key],
                    "accuracy": self.accuracy[key],
                    "human_median": human,
                    "paper_fecnet": self.paper["fecnet_accuracy"][key],
                    "paper_human_median": self.paper["human_median_accuracy"][key],
                }
            )
        return pd.DataFrame(rows)

    def to_text(self) -> str:
        def pct(v: float) -> str:
            return "   n/a" if v != v else f"{100 * v:5.1f}%"

        lines = [
            f"FEC triplet accuracy of {self.model} on {self.test_csv}",
            f"  {self.n_triplets}/{self.n_eligible} {self.agreement}-agreement triplets evaluated "
            f"({pct(self.coverage).strip()} have all three crops)",
            "  type      triplets   model   human(median)   paper FECNet   paper human",
        ]
        for _, r in self.to_frame().iterrows():
            lines.append(
                f"  {r['type']:<8}{r['triplets']:>10}  {pct(r['accuracy'])}   {pct(r['human_median']):>12}"
                f"   {pct(r['paper_fecnet']):>12}   {pct(r['paper_human_median']):>11}"
            )
        lines.append(
            f"  (FEENet reports {pct(self.paper['feenet_accuracy']['all']).strip()}; random choice 33.3%)"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def embed_dataset(embedder: Any, dataset: Any, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Embed every face used by a :class:`~exprsim.fec.dataset.FecTripletDataset` once.

    Returns:
        ``(emb, pos)``: ``(U, D)`` float32 embeddings of the unique faces and ``(T, 3)``
        int64 positions of each triplet's faces in ``emb``.
    """
    from exprsim.models.embedder import embed_aligned

    if len(dataset) == 0:
        return np.zeros((0, embedder.embedding_dim), np.float32), np.zeros((0, 3), np.int64)
    uniq, inv = np.unique(dataset.rows.reshape(-1), return_inverse=True)
    parts = [
        embed_aligned(embedder, dataset.store.get(uniq[s : s + chunk]))
        for s in range(0, len(uniq), chunk)
    ]
    return np.concatenate(parts).astype(np.float32), inv.reshape(-1, 3).astype(np.int64)


def evaluate_fec(
    embedder_or_model_dir: Any,
    test_csv: str | Path,
    crops_dir: str | Path,
    agreement: str = "strong",
    batch_size: int = 256,
    device: str = "cpu",
) -> FecEvalResult:
    """Triplet prediction accuracy (overall and per type) on an FEC test CSV.

    Args:
        embedder_or_model_dir: an :class:`~exprsim.models.embedder.Embedder`, a shipped
            model name, or a folder with ``config.json`` + ``model.safetensors``.
        test_csv: the FEC test CSV.
        crops_dir: the crops folder (or the fetch folder holding ``crops/``).
        agreement: minimum rater agreement (paper: ``"strong"``).
        batch_size: crops per forward pass when loading a model.
        device: where a loaded model runs.

    When the model is the folder of a FEC training run, one warning line each says that
    ``test_csv`` is the run's ``train_csv``, or that ``crops_dir`` holds crops made with
    other settings than the run's ``crops_dir`` (:func:`warn_unlike_training`).

    Raises:
        DataError: missing CSV or crops.
        ModelError: the model cannot be loaded, or is a perceptual-VAE run
            (:func:`refuse_pvae_run`).
    """
    from exprsim.fec.crops import CropStore
    from exprsim.fec.dataset import FecTripletDataset, repeated_rows
    from exprsim.fec.fetch import read_fec_csv
    from exprsim.metrics import triplet_accuracy
    from exprsim.models.embedder import Embedder, load_model

    if isinstance(embedder_or_model_dir, Embedder):
        embedder = embedder_or_model_dir
        name = embedder.config.name_version
    else:
        refuse_pvae_run(embedder_or_model_dir)
        embedder = load_model(str(embedder_or_model_dir), device=device, batch_size=batch_size)
        name = f"{embedder_or_model_dir} ({embedder.config.name_version})"
    table = read_fec_csv(test_csv)
    repeats = repeated_rows(table)
    if repeats["duplicate_rows"]:  # as `fec stats` says: each copy is scored again
        log.warning(
            "%s: %d row(s) repeat an earlier row (the same faces, type and votes); each copy "
            "counts in the accuracy and the human baseline as `fec stats` counts it",
            test_csv,
            repeats["duplicate_rows"],
        )
    store = CropStore(crops_dir)
    warn_unlike_training(embedder_or_model_dir, test_csv, store)  # before minutes of work
    data = FecTripletDataset(table, store, agreement)
    emb, pos = embed_dataset(embedder, data)
    acc = triplet_accuracy(emb, pos[:, 0], pos[:, 1], pos[:, 2], data.odd, data.ttype)
    accuracy = {
        "all": float(acc["all"]),
        **{k: float(acc.get(k, float("nan"))) for k in TYPE_NAMES},
    }
    counts = {
        "all": len(data),
        **{k: int((data.ttype == t).sum()) for t, k in enumerate(TYPE_NAMES)},
    }
    human = human_baseline(table.subset(data.index), agreement)
    human_all = human_baseline(table, agreement)
    return FecEvalResult(
        model=name,
        test_csv=str(test_csv),
        agreement=agreement,
        n_eligible=data.counts["agreement_ok"],
        n_triplets=len(data),
        accuracy=accuracy,
        counts=counts,
        human=human.to_dict(),
        human_all=human_all.to_dict(),
        paper=PAPER_NUMBERS,
    )


def refuse_pvae_run(model: str | Path) -> None:
    """Refuse a perceptual-VAE run folder (:func:`exprsim.pvae.codes.is_pvae_run`): it
    encodes face meshes, not the face crops FEC triplets are scored on, and has no image
    model's ``config.json`` (it was named "a training run not exported yet").

    Raises:
        ModelError: one line naming the command that evaluates it.
    """
    from exprsim.errors import ModelError, printable
    from exprsim.pvae.codes import is_pvae_run

    if isinstance(model, str | Path) and is_pvae_run(model):
        name = printable(str(model))
        raise ModelError(
            f"{name} is a perceptual-VAE run: it encodes face meshes, not the face crops FEC "
            f"triplets are scored on; evaluate it with `exprsim evaluate --model {name}` "
            "(without --fec-test: FER+ accuracy and triplets on face meshes)"
        )


#: crop settings that ``exprsim fec crop`` takes as an option
_CROP_OPTIONS = ("size", "margin", "detector")


def fec_run_config(model: Any) -> tuple[Path, dict[str, Any]] | None:
    """``(run folder, its train_config.json)`` when ``model`` is the folder of a FEC
    training run (recipe ``fec``), else ``None`` (a shipped model, an
    :class:`~exprsim.models.embedder.Embedder`, another recipe, an unreadable config)."""
    if not isinstance(model, str | Path):
        return None
    run = Path(model)
    try:
        cfg = json.loads((run / "train_config.json").read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(cfg, dict) or "fec" not in (cfg.get("recipe"), cfg.get("kind")):
        return None
    return run, cfg


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def _same_bytes(a: str | Path, b: str | Path) -> bool:
    """Whether regular files ``a`` and ``b`` hold the same bytes: their sizes first, then
    their contents until the first difference (``filecmp``); ``False`` when either cannot
    be read or is not a regular file (a pipe is never read here)."""
    import filecmp

    try:
        return filecmp.cmp(a, b, shallow=False)
    except (OSError, ValueError):
        return False


def _training_csv_line(run: Path, test_csv: str | Path, train_csv: str) -> str | None:
    """The warning line when ``test_csv`` is the run's ``train_csv``, or a byte-for-byte
    copy of it under another name, else ``None``."""
    if _same_file(test_csv, train_csv):
        what = "the training CSV"
    elif _same_bytes(test_csv, train_csv):
        what = f"a byte-for-byte copy of {train_csv}, the training CSV"
    else:
        return None
    return (
        f"{test_csv} is {what} of {run} (train_csv of its train_config.json): the model is "
        "scored on the triplets it was trained on, not on held-out ones"
    )


def warn_unlike_training(model: Any, test_csv: str | Path, store: Any) -> list[str]:
    """Warn (one line each; also returned) when a FEC run is evaluated on its own training
    CSV (the file itself, or a byte-for-byte copy of it under another name), or on crops
    made with other pixel settings than those it was trained on (its
    ``train_config.json``'s ``train_csv`` and ``crops_dir``). Relative paths of the config
    are taken from the working folder, as training took them. Nothing for a model that is
    not a FEC run's folder; nothing is refused.

    Args:
        model: what :func:`evaluate_fec` was given.
        test_csv: the evaluation CSV.
        store: the evaluation's :class:`~exprsim.fec.crops.CropStore`.
    """
    found = fec_run_config(model)
    if found is None:
        return []
    run, cfg = found
    lines = []
    train_csv = cfg.get("train_csv")
    if isinstance(train_csv, str):
        line = _training_csv_line(run, test_csv, train_csv)
        if line:
            lines.append(line)
    crops_dir = cfg.get("crops_dir")
    if isinstance(crops_dir, str):
        line = _unlike_training_crops(run, crops_dir, store)
        if line:
            lines.append(line)
    for line in lines:
        log.warning("%s", line)
    return lines


def _unlike_training_crops(run: Path, crops_dir: str, store: Any) -> str | None:
    """The warning line when ``store``'s crop settings differ from those of the run's
    ``crops_dir`` (:data:`~exprsim.fec.crops.PIXEL_FIELDS`), else ``None``."""
    from exprsim.fec.crops import PIXEL_FIELDS, store_settings

    config = run / "train_config.json"
    try:
        trained = store_settings(crops_dir, f"crops_dir of {config}")
    except DataError as exc:  # moved, deleted, another machine: nothing to compare with
        log.info("cannot compare the crop settings with the training's: %s", exc)
        return None
    now = store.config
    differ = [f for f in PIXEL_FIELDS if f in trained and f in now and trained[f] != now[f]]
    if not differ:
        return None
    said = ", ".join(
        "another box_layout" if f == "box_layout" else f"{f} {now[f]} (trained on {trained[f]})"
        for f in differ
    )
    opts = " ".join(f"--{f} {trained[f]}" for f in differ if f in _CROP_OPTIONS)
    how = f" (`exprsim fec crop ... {opts}`)" if opts else ""
    return (
        f"{store.dir}: crops made with other settings than those {run} was trained on "
        f"(crops_dir of its train_config.json): {said}; the accuracy is not comparable: "
        f"crop the test faces with the training's settings{how}"
    )
