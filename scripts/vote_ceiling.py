"""How often do two human panels agree on PublicTest's vote triplets? A yardstick for the goal.

``exprsim evaluate`` labels each triplet's odd face from the faces' 10-rater FER+ vote
distributions (:mod:`exprsim.data.triplets`). Those labels are themselves noisy: a second
panel of raters would not always pick the same face. This script measures that noise on the
very triplets ``evaluate`` scores, without a model of how votes arise:

* **split panels**: every face's emotion votes are split at random into two halves (two
  panels of about 5 raters); the odd face is decided by each half's distribution, with the
  same rule. ``human`` is how often the two panels agree; ``model`` is how often a model's
  odd face (outside its closest pair) agrees with one panel (both panels, averaged). Mean
  over ``--splits`` random splits, triplets where a face has no vote in a half left out.
  A model that agrees with one 5-rater panel as often as the other panel does is as
  consistent with the crowd as another panel is;
* **posterior stability** (:func:`~exprsim.data.triplets.decision_stability`): how often
  the 10-vote label is reproduced when each face's distribution is redrawn from
  ``Dirichlet(votes + prior)``: what a model that knew each face's true distribution would
  score against the 10-vote labels, under that prior (the prior matters; three are shown).

It reports; it chooses nothing.

    .venv/bin/python scripts/vote_ceiling.py --models default fer-cnn --splits 50 \\
        --json docs/results/vote-ceiling.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

TYPES = ("one", "two", "three")


def split_votes(votes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two halves ``(N, C)`` of integer vote counts ``(N, C)``: each face's votes shuffled,
    the first ``n // 2`` to half A and the rest to B (A + B == votes)."""
    counts = np.rint(np.asarray(votes)).astype(np.int64)
    a = np.zeros_like(counts)
    for f, row in enumerate(counts):
        ballots = rng.permutation(np.repeat(np.arange(len(row)), row))
        a[f] = np.bincount(ballots[: len(ballots) // 2], minlength=len(row))
    return a, counts - a


def _odd(vectors: np.ndarray, trip: Any) -> np.ndarray:
    from exprsim.data.triplets import decide_odd

    return decide_odd(vectors, trip.i, trip.j, trip.k)[0]


def _by_type(hit: np.ndarray, keep: np.ndarray, ttype: np.ndarray) -> dict[str, float]:
    out = {"all": float(hit[keep].mean())}
    out.update({name: float(hit[keep & (ttype == t)].mean()) for t, name in enumerate(TYPES)})
    return out


def panel_agreement(
    votes: np.ndarray,
    trip: Any,
    embeddings: dict[str, np.ndarray],
    splits: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Split-panel agreement (module docstring) of humans and of each embedding ``(N, D)``.

    Returns ``{"human": {...}, "<model>": {...}, "triplets_kept": mean share}``, each
    ``{"all", "one", "two", "three"}`` averaged over the splits."""
    faces = trip.faces()
    model_odd = {name: _odd(e, trip) for name, e in embeddings.items()}
    sums: dict[str, dict[str, float]] = {}
    kept = 0.0
    for _ in range(splits):
        a, b = split_votes(votes, rng)
        ok = (a.sum(1) > 0) & (b.sum(1) > 0)
        keep = ok[faces].all(axis=1)
        odd_a = _odd(np.sqrt(a / np.maximum(a.sum(1, keepdims=True), 1)), trip)
        odd_b = _odd(np.sqrt(b / np.maximum(b.sum(1, keepdims=True), 1)), trip)
        rows = {"human": _by_type(odd_a == odd_b, keep, trip.ttype)}
        for name, odd in model_odd.items():
            hit = 0.5 * ((odd == odd_a).astype(float) + (odd == odd_b))
            rows[name] = _by_type(hit, keep, trip.ttype)
        for name, row in rows.items():
            acc = sums.setdefault(name, dict.fromkeys(row, 0.0))
            for key, value in row.items():
                acc[key] += value / splits
        kept += float(keep.mean()) / splits
    return {**sums, "triplets_kept": kept}


def _ten_vote_accuracy(emb: np.ndarray, trip: Any) -> dict[str, float]:
    """``evaluate``'s triplet accuracy (the same function), without the counts."""
    from exprsim.metrics import triplet_accuracy

    acc = triplet_accuracy(emb, trip.i, trip.j, trip.k, trip.odd, trip.ttype)
    return {k: float(v) for k, v in acc.items() if not k.startswith("n_")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="*", default=["default"],
                   help="model folders or names ('fer-cnn': the fer package's CNN)")  # fmt: skip
    p.add_argument("--splits", type=int, default=50, help="random vote splits")
    p.add_argument("--priors", type=float, nargs="*", default=[0.1, 0.5, 1.0])
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.splits < 1 or any(q <= 0 for q in args.priors):
        p.error("--splits must be >= 1 and every prior > 0")
    from exprsim.data.fer import load_ferplus
    from exprsim.data.triplets import decision_stability, validation_triplets
    from exprsim.evaluate import embedding_function

    test = load_ferplus("PublicTest")
    trip = validation_triplets(test, n=3000, seed=0)  # the triplets evaluate scores
    emb = {m: embedding_function(m)(test.images) for m in args.models}
    result: dict[str, Any] = {
        "split_panels": panel_agreement(test.votes, trip, emb, args.splits, np.random.default_rng(0)),
        "labels_10_votes": {m: _ten_vote_accuracy(e, trip) for m, e in emb.items()},
        "posterior_stability": {},
        "splits": args.splits,
    }  # fmt: skip
    everyone = np.ones(len(trip), bool)
    for prior in args.priors:
        s = decision_stability(test.votes, trip, np.random.default_rng(0), 256, prior)
        result["posterior_stability"][str(prior)] = _by_type(s, everyone, trip.ttype)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
