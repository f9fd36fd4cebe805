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

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.data.fec import PAPER_NUMBERS, TYPE_NAMES, human_baseline, parse_fec_csv

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

    Raises:
        DataError: missing CSV or crops.
        ModelError: the model cannot be loaded.
    """
    from exprsim.fec.dataset import FecTripletDataset, repeated_rows
    from exprsim.metrics import triplet_accuracy
    from exprsim.models.embedder import Embedder, load_model

    if isinstance(embedder_or_model_dir, Embedder):
        embedder = embedder_or_model_dir
        name = embedder.config.name_version
    else:
        embedder = load_model(str(embedder_or_model_dir), device=device, batch_size=batch_size)
        name = f"{embedder_or_model_dir} ({embedder.config.name_version})"
    table = parse_fec_csv(test_csv)
    repeats = repeated_rows(table)
    if repeats["duplicate_rows"]:  # as `fec stats` says: each copy is scored again
        log.warning(
            "%s: %d row(s) repeat an earlier row (the same faces, type and votes); each copy "
            "counts in the accuracy and the human baseline as `fec stats` counts it",
            test_csv,
            repeats["duplicate_rows"],
        )
    data = FecTripletDataset(table, crops_dir, agreement)
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
