"""Who is who across frames, and temporal smoothing of the expression embedding.

Identity grouping in two steps:

1. **Tracks** (:func:`link_tracks`): boxes in consecutive sampled frames are linked
   greedily by IoU (>= ``min_iou``, highest first; a track survives ``max_gap`` sampled
   frames without a face), then the boxes and tracks left by the distance of their centres
   (at most ``CENTRE_JUMP`` box sizes, a box of about the same size: a fast face). Cheap,
   and on its own the fallback when dlib is absent.
2. **Identities** (:func:`cluster_identities`): dlib's 128-d face descriptors
   (:class:`exprsim.faces.identity.IdentityEncoder`) of some faces of each track (its 1st,
   then every ``descriptor_stride``-th face) are clustered with DBSCAN (Euclidean).
   Each face takes the cluster of the nearest described face of its own track.
   A track whose face suddenly looks unlike its previous face (aligned crops, 24x24 gray,
   correlation under ``APPEARANCE_JUMP``: a cut to someone framed alike) is described on the
   spot; if dlib then calls the face another person (over ``SAME_PERSON`` from the track's
   last descriptor), the track ends there and a new one starts (``TrackLinker.split``).
   A descriptor due on the schedule that dlib calls another person (a change the looks did
   not show: a cross-dissolve) splits the track too, halfway between its last described
   face and this one (the video pipeline's ``_FaceCollector._split_back``).

DBSCAN parameters: ``eps = 0.5`` and ``min_samples = 3``. dlib calls two faces the same
person below 0.6; within one person the descriptor still moves with expression and pose
(on the bundled Pexels clip: median 0.43, max 0.65 between frames of the same woman), so
DBSCAN's chaining through close neighbours is what keeps a person together, and a radius
a little under 0.6 keeps two similar-looking people from being chained into one.
``min_samples = 3`` means a person must be described at least three times (with the
default stride of 5 at 5 fps: about three seconds on screen, or three faces of short
tracks) to found a cluster on its own; descriptors that DBSCAN calls noise are attached
to the nearest cluster centre if closer than 0.6 (dlib's threshold). The noise left is
linked among itself at 0.6: a group of two or more descriptors (a person seen briefly
twice; the last looks of a track that turned into someone else) is a person when its faces
number at least ``min_samples``; a lone descriptor is one look of its track, and only a
track with no other person becomes a person of its own (with at least ``min_samples``
faces). Each face takes the person of the nearest described face of its track.
Faces left over get person ``-1`` (unassigned). Without dlib, each track with at least
``min_samples`` faces is a person.

Person ids are made stable: 0, 1, 2, ... in order of first appearance (ties: larger
box first), independent of DBSCAN's label order.

Smoothing (:func:`median_smooth`): FEENet median-pools the embedding over 3 frames per
person; here a centred window over the person's consecutive accepted faces of one track
(:func:`smooth_tracks`: one stay on screen), per dimension, re-normalised to unit length.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from exprsim.equality import array_equality
from exprsim.errors import ExprsimError
from exprsim.faces.detect import box_iou
from exprsim.faces.identity import IDENTITY_THRESHOLD

log = logging.getLogger(__name__)

#: DBSCAN radius on dlib descriptors (see module docstring).
DEFAULT_EPS = 0.5
#: DBSCAN ``min_samples`` (see module docstring).
DEFAULT_MIN_SAMPLES = 3
#: Largest move of a face's centre between two sampled frames, in sizes of its box, that
#: still links it to its track when the boxes barely overlap (:class:`TrackLinker`): a face
#: crossing a 640-px frame in a second at 5 fps moves 1.6 widths of its box a frame.
CENTRE_JUMP = 2.0
#: Largest area ratio of such a box to the track's last one.
SIZE_RATIO = 2.0
#: dlib's "same person" distance, used to attach noise descriptors to a cluster (the one
#: threshold of :mod:`exprsim.faces.identity`, which search's same-person filter uses too).
SAME_PERSON = IDENTITY_THRESHOLD
#: Correlation of consecutive aligned crops of a track (24x24 gray) under which the face is
#: checked with dlib (see the module docstring). On the bundled clip (one woman, 5 fps) the
#: lowest is 0.89; a cut to another person framed alike gives 0.13-0.44. A false alarm
#: costs one descriptor; only dlib's verdict splits a track.
APPEARANCE_JUMP = 0.8


def appearance(crop: np.ndarray) -> np.ndarray:
    """A cheap look of an aligned face crop: ``(576,)`` unit vector (24x24 gray, centred);
    the dot product of two is their correlation."""
    import cv2

    arr = np.asarray(crop, dtype=np.float32)
    gray = arr.mean(axis=2) if arr.ndim == 3 else arr
    small = cv2.resize(gray, (24, 24), interpolation=cv2.INTER_AREA).ravel()
    small = small - small.mean()
    return small / max(float(np.linalg.norm(small)), 1e-6)


class TrackLinker:
    """Online IoU tracker over sampled frames.

    Only the live tracks are kept: a track whose last face is more than ``max_gap + 1``
    sampled frames behind the frame being linked can never be linked again and is
    forgotten, so each frame costs time in the live tracks, not in every track of the video
    (the ids go on counting up). Slot numbers must not decrease from one call to the next
    (:func:`link_tracks` and the video pipeline pass them in order).

    Args:
        min_iou: smallest IoU linking a box to a track's last box.
        max_gap: sampled frames a track may go without a face before it ends.
    """

    def __init__(self, min_iou: float = 0.3, max_gap: int = 2) -> None:
        self.min_iou = min_iou
        self.max_gap = max_gap
        # live track -> (frame slot, box), in the order the tracks were created (the order
        # breaks ties between equal IoUs)
        self._last: dict[int, tuple[int, np.ndarray]] = {}
        self._next = 0

    @property
    def n_live(self) -> int:
        """Tracks kept: those still linkable at the last frame, plus any split since."""
        return len(self._last)

    def update(self, slot: int, boxes: np.ndarray) -> list[int]:
        """Track ids of the ``(K, 4)`` boxes of sampled frame number ``slot`` (not below the
        previous call's); tracks that ended too long ago to link are forgotten first."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        for t in [t for t, (s, _) in self._last.items() if slot - s > self.max_gap + 1]:
            del self._last[t]  # deleting keeps the creation order of the others
        alive = list(self._last)
        ids = [-1] * len(boxes)
        if alive and len(boxes):
            iou = box_iou(boxes, np.stack([self._last[t][1] for t in alive]))
            pairs = sorted(
                ((iou[i, j], i, j) for i in range(len(boxes)) for j in range(len(alive))),
                reverse=True,
            )
            used_b, used_t = set(), set()
            for v, i, j in pairs:
                if v < self.min_iou:
                    break
                if i in used_b or j in used_t:
                    continue
                ids[i] = alive[j]
                used_b.add(i)
                used_t.add(j)
            self._link_by_centre(boxes, alive, ids, used_t)
        for i, box in enumerate(boxes):
            if ids[i] < 0:
                ids[i] = self._next
                self._next += 1
            self._last[ids[i]] = (slot, box)
        return ids

    def _link_by_centre(
        self, boxes: np.ndarray, alive: list[int], ids: list[int], used_t: set[int]
    ) -> None:
        """Link the boxes IoU left alone to the tracks it left alone by the distance of
        their centres, in sizes of the track's last box (at most :data:`CENTRE_JUMP`, a box
        of about the same size: area ratio within :data:`SIZE_RATIO`), nearest first: a
        face that moves more than half its width between sampled frames overlaps its last
        box too little (each of its faces had been a track of one, dropped)."""
        free_b = [i for i in range(len(boxes)) if ids[i] < 0]
        free_t = [j for j in range(len(alive)) if j not in used_t]
        if not free_b or not free_t:
            return
        pairs = []
        for j in free_t:
            last = self._last[alive[j]][1]
            side = max(float(last[2] - last[0]), float(last[3] - last[1]), 1e-6)
            area = max(float((last[2] - last[0]) * (last[3] - last[1])), 1e-12)
            centre = np.array([(last[0] + last[2]) / 2, (last[1] + last[3]) / 2])
            for i in free_b:
                b = boxes[i]
                ratio = float((b[2] - b[0]) * (b[3] - b[1])) / area
                jump = float(np.hypot(*(np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]) - centre)))
                if 1 / SIZE_RATIO <= ratio <= SIZE_RATIO and jump / side <= CENTRE_JUMP:
                    pairs.append((jump / side, i, j))
        taken_b, taken_t = set(), set()
        for _, i, j in sorted(pairs):
            if i not in taken_b and j not in taken_t:
                ids[i] = alive[j]
                taken_b.add(i)
                taken_t.add(j)

    def split(self, track: int) -> int:
        """End ``track`` and go on from its last box under a new id (someone else took its
        place: a cut between two people framed alike); returns the new id."""
        new = self._next
        self._next += 1
        self._last[new] = self._last.pop(track)
        return new


def link_tracks(
    slots: Sequence[int], boxes: np.ndarray, min_iou: float = 0.3, max_gap: int = 2
) -> np.ndarray:
    """Track id of every face, offline.

    Args:
        slots: ``(N,)`` sampled-frame number of each face (non-decreasing).
        boxes: ``(N, 4)`` boxes.

    Returns:
        ``(N,)`` int64 track ids.
    """
    slots_arr = np.asarray(slots, dtype=np.int64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    linker = TrackLinker(min_iou, max_gap)
    out = np.empty(len(slots_arr), dtype=np.int64)
    for s in np.unique(slots_arr):
        idx = np.flatnonzero(slots_arr == s)
        out[idx] = linker.update(int(s), boxes[idx])
    return out


@array_equality
@dataclass(frozen=True)
class IdentityResult:
    """Person of every face.

    Attributes:
        persons: ``(N,)`` int64 person id (0, 1, ... by first appearance; -1 unassigned).
        tracks: ``(N,)`` int64 IoU track id.
        method: ``"dlib"`` (descriptors + DBSCAN) or ``"iou"`` (tracks only).
        n_descriptors: faces described by dlib.
    """

    persons: np.ndarray
    tracks: np.ndarray
    method: str
    n_descriptors: int = 0


def cluster_identities(
    slots: np.ndarray,
    boxes: np.ndarray,
    tracks: np.ndarray,
    descriptors: dict[int, np.ndarray] | None,
    eps: float = DEFAULT_EPS,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> IdentityResult:
    """Group faces into persons (see module docstring).

    Args:
        slots: ``(N,)`` sampled-frame number of each face.
        boxes: ``(N, 4)`` boxes (for the tie-break of the id order).
        tracks: ``(N,)`` track ids from :func:`link_tracks`.
        descriptors: face index -> ``(128,)`` dlib descriptor, or ``None`` for the
            track-only fallback.
        eps, min_samples: DBSCAN parameters.

    Returns:
        An :class:`IdentityResult`.
    """
    slots = np.asarray(slots, dtype=np.int64)
    tracks = np.asarray(tracks, dtype=np.int64)
    n = len(tracks)
    raw = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return IdentityResult(raw, tracks, "iou" if descriptors is None else "dlib")
    track_sizes = {int(t): int((tracks == t).sum()) for t in np.unique(tracks)}
    if descriptors is None:
        for t, size in track_sizes.items():
            if size >= min_samples:
                raw[tracks == t] = t
        method, n_desc = "iou", 0
    else:
        method, n_desc = "dlib", len(descriptors)
        raw = _cluster_descriptors(tracks, descriptors, track_sizes, eps, min_samples)
    return IdentityResult(_stable_ids(raw, slots, boxes), tracks, method, n_desc)


def _cluster_descriptors(
    tracks: np.ndarray,
    descriptors: dict[int, np.ndarray],
    track_sizes: dict[int, int],
    eps: float,
    min_samples: int,
) -> np.ndarray:
    from exprsim.clustering import dbscan

    n = len(tracks)
    raw = np.full(n, -1, dtype=np.int64)
    if not descriptors:
        return raw
    idx = np.array(sorted(descriptors), dtype=np.int64)
    x = np.stack([np.asarray(descriptors[int(i)], dtype=np.float64) for i in idx])
    labels = dbscan(x, eps=eps, min_samples=min_samples)
    clusters = [c for c in np.unique(labels) if c >= 0]
    if clusters:  # noise -> nearest cluster centre when within dlib's threshold
        centres = np.stack([x[labels == c].mean(axis=0) for c in clusters])
        for k in np.flatnonzero(labels < 0):
            d = np.linalg.norm(centres - x[k], axis=1)
            if d.min() < SAME_PERSON:
                labels[k] = clusters[int(d.argmin())]
    groups, lone = _group_noise(x, labels)
    fresh = int(labels.max()) + 1  # for a track without a descriptor
    for t in np.unique(tracks):
        members = np.flatnonzero(tracks == t)
        described = [
            (int(i), int(labels[np.searchsorted(idx, i)])) for i in members if i in descriptors
        ]
        good = [(i, lab) for i, lab in described if lab not in lone]
        if not good:
            if track_sizes[int(t)] >= min_samples:  # a steady track nobody else resembles
                raw[members] = described[0][1] if described else fresh
                fresh += not described
            continue
        pos = np.array([np.searchsorted(members, i) for i, _ in good])
        labs = np.array([lab for _, lab in good])
        for k, i in enumerate(members):
            raw[i] = labs[int(np.argmin(np.abs(pos - k)))]
    for lab in groups:  # a person known only from noise: as many faces as a cluster needs
        mine = raw == lab
        if mine.sum() < min_samples:
            raw[mine] = -1
    return raw


def _group_noise(x: np.ndarray, labels: np.ndarray) -> tuple[set[int], set[int]]:
    """Give the descriptors DBSCAN left as noise (``labels`` -1, relabelled in place) new
    labels: noise descriptors within dlib's :data:`SAME_PERSON` of each other, linked, share
    one (short visits of one person: each too few descriptors to found a cluster, together
    one person). Returns the new labels, and those of the groups of a single descriptor
    (``lone``: one look of a track that has others is not a person of its own)."""
    from exprsim.clustering import dbscan

    noise = np.flatnonzero(labels < 0)
    if len(noise) == 0:
        return set(), set()
    start = int(labels.max()) + 1
    linked = dbscan(x[noise], eps=SAME_PERSON, min_samples=1)  # connected components
    labels[noise] = start + linked
    counts = np.bincount(linked)
    groups = {start + g for g in range(len(counts))}
    return groups, {start + g for g in np.flatnonzero(counts == 1).tolist()}


def _stable_ids(raw: np.ndarray, slots: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Relabel to 0, 1, ... by first appearance (ties: larger box first); -1 stays."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keys = []
    for lab in np.unique(raw):
        if lab < 0:
            continue
        m = np.flatnonzero(raw == lab)
        first = m[np.lexsort((-area[m], slots[m]))[0]]
        keys.append((int(slots[first]), -float(area[first]), int(lab)))
    mapping = {lab: new for new, (_, _, lab) in enumerate(sorted(keys))}
    return np.array([mapping.get(int(v), -1) for v in raw], dtype=np.int64)


def median_smooth(embeddings: np.ndarray, window: int = 3, normalize: bool = True) -> np.ndarray:
    """Centred running median of ``(N, D)`` time-ordered embeddings, re-normalised.

    The window is odd, centred on each face (``window // 2`` faces on either side), and
    shrinks at both ends (the first face uses faces 0..w//2). ``window <= 1`` only
    re-normalises. ``normalize=False`` skips the re-normalisation (codes that are not
    unit vectors, such as perceptual-VAE codes).

    Returns:
        ``(N, D)`` float32, rows L2-normalised (when ``normalize``).

    Raises:
        ExprsimError: an even ``window`` (a centred window has an odd length).
    """
    if int(window) > 1 and int(window) % 2 == 0:
        raise ExprsimError(f"the median window must be odd (1, 3, 5, ...), got {window}")
    x = np.asarray(embeddings, dtype=np.float32)
    if len(x) == 0:
        return x.reshape(0, x.shape[-1] if x.ndim == 2 else 0)
    half = max(int(window), 1) // 2
    out = np.empty_like(x)
    for i in range(len(x)):
        out[i] = np.median(x[max(0, i - half) : i + half + 1], axis=0)
    if normalize:
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


def smooth_tracks(
    x: np.ndarray, tracks: np.ndarray, window: int = 3, normalize: bool = True
) -> np.ndarray:
    """:func:`median_smooth` of the time-ordered ``(N, D)`` rows of one person, each of
    its tracks on its own: a track is one stay on screen, so faces of two stays (gone and
    back) or of two copies of the face in one frame are never pooled together.

    Args:
        tracks: ``(N,)`` track id of each row.
    """
    x = np.asarray(x, dtype=np.float32)
    tracks = np.asarray(tracks).reshape(-1)
    out = np.empty_like(x)
    for t in np.unique(tracks):
        mine = tracks == t
        out[mine] = median_smooth(x[mine], window, normalize)
    return out
