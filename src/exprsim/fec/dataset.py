"""FEC triplets over the aligned crops, and FECNet's type-balanced batches.

:class:`FecTripletDataset` keeps the triplets of an FEC CSV whose rater agreement is at
least ``agreement`` (FECNet trains and evaluates on strong agreement only) and whose three
faces all have a crop in the store; it maps each triplet to three crop rows, the odd face
(the maximum-voted label) and the triplet type.

:class:`BalancedTripletSampler` yields batches of ``3 * per_type`` triplets, ``per_type`` of
each type (FECNet: 90 = 30 one-class + 30 two-class + 30 three-class). Each type is walked
through in a fresh random order every pass over that type; batch ``b`` is a pure function of
``(seed, b)``, so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.data.fec import TYPE_NAMES, Agreement, FecTable, parse_fec_csv
from exprsim.equality import array_equality
from exprsim.errors import DataError
from exprsim.fec.crops import CropStore, face_key

log = logging.getLogger(__name__)


@array_equality
@dataclass(frozen=True)
class TripletBatch:
    """One batch of triplets.

    Attributes:
        index: ``(B,)`` int64 triplet indices into the dataset.
        rows: ``(B, 3)`` int64 crop-store rows of the three faces.
        odd: ``(B,)`` int64 position (0, 1, 2) of the face unlike the other two.
        ttype: ``(B,)`` int64 type codes (0 one-, 1 two-, 2 three-class).
    """

    index: np.ndarray
    rows: np.ndarray
    odd: np.ndarray
    ttype: np.ndarray

    def __len__(self) -> int:
        return len(self.index)


class FecTripletDataset:
    """Triplets of one FEC CSV that can be trained / evaluated on.

    Args:
        csv: an FEC CSV path or a parsed :class:`~exprsim.data.fec.FecTable`.
        crops: a :class:`~exprsim.fec.crops.CropStore` or its folder (or the fetch folder).
        agreement: minimum rater agreement (``"strong"``, paper; ``"weak"``; ``None``: all
            triplets with a unique maximum-voted label).

    Attributes:
        index: ``(T,)`` int64 positions of the kept triplets in the parsed table;
        rows: ``(T, 3)`` int64 crop rows; ``odd``: ``(T,)``; ``ttype``: ``(T,)``;
        line: ``(T,)`` CSV line numbers; ``counts``: what was kept / dropped and why.
    """

    def __init__(
        self,
        csv: str | Path | FecTable,
        crops: str | Path | CropStore,
        agreement: str | None = "strong",
    ) -> None:
        if isinstance(csv, FecTable):
            table = csv
        else:
            from exprsim.fec.fetch import check_fec_csv

            check_fec_csv(csv)  # /dev/null was "no such FEC CSV file"
            table = parse_fec_csv(csv)
        self.store = crops if isinstance(crops, CropStore) else CropStore(crops)
        self.table = table
        n_all = len(table)
        agr = table.agreement()
        keep = np.ones(n_all, bool) if agreement is None else agr >= int(Agreement.parse(agreement))
        odd = table.odd()
        keep_votes = keep & (odd >= 0)
        ids, faces = table.face_ids()
        face_rows = self.store.rows([face_key(u, b) for u, b in faces])
        rows = face_rows[ids] if n_all else np.zeros((0, 3), np.int64)
        have = (rows >= 0).all(axis=1) if n_all else np.zeros(0, bool)
        sel = keep_votes & have
        self.index = np.flatnonzero(sel)
        self.rows = rows[sel]
        self.odd = odd[sel].astype(np.int64)
        self.ttype = table.ttype[sel].astype(np.int64)
        self.line = table.line[sel]
        self.agreement = None if agreement is None else Agreement.parse(agreement).short
        self.counts = {
            "rows": n_all,
            "agreement_ok": int(keep_votes.sum()),
            "with_crops": int(sel.sum()),
            "missing_crops": int((keep_votes & ~have).sum()),
            **{f"n_{name}": int((self.ttype == t).sum()) for t, name in enumerate(TYPE_NAMES)},
        }
        log.info("%s: %s", table.path, self.counts)

    def __len__(self) -> int:
        return len(self.odd)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int, int]:
        """``(crops (3, S, S, 3) uint8, odd, ttype)`` of triplet ``i``."""
        return self.store.get(self.rows[i]), int(self.odd[i]), int(self.ttype[i])

    def batch(self, index: np.ndarray) -> TripletBatch:
        idx = np.asarray(index, np.int64)
        return TripletBatch(idx, self.rows[idx], self.odd[idx], self.ttype[idx])

    def crops(self, batch: TripletBatch) -> tuple[np.ndarray, np.ndarray]:
        """Unique crops of a batch and, per triplet, their positions.

        Returns:
            ``(images, pos)``: ``(U, S, S, 3)`` uint8 and ``(B, 3)`` int64 indices into it.
        """
        uniq, inv = np.unique(batch.rows.reshape(-1), return_inverse=True)
        return self.store.get(uniq), inv.reshape(-1, 3)

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(
            {
                "line": self.line,
                "row1": self.rows[:, 0],
                "row2": self.rows[:, 1],
                "row3": self.rows[:, 2],
                "odd": self.odd,
                "type": np.asarray(TYPE_NAMES, dtype=object)[self.ttype],
            }
        )


def repeated_rows(table: FecTable) -> dict[str, int]:
    """What an FEC table repeats, which its statistics count as if it were new.

    Returns:
        ``{"duplicate_rows": n, "repeated_raters": m}``: rows equal to an earlier row (the
        same three faces, type, raters and labels; each copy counts in ``fec stats`` and
        the human baseline) and rows in which one rater id gives more than one vote.
    """
    if not len(table):
        return {"duplicate_rows": 0, "repeated_raters": 0}
    ids, _ = table.face_ids()
    rows = np.concatenate(
        [
            ids.astype(np.int64),
            np.asarray(table.ttype, np.int64).reshape(-1, 1),
            np.asarray(table.rater_index, np.int64),
            np.asarray(table.labels, np.int64),
        ],
        axis=1,
    )
    raters = np.sort(np.asarray(table.rater_index), axis=1)
    return {
        "duplicate_rows": len(rows) - len(np.unique(rows, axis=0)),
        "repeated_raters": int((raters[:, 1:] == raters[:, :-1]).any(axis=1).sum()),
    }


class BalancedTripletSampler:
    """Endless batches with ``per_type`` triplets of each type (FECNet: 30/30/30).

    Args:
        ttype: ``(T,)`` type codes of the dataset's triplets.
        per_type: triplets of each type per batch.
        seed: base seed; batch ``b`` depends only on ``(seed, b)``.

    Raises:
        DataError: a type has no triplets.
    """

    def __init__(self, ttype: np.ndarray, per_type: int = 30, seed: int = 0) -> None:
        if per_type < 1:
            raise ValueError("per_type must be >= 1")
        t = np.asarray(ttype, np.int64)
        self.per_type = int(per_type)
        self.seed = int(seed)
        self.by_type = [np.flatnonzero(t == k) for k in range(3)]
        empty = [TYPE_NAMES[k] for k in range(3) if len(self.by_type[k]) == 0]
        if empty:
            raise DataError(f"no {'/'.join(empty)}-class triplets to balance batches with")
        few = [
            f"{len(self.by_type[k])} {TYPE_NAMES[k]}"
            for k in range(3)
            if len(self.by_type[k]) < per_type
        ]
        if few:  # each batch then holds some triplet more than once
            log.warning(
                "only %s-class triplets, fewer than the %d of each type a batch takes: "
                "batches repeat them",
                " / ".join(few),
                per_type,
            )

    @property
    def batch_size(self) -> int:
        return 3 * self.per_type

    def _perm(self, k: int, epoch: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, k, epoch))
        return self.by_type[k][rng.permutation(len(self.by_type[k]))]

    def batch(self, b: int) -> np.ndarray:
        """Triplet indices of batch ``b``: ``(3 * per_type,)`` int64, types interleaved randomly."""
        parts = []
        for k in range(3):
            n = len(self.by_type[k])
            start = b * self.per_type
            pos = np.arange(start, start + self.per_type)
            epochs, offs = pos // n, pos % n
            out = np.empty(self.per_type, np.int64)
            for e in np.unique(epochs):
                m = epochs == e
                out[m] = self._perm(k, int(e))[offs[m]]
            parts.append(out)
        idx = np.concatenate(parts)
        return idx[np.random.default_rng((self.seed, 1 << 20, b)).permutation(len(idx))]

    def iter_from(self, start: int = 0) -> Iterator[np.ndarray]:
        """Batches ``start, start + 1, ...`` forever."""
        b = start
        while True:
            yield self.batch(b)
            b += 1

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.iter_from(0)
