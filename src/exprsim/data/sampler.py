"""Class-balanced batches: ``per_class`` faces of every class in each batch.

The SGM loss (:mod:`exprsim.losses.sgm`) estimates one Gaussian per class from each batch, so
its batches hold ``n`` samples of each of the ``c`` classes (batch size ``n x c``; the paper
uses ``n = 30``, 240 faces for FER+'s 8 classes).

Each class keeps its own shuffled queue of member indices; a batch takes the next
``per_class`` of every queue and a queue is reshuffled when it runs out, so every face of a
class is seen once before any is repeated, and small classes are oversampled (a class with
fewer than ``per_class`` faces repeats faces inside a batch). Batches are deterministic in
``(seed, epoch)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from exprsim.errors import DataError


class BalancedClassSampler:
    """Batches of indices with ``per_class`` rows of every class.

    Args:
        labels: ``(N,)`` int class of each row (any non-negative ids; all ids present are
            used).
        per_class: rows per class per batch (SGM paper: 30).
        batches_per_epoch: batches yielded by :meth:`epoch` (default: ``N // batch_size``,
            so an epoch shows about as many faces as one pass over the data, at least 1).
        seed: base seed; epoch ``e`` uses ``(seed, e)``.

    Example::

        sampler = BalancedClassSampler(split.majority, per_class=30)
        for idx in sampler.epoch(0):   # (240,) int64 indices, classes in blocks of 30
            ...
    """

    def __init__(
        self,
        labels: np.ndarray,
        per_class: int = 30,
        batches_per_epoch: int | None = None,
        seed: int = 0,
    ) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) == 0:
            raise DataError(f"labels must be a non-empty (N,) array, got shape {labels.shape}")
        if per_class < 1:
            raise DataError(f"per_class must be >= 1, got {per_class}")
        self.labels = labels.astype(np.int64)
        self.per_class = int(per_class)
        self.classes = np.unique(self.labels)
        self.members = [np.flatnonzero(self.labels == c) for c in self.classes]
        self.seed = int(seed)
        self.batches_per_epoch = int(
            batches_per_epoch
            if batches_per_epoch is not None
            else max(1, len(labels) // self.batch_size)
        )

    @property
    def batch_size(self) -> int:
        """``per_class x number of classes``."""
        return self.per_class * len(self.classes)

    def __len__(self) -> int:
        return self.batches_per_epoch

    def epoch(self, epoch: int) -> Iterator[np.ndarray]:
        """Yield :attr:`batches_per_epoch` batches ``(batch_size,)`` int64 for ``epoch``.

        Within a batch the rows come in class blocks (class order of :attr:`classes`).
        """
        rng = np.random.default_rng((self.seed, int(epoch)))
        queues = [rng.permutation(m) for m in self.members]
        pos = [0] * len(queues)
        for _ in range(self.batches_per_epoch):
            parts = []
            for c, members in enumerate(self.members):
                take: list[np.ndarray] = []
                need = self.per_class
                while need > 0:
                    if pos[c] >= len(queues[c]):
                        queues[c] = rng.permutation(members)
                        pos[c] = 0
                    chunk = queues[c][pos[c] : pos[c] + need]
                    pos[c] += len(chunk)
                    need -= len(chunk)
                    take.append(chunk)
                parts.append(np.concatenate(take))
            yield np.concatenate(parts).astype(np.int64)
