"""Expression triplets decided by FER+ vote distributions (the FEC analogue we can build here).

FEC triplets (FECNet, seed 000) carry a human judgement: which face is unlike the other two.
FEC images cannot be fetched, so exprsim derives that judgement from the FER+ 10-rater vote
distributions over 8 emotions.

**Rule.** For faces ``(i, j, k)`` with vote distributions ``p_i, p_j, p_k`` compute the three
pairwise Hellinger distances ``H(p, q) = ||sqrt p - sqrt q|| / sqrt 2`` (in ``[0, 1]``). The
pair with the smallest distance is the similar pair and the remaining face is the *odd* one.
The triplet is kept only when the decision is clear::

    gap = (second-smallest pair distance) - (smallest pair distance) >= threshold

(the third distance is at least the second, so the similar pair is closer than *both* other
pairs by ``threshold``). This is the analogue of FEC's "strong agreement" (at least two thirds
of the raters chose the same pair). Default threshold: :data:`DEFAULT_THRESHOLD` = 0.2.

**Why 0.2.** Ten votes per face are a noisy estimate of the face's "true" distribution. We
measured how often a triplet's decision survives when every face's distribution is redrawn
from its posterior ``Dirichlet(votes + 0.1)`` (64 draws, 20k random Training triplets):
kept triplets at gap >= 0.2 keep their decision in 96% of the draws on average (99% of them
in at least 2/3 of the draws), one-class triplets (three faces with the same majority label,
decided only by within-class vote differences) in 80% (80% of them in at least 2/3). At gap
>= 0.1 those figures fall to 92% and 76%; at 0.05 to 89% and 72%. The posterior prior
matters (with ``Dirichlet(votes + 0.5)`` one-class stability at 0.2 is 63%), so treat these as
indicative; they are reproduced by :func:`decision_stability`.

**Measured counts** (:func:`survival_stats`, 200k uniformly random triplets, threshold 0.2):
on Training (28,150 faces after dropping PublicTest duplicates) 60.6% survive; type shares
before/after the rule: one-class 7.3% / 4.7%, two-class 51.5% / 69.3%, three-class
41.3% / 26.0% (survival by type: 39%, 82%, 38%). PublicTest (3,569 faces): 61.0% survive,
one/two/three 4.9% / 70.6% / 24.5% after the rule.

**Types.** By the faces' FER+ majority labels: all three equal = one-class (0), exactly two
equal = two-class (1), all different = three-class (2), as FEC's triplet types. As in FEC, the
two faces sharing a label need not be the similar pair.

**Sampling.** :func:`mine_vote_triplets` draws candidates per type (stratified by class, then
filtered by the rule) or uniformly (``type_shares=None``); :class:`BalancedTripletSampler`
yields batches with equal type shares (FECNet: 30/30/30 in a batch of 90), freshly mined for
every epoch (deterministic in ``(seed, epoch)``) or drawn from a pre-mined pool;
:func:`validation_triplets` gives the fixed PublicTest triplets.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from exprsim.distances import l2
from exprsim.equality import array_equality
from exprsim.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from exprsim.data.fer import FerSplit

log = logging.getLogger(__name__)

#: Type codes (``ttype``) and names, as FECNet's triplet types.
ONE_CLASS, TWO_CLASS, THREE_CLASS = 0, 1, 2
TRIPLET_TYPES: tuple[str, ...] = ("one", "two", "three")
#: Minimum Hellinger gap between the closest and the second-closest pair (see module docstring).
DEFAULT_THRESHOLD = 0.2
_SQRT_HALF = math.sqrt(0.5)


@array_equality
@dataclass(frozen=True)
class TripletSet:
    """Triplets of face indices with their odd-one-out label and type.

    Attributes:
        i, j, k: ``(T,)`` int64 face indices (positions 0, 1, 2 of the triplet).
        odd: ``(T,)`` int64 in {0, 1, 2}: the position of the face unlike the other two.
        ttype: ``(T,)`` int64: 0 one-class, 1 two-class, 2 three-class.
        gap: ``(T,)`` float32 Hellinger gap of the decision (its clarity).
    """

    i: np.ndarray
    j: np.ndarray
    k: np.ndarray
    odd: np.ndarray
    ttype: np.ndarray
    gap: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def __post_init__(self) -> None:
        n = len(self.i)
        gap = self.gap if len(self.gap) == n else np.full(n, np.nan, np.float32)
        object.__setattr__(self, "gap", np.asarray(gap, np.float32))
        for name in ("i", "j", "k", "odd", "ttype"):
            arr = np.asarray(getattr(self, name), np.int64)
            if arr.shape != (n,):
                raise ValueError(f"TripletSet.{name} has shape {arr.shape}, expected ({n},)")
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return int(self.i.shape[0])

    def faces(self) -> np.ndarray:
        """``(T, 3)`` int64 face indices."""
        return np.stack((self.i, self.j, self.k), axis=1)

    def subset(self, index: np.ndarray | slice) -> TripletSet:
        """The triplets selected by a boolean mask, an index array or a slice."""
        return TripletSet(
            self.i[index],
            self.j[index],
            self.k[index],
            self.odd[index],
            self.ttype[index],
            self.gap[index],
        )

    @staticmethod
    def concat(parts: Sequence[TripletSet]) -> TripletSet:
        """One set holding ``parts`` in order."""
        if not parts:
            return TripletSet(*(np.zeros(0, np.int64) for _ in range(5)))
        return TripletSet(
            *(
                np.concatenate([getattr(p, name) for p in parts])
                for name in ("i", "j", "k", "odd", "ttype", "gap")
            )
        )

    def type_counts(self) -> dict[str, int]:
        """``{"one": n1, "two": n2, "three": n3}``."""
        counts = np.bincount(self.ttype, minlength=3)
        return {name: int(counts[t]) for t, name in enumerate(TRIPLET_TYPES)}

    def to_dict(self) -> dict[str, Any]:
        """Summary: size, counts per type, gap quantiles."""
        gap = self.gap[np.isfinite(self.gap)]
        return {
            "n": len(self),
            "types": self.type_counts(),
            "gap_median": float(np.median(gap)) if gap.size else float("nan"),
            "gap_min": float(gap.min()) if gap.size else float("nan"),
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per triplet: ``i, j, k, odd, ttype, type, gap``."""
        import pandas as pd

        return pd.DataFrame(
            {
                "i": self.i,
                "j": self.j,
                "k": self.k,
                "odd": self.odd,
                "ttype": self.ttype,
                "type": np.asarray(TRIPLET_TYPES)[self.ttype],
                "gap": self.gap,
            }
        )


def triplet_type(li: np.ndarray, lj: np.ndarray, lk: np.ndarray) -> np.ndarray:
    """Type codes from three label arrays ``(T,)``: 0 all equal, 2 all different, else 1."""
    eq = (li == lj).astype(np.int64) + (li == lk) + (lj == lk)
    return np.where(eq == 3, ONE_CLASS, np.where(eq == 0, THREE_CLASS, TWO_CLASS)).astype(np.int64)


def decide_odd(
    sqrt_dist: np.ndarray, i: np.ndarray, j: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Odd-one-out and decision gap from vote distributions.

    Args:
        sqrt_dist: ``(N, C)`` element-wise square roots of the vote distributions.
        i, j, k: ``(T,)`` face indices.

    Returns:
        ``odd`` ``(T,)`` int64 (position of the face outside the closest pair; exact ties go
        to the lower position) and ``gap`` ``(T,)`` float64 (second-smallest minus smallest
        pair Hellinger distance).
    """
    a, b, c = sqrt_dist[i], sqrt_dist[j], sqrt_dist[k]
    # column o holds the distance of the pair that excludes position o
    d = np.stack((l2(b, c, eps=0.0), l2(a, c, eps=0.0), l2(a, b, eps=0.0)), axis=-1) * _SQRT_HALF
    odd = d.argmin(axis=-1).astype(np.int64)
    part = np.partition(d, 1, axis=-1)
    return odd, part[:, 1] - part[:, 0]


def _check_inputs(dist: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dist = np.asarray(dist, np.float64)
    labels = np.asarray(labels, np.int64)
    if dist.ndim != 2 or labels.shape != (dist.shape[0],):
        raise DataError(f"need dist (N, C) and labels (N,), got {dist.shape} and {labels.shape}")
    if (dist < 0).any():
        raise DataError("vote distributions must be non-negative")
    total = dist.sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise DataError("every face needs at least one vote")
    return dist / total, labels


class _ClassIndex:
    """Faces grouped by label, for vectorised stratified draws."""

    def __init__(self, labels: np.ndarray, class_power: float) -> None:
        self.order = np.argsort(labels, kind="stable")
        classes, starts, counts = np.unique(
            labels[self.order], return_index=True, return_counts=True
        )
        self.classes, self.starts, self.counts = classes, starts, counts
        self.weights = counts.astype(np.float64) ** class_power

    def draw_classes(self, rng: np.random.Generator, n: int, min_count: int) -> np.ndarray:
        """``(n,)`` positions into ``self.classes`` with weight ``count**power`` (count >= min)."""
        w = np.where(self.counts >= min_count, self.weights, 0.0)
        if w.sum() <= 0:
            raise DataError(f"no class has {min_count} faces: cannot build such triplets")
        cdf = np.cumsum(w / w.sum())
        return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)

    def draw_other_classes(self, rng: np.random.Generator, taken: list[np.ndarray]) -> np.ndarray:
        """Classes (positions) differing from every array in ``taken``, by rejection."""
        out = self.draw_classes(rng, len(taken[0]), 1)
        for _ in range(1000):
            bad = np.zeros(out.shape, bool)
            for t in taken:
                bad |= out == t
            if not bad.any():
                return out
            out[bad] = self.draw_classes(rng, int(bad.sum()), 1)
        raise DataError("too few classes for the requested triplet type")

    def draw_faces(self, rng: np.random.Generator, cls: np.ndarray) -> np.ndarray:
        """One random face of each class position in ``cls``."""
        pos = self.starts[cls] + np.floor(rng.random(len(cls)) * self.counts[cls]).astype(np.int64)
        return self.order[pos]


def _candidates(
    rng: np.random.Generator, cidx: _ClassIndex, n_faces: int, ttype: int | None, n: int
) -> np.ndarray:
    """``(n', 3)`` candidate triplets of distinct faces with random slot order."""
    if ttype is None:
        faces = np.floor(rng.random((n, 3)) * n_faces).astype(np.int64)
    elif ttype == ONE_CLASS:
        c = cidx.draw_classes(rng, n, 3)
        faces = np.stack([cidx.draw_faces(rng, c) for _ in range(3)], axis=1)
    elif ttype == TWO_CLASS:
        c = cidx.draw_classes(rng, n, 2)
        c_odd = cidx.draw_other_classes(rng, [c])
        faces = np.stack(
            [cidx.draw_faces(rng, c), cidx.draw_faces(rng, c), cidx.draw_faces(rng, c_odd)], 1
        )
    elif ttype == THREE_CLASS:
        c1 = cidx.draw_classes(rng, n, 1)
        c2 = cidx.draw_other_classes(rng, [c1])
        c3 = cidx.draw_other_classes(rng, [c1, c2])
        faces = np.stack([cidx.draw_faces(rng, c) for c in (c1, c2, c3)], axis=1)
    else:
        raise ValueError(f"unknown triplet type {ttype}")
    perm = np.argsort(rng.random((len(faces), 3)), axis=1)
    faces = np.take_along_axis(faces, perm, axis=1)
    distinct = (
        (faces[:, 0] != faces[:, 1]) & (faces[:, 0] != faces[:, 2]) & (faces[:, 1] != faces[:, 2])
    )
    return faces[distinct]


def _triplet_keys(faces: np.ndarray, n_faces: int) -> np.ndarray:
    s = np.sort(faces, axis=1)
    return (s[:, 0] * n_faces + s[:, 1]) * n_faces + s[:, 2]


def _mine_type(
    rng: np.random.Generator,
    sqrt_dist: np.ndarray,
    labels: np.ndarray,
    cidx: _ClassIndex,
    ttype: int | None,
    n: int,
    threshold: float,
    unique: bool,
    max_rounds: int,
) -> TripletSet:
    n_faces = len(labels)
    got_faces: list[np.ndarray] = []
    got_odd: list[np.ndarray] = []
    got_gap: list[np.ndarray] = []
    have, rate = 0, 0.5
    seen = np.zeros(0, np.int64)
    for _ in range(max_rounds):
        need = n - have
        if need <= 0:
            break
        m = int(min(max(1024, math.ceil(1.3 * need / rate)), 4_000_000))
        faces = _candidates(rng, cidx, n_faces, ttype, m)
        odd, gap = decide_odd(sqrt_dist, faces[:, 0], faces[:, 1], faces[:, 2])
        keep = np.flatnonzero(gap >= threshold)
        rate = max(0.5 * rate + 0.5 * len(keep) / max(len(faces), 1), 1e-3)
        if unique and len(keep):
            keys = _triplet_keys(faces[keep], n_faces)
            _, first = np.unique(keys, return_index=True)
            first = np.sort(first)
            fresh = ~np.isin(keys[first], seen)
            keep, seen = keep[first[fresh]], np.concatenate((seen, keys[first[fresh]]))
        keep = keep[:need]
        got_faces.append(faces[keep])
        got_odd.append(odd[keep])
        got_gap.append(gap[keep])
        have += len(keep)
    if have < n:
        what = "any" if ttype is None else TRIPLET_TYPES[ttype] + "-class"
        raise DataError(
            f"found only {have} of {n} {what} triplets with a Hellinger gap >= {threshold} "
            f"in {max_rounds} rounds (too few faces, or a threshold too strict for these votes)"
        )
    faces = np.concatenate(got_faces) if got_faces else np.zeros((0, 3), np.int64)
    types = triplet_type(labels[faces[:, 0]], labels[faces[:, 1]], labels[faces[:, 2]])
    if ttype is not None and not (types == ttype).all():  # guards the stratified draws
        raise AssertionError("stratified triplet sampling produced a wrong type")
    return TripletSet(
        faces[:, 0],
        faces[:, 1],
        faces[:, 2],
        np.concatenate(got_odd) if got_odd else np.zeros(0, np.int64),
        types,
        np.concatenate(got_gap) if got_gap else np.zeros(0, np.float32),
    )


def mine_vote_triplets(
    dist: np.ndarray,
    labels: np.ndarray,
    n: int,
    rng: np.random.Generator,
    threshold: float = DEFAULT_THRESHOLD,
    type_shares: Sequence[float] | None = (1 / 3, 1 / 3, 1 / 3),
    class_power: float = 1.0,
    unique: bool = True,
    shuffle: bool = True,
    max_rounds: int = 200,
) -> TripletSet:
    """Mine ``n`` clear-decision triplets from vote distributions.

    Args:
        dist: ``(N, C)`` vote distributions (or raw counts; rows are normalised).
        labels: ``(N,)`` int64 majority labels (they define the triplet types).
        n: number of triplets wanted.
        rng: numpy Generator (the result is a function of its state).
        threshold: minimum Hellinger gap (module docstring); must be >= 0.
        type_shares: shares of one/two/three-class triplets (rounded; the remainder goes to
            the first types), or ``None`` for uniformly random face triplets whose types
            follow the data.
        class_power: stratified draws pick a class with probability ``count**class_power``
            (1: every face about equally likely; 0: classes equally likely).
        unique: drop repeated triplets (same three faces in any order).
        shuffle: shuffle the result (otherwise grouped by type).
        max_rounds: give up (``DataError``) after this many candidate rounds per type.

    Returns:
        A :class:`TripletSet` of exactly ``n`` triplets.

    Raises:
        DataError: malformed inputs, or too few triplets pass the rule.
    """
    if threshold < 0:
        raise ValueError("threshold must be >= 0")
    dist, labels = _check_inputs(dist, labels)
    if len(labels) < 3:
        raise DataError("need at least 3 faces to build triplets")
    sqrt_dist = np.sqrt(dist)
    cidx = _ClassIndex(labels, class_power)
    if type_shares is None:
        out = _mine_type(rng, sqrt_dist, labels, cidx, None, n, threshold, unique, max_rounds)
    else:
        shares = np.asarray(type_shares, np.float64)
        if shares.shape != (3,) or (shares < 0).any() or shares.sum() <= 0:
            raise ValueError("type_shares needs three non-negative shares (one, two, three)")
        counts = np.floor(shares / shares.sum() * n).astype(np.int64)
        order = np.argsort(-shares, kind="stable")
        counts[order[: n - counts.sum()]] += 1
        parts = [
            _mine_type(
                rng, sqrt_dist, labels, cidx, t, int(counts[t]), threshold, unique, max_rounds
            )
            for t in range(3)
            if counts[t] > 0
        ]
        out = TripletSet.concat(parts)  # types differ, so no triplet repeats across parts
    if shuffle and len(out):
        out = out.subset(rng.permutation(len(out)))
    return out


def survival_stats(
    dist: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    threshold: float = DEFAULT_THRESHOLD,
    n_candidates: int = 200_000,
) -> dict[str, Any]:
    """How many uniformly random face triplets pass the rule, overall and per type.

    Returns:
        ``{"threshold", "n_candidates", "survival", "types_before": {...}, "types_after":
        {...}, "survival_by_type": {...}}`` (type shares as fractions).
    """
    dist, labels = _check_inputs(dist, labels)
    cidx = _ClassIndex(labels, 1.0)
    faces = _candidates(rng, cidx, len(labels), None, n_candidates)
    _, gap = decide_odd(np.sqrt(dist), faces[:, 0], faces[:, 1], faces[:, 2])
    types = triplet_type(labels[faces[:, 0]], labels[faces[:, 1]], labels[faces[:, 2]])
    keep = gap >= threshold
    before = np.bincount(types, minlength=3) / max(len(types), 1)
    after = np.bincount(types[keep], minlength=3) / max(int(keep.sum()), 1)
    by_type = [
        float(keep[types == t].mean()) if (types == t).any() else float("nan") for t in range(3)
    ]
    return {
        "threshold": float(threshold),
        "n_candidates": len(types),
        "survival": float(keep.mean()),
        "types_before": dict(zip(TRIPLET_TYPES, before.tolist(), strict=True)),
        "types_after": dict(zip(TRIPLET_TYPES, after.tolist(), strict=True)),
        "survival_by_type": dict(zip(TRIPLET_TYPES, by_type, strict=True)),
    }


def decision_stability(
    votes: np.ndarray,
    triplets: TripletSet,
    rng: np.random.Generator,
    n_draws: int = 64,
    prior: float = 0.1,
) -> np.ndarray:
    """Per-triplet share of posterior draws that reproduce its odd-one-out decision.

    Each face's distribution is redrawn from ``Dirichlet(votes + prior)`` ``n_draws`` times;
    the triplets' decisions are recomputed on the draws (a diagnostic for the threshold).

    Args:
        votes: ``(N, C)`` raw vote counts.
        triplets: triplets over those faces.

    Returns:
        ``(T,)`` float64 in ``[0, 1]``.
    """
    votes = np.asarray(votes, np.float64)
    hits = np.zeros(len(triplets))
    for _ in range(n_draws):
        g = rng.standard_gamma(votes + prior)
        q = np.sqrt(g / g.sum(axis=1, keepdims=True))
        odd, _ = decide_odd(q, triplets.i, triplets.j, triplets.k)
        hits += odd == triplets.odd
    return hits / n_draws


class BalancedTripletSampler:
    """Batches of clear vote triplets with equal shares of the three types.

    Every batch holds ``batch_size // 3`` triplets of each type (FECNet: 30/30/30 in 90), in
    random order. Each epoch is mined afresh from ``numpy.random.default_rng((seed, epoch))``
    (deterministic), or, with ``pool_size``, drawn without replacement from a pool of
    ``pool_size`` triplets per type mined once.

    Args:
        dist: ``(N, C)`` vote distributions (or counts).
        labels: ``(N,)`` majority labels.
        batch_size: triplets per batch, a multiple of 3.
        batches_per_epoch: default ``ceil(N / batch_size)`` (each face in ~3 triplets/epoch).
        threshold, class_power: as :func:`mine_vote_triplets`.
        seed: base seed.
        pool_size: triplets per type in a fixed pool, or ``None`` to mine every epoch.

    Example:
        >>> sampler = BalancedTripletSampler(split.dist, split.majority, batch_size=90)
        >>> for epoch in range(n_epochs):
        ...     for batch in sampler.epoch(epoch):  # TripletSet of 90
        ...         faces = batch.faces()  # (90, 3) indices into split.images
    """

    def __init__(
        self,
        dist: np.ndarray,
        labels: np.ndarray,
        batch_size: int = 90,
        batches_per_epoch: int | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        seed: int = 0,
        class_power: float = 1.0,
        pool_size: int | None = None,
    ) -> None:
        if batch_size <= 0 or batch_size % 3:
            raise ValueError(f"batch_size must be a positive multiple of 3, got {batch_size}")
        self.dist, self.labels = _check_inputs(dist, labels)
        self.batch_size = int(batch_size)
        self.per_type = self.batch_size // 3
        self.batches_per_epoch = int(
            batches_per_epoch
            if batches_per_epoch is not None
            else math.ceil(len(self.labels) / batch_size)
        )
        if self.batches_per_epoch <= 0:
            raise ValueError("batches_per_epoch must be positive")
        self.threshold = float(threshold)
        self.seed = int(seed)
        self.class_power = float(class_power)
        self.pool_size = pool_size
        self._epoch = 0
        self._pool: list[TripletSet] | None = None
        if pool_size is not None:
            if pool_size < self.per_type:
                raise ValueError("pool_size must hold at least one batch's share of each type")
            rng = np.random.default_rng((self.seed, 1 << 30))
            self._pool = [self._mine(rng, t, pool_size) for t in range(3)]

    def __len__(self) -> int:
        return self.batches_per_epoch

    def _mine(self, rng: np.random.Generator, ttype: int, n: int) -> TripletSet:
        shares = [0.0, 0.0, 0.0]
        shares[ttype] = 1.0
        return mine_vote_triplets(
            self.dist,
            self.labels,
            n,
            rng,
            self.threshold,
            shares,
            self.class_power,
            unique=True,
            shuffle=True,
        )

    def _epoch_parts(self, rng: np.random.Generator) -> list[TripletSet]:
        n = self.per_type * self.batches_per_epoch
        if self._pool is None:
            return [self._mine(rng, t, n) for t in range(3)]
        parts = []
        for pool in self._pool:
            reps = math.ceil(n / len(pool))
            idx = np.concatenate([rng.permutation(len(pool)) for _ in range(reps)])[:n]
            parts.append(pool.subset(idx))
        return parts

    def epoch(self, epoch: int) -> Iterator[TripletSet]:
        """The batches of epoch ``epoch`` (a :class:`TripletSet` of ``batch_size`` each)."""
        rng = np.random.default_rng((self.seed, int(epoch)))
        parts = self._epoch_parts(rng)
        p = self.per_type
        for b in range(self.batches_per_epoch):
            batch = TripletSet.concat([part.subset(slice(b * p, (b + 1) * p)) for part in parts])
            yield batch.subset(rng.permutation(len(batch)))

    def set_epoch(self, epoch: int) -> None:
        """Epoch used by the next ``iter(sampler)``."""
        self._epoch = int(epoch)

    def __iter__(self) -> Iterator[TripletSet]:
        epoch = self._epoch
        self._epoch += 1
        return self.epoch(epoch)


def validation_triplets(
    split: str | FerSplit = "PublicTest",
    n: int = 3000,
    seed: int = 0,
    threshold: float = DEFAULT_THRESHOLD,
    type_shares: Sequence[float] | None = (1 / 3, 1 / 3, 1 / 3),
    data_dir: str | None = None,
) -> TripletSet:
    """Deterministic clear-decision triplets of a held-out split (default PublicTest).

    Same rule as training (:func:`mine_vote_triplets`), equal type shares, no repeats, so the
    same ``(split, n, seed, threshold)`` always gives the same triplets.

    Args:
        split: a split name (loaded with :func:`exprsim.data.fer.load_ferplus`) or a FerSplit.
        n: number of triplets (default 3000: 1000 per type).
        seed: seed of the draw.
        threshold, type_shares: as :func:`mine_vote_triplets`.
        data_dir: FER folder when ``split`` is a name.

    Returns:
        A :class:`TripletSet` indexing the split's faces (order of ``load_ferplus(split)``).
    """
    if isinstance(split, str):
        from exprsim.data.fer import load_ferplus

        split = load_ferplus(split, data_dir=data_dir)
    return mine_vote_triplets(
        split.dist,
        split.majority,
        n,
        np.random.default_rng(seed),
        threshold,
        type_shares,
        unique=True,
    )


def shuffled_batches(
    n: int, batch_size: int, rng: np.random.Generator, drop_last: bool = False
) -> Iterator[np.ndarray]:
    """Index batches ``(<= batch_size,)`` int64 over a random permutation of ``range(n)``.

    For classification-style (single-face) batches beside the triplet batches.
    """
    if batch_size <= 0:
        raise ValueError("batch_size must be positive")
    perm = rng.permutation(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield perm[start : start + batch_size]
