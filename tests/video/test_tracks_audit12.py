"""Audit 12, finding 5: ``TrackLinker`` forgets tracks that can no longer be linked, and
links exactly as before (checked against a naive re-implementation of the old rule)."""

from __future__ import annotations

import numpy as np

from exprsim.faces.detect import box_iou
from exprsim.video.tracks import TrackLinker, link_tracks


class NaiveLinker:
    """The linking rule as it was before audit 12: every track ever created stays in the
    table (creation order), a track is linkable when its last face is at most
    ``max_gap + 1`` sampled frames back, pairs are taken greedily by ``(iou, box, track)``
    from the highest down while the IoU reaches ``min_iou``; then (round 27) the boxes and
    tracks left are linked by their centres (:meth:`_by_centre`)."""

    def __init__(self, min_iou: float, max_gap: int) -> None:
        self.min_iou, self.max_gap = min_iou, max_gap
        self.tracks: list[list] = []  # [id, slot, box], creation order (split: moved last)
        self.next = 0

    def update(self, slot: int, boxes: np.ndarray) -> list[int]:
        alive = [t for t in self.tracks if slot - t[1] <= self.max_gap + 1]
        pairs = []
        for i, box in enumerate(boxes):
            for j, t in enumerate(alive):
                iou = float(box_iou(box[None], np.asarray(t[2])[None])[0, 0])
                pairs.append((iou, i, j))
        pairs.sort(reverse=True)
        ids = [-1] * len(boxes)
        for iou, i, j in pairs:
            if iou < self.min_iou:
                break
            if ids[i] < 0 and all(ids[k] != alive[j][0] for k in range(len(boxes))):
                ids[i] = alive[j][0]
        self._by_centre(boxes, alive, ids)
        for i, box in enumerate(boxes):
            if ids[i] < 0:
                ids[i] = self.next
                self.next += 1
                self.tracks.append([ids[i], slot, box])
            else:
                t = next(t for t in self.tracks if t[0] == ids[i])
                t[1], t[2] = slot, box
        return ids

    @staticmethod
    def _by_centre(boxes: np.ndarray, alive: list, ids: list[int]) -> None:
        """Round 27: boxes and tracks IoU left alone, linked by the centre's move in sizes
        of the track's last box (at most 2, area ratio within 2), nearest first."""
        from exprsim.video.tracks import CENTRE_JUMP, SIZE_RATIO

        pairs = []
        for j, t in enumerate(alive):
            if t[0] in ids:
                continue
            x1, y1, x2, y2 = (float(v) for v in t[2])
            side, area = max(x2 - x1, y2 - y1, 1e-6), max((x2 - x1) * (y2 - y1), 1e-12)
            for i, b in enumerate(boxes):
                if ids[i] >= 0:
                    continue
                ratio = float((b[2] - b[0]) * (b[3] - b[1])) / area
                dx = (b[0] + b[2]) / 2 - (x1 + x2) / 2
                dy = (b[1] + b[3]) / 2 - (y1 + y2) / 2
                jump = float(np.hypot(dx, dy)) / side
                if 1 / SIZE_RATIO <= ratio <= SIZE_RATIO and jump <= CENTRE_JUMP:
                    pairs.append((jump, i, j))
        for _, i, j in sorted(pairs):
            if ids[i] < 0 and alive[j][0] not in ids:
                ids[i] = alive[j][0]

    def split(self, track: int) -> int:
        t = next(t for t in self.tracks if t[0] == track)
        self.tracks.remove(t)
        self.tracks.append([self.next, t[1], t[2]])
        self.next += 1
        return self.next - 1


def _frames(seed: int, n: int) -> list[tuple[int, np.ndarray]]:
    """``n`` sampled frames ``(slot, boxes)``: 0-4 boxes each on a coarse grid (so equal
    IoUs and identical boxes happen: the tie-break is exercised), drifting by 0-1 grid
    steps, with skipped slots now and then (tracks end, and some come back within the gap)."""
    rng = np.random.default_rng(seed)
    out, slot = [], 0
    centres = rng.integers(0, 6, size=(4, 2))
    for _ in range(n):
        slot += int(rng.choice([1, 1, 1, 2, 3, 5]))
        centres = np.clip(centres + rng.integers(-1, 2, size=centres.shape), 0, 5)
        if rng.random() < 0.05:  # a cut: everyone elsewhere
            centres = rng.integers(0, 6, size=(4, 2))
        k = int(rng.integers(0, 5))
        pick = rng.permutation(4)[:k]
        boxes = np.array([[10 * x, 10 * y, 10 * x + 20, 10 * y + 20] for x, y in centres[pick]])
        out.append((slot, boxes.reshape(-1, 4).astype(np.float64)))
    return out


def test_linker_gives_the_ids_of_the_naive_old_rule_with_splits():
    """Guard (passes on the snapshot too): forgetting dead tracks changes no id, including
    tie-breaks between equal IoUs and tracks split mid-way (several seeds and gaps)."""
    for seed, max_gap, min_iou in [(0, 2, 0.3), (1, 0, 0.3), (2, 4, 0.1), (3, 1, 0.5)]:
        rng = np.random.default_rng(100 + seed)
        new, old = TrackLinker(min_iou, max_gap), NaiveLinker(min_iou, max_gap)
        for slot, boxes in _frames(seed, 400):
            got, want = new.update(slot, boxes), old.update(slot, boxes)
            assert got == want, (seed, slot)
            for t in got:
                if rng.random() < 0.1:
                    assert new.split(t) == old.split(t)


def test_link_tracks_equals_the_naive_old_rule_offline():
    """Guard (passes on the snapshot too): :func:`link_tracks` over a long sequence."""
    frames = _frames(7, 1500)
    slots = np.concatenate([[s] * len(b) for s, b in frames]).astype(np.int64)
    boxes = np.concatenate([b for _, b in frames])
    old = NaiveLinker(0.3, 2)
    want = [t for s, b in frames for t in old.update(s, b)]
    np.testing.assert_array_equal(link_tracks(slots, boxes, 0.3, 2), want)


def test_linker_keeps_only_live_tracks_over_a_long_video():
    """At most 4 boxes a frame and ``max_gap = 2``: a track is linkable for 4 slots, so at
    most 16 tracks can be live (a split replaces one); 3,000 frames create
    thousands of tracks."""
    linker = TrackLinker(0.3, 2)
    rng = np.random.default_rng(5)
    most = 0
    for slot, boxes in _frames(11, 3000):
        ids = linker.update(slot, boxes)
        if ids and rng.random() < 0.2:
            linker.split(ids[0])
        most = max(most, len(linker._last))
    assert linker._next > 1000  # many tracks were created
    assert most <= 4 * 4
    assert linker.n_live == len(linker._last)
