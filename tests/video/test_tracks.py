"""IoU tracks, identity clustering and median smoothing (no video needed)."""

from __future__ import annotations

import numpy as np

from exprsim.video.tracks import box_iou, cluster_identities, link_tracks, median_smooth


def test_box_iou_matches_hand_computation():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0.0]])


def test_link_tracks_follows_moving_boxes_and_ends_after_gap():
    slots = [0, 0, 1, 1, 2, 6]
    boxes = np.array(
        [
            [0, 0, 10, 10],  # A
            [50, 50, 60, 60],  # B
            [51, 51, 61, 61],  # B moved (listed first)
            [1, 0, 11, 10],  # A moved
            [2, 0, 12, 10],  # A
            [2, 0, 12, 10],  # A again after a gap of 3 missing frames: a new track
        ]
    )
    t = link_tracks(slots, boxes, min_iou=0.3, max_gap=2)
    assert t[0] == t[3] == t[4] and t[1] == t[2] and t[0] != t[1]
    assert t[5] not in (t[0], t[1])


def test_median_smooth_equals_loop_and_is_normalised():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 16)).astype(np.float32)
    got = median_smooth(x, 3)
    for i in range(7):
        want = np.median(x[max(0, i - 1) : i + 2], axis=0)
        np.testing.assert_allclose(got[i], want / np.linalg.norm(want), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(median_smooth(x, 1), axis=1), 1.0, atol=1e-6)
    assert median_smooth(x[:0], 3).shape == (0, 16)


def _blob(rng, centre, n):
    return centre + rng.normal(scale=0.01, size=(n, 128))  # pairwise ~0.16


def test_cluster_identities_dbscan_split_and_stable_ids():
    rng = np.random.default_rng(1)
    ca, cb = rng.normal(size=128), rng.normal(size=128)
    ca, cb = ca / np.linalg.norm(ca) * 0.2, cb / np.linalg.norm(cb) * 0.2 + 1.0
    # one track (0) that shows B for 4 frames then A for 4 (a cut at the same place),
    # and a second track (1) of A appearing later
    tracks = np.array([0] * 8 + [1] * 4)
    slots = np.array(list(range(8)) + list(range(10, 14)))
    boxes = np.tile([0, 0, 10, 10], (12, 1))
    desc = dict(enumerate(np.vstack([_blob(rng, cb, 4), _blob(rng, ca, 4), _blob(rng, ca, 4)])))
    res = cluster_identities(slots, boxes, tracks, desc, eps=0.5, min_samples=3)
    assert res.method == "dlib"
    # B appears first -> person 0; A -> person 1, the same person in both tracks
    assert res.persons.tolist() == [0] * 4 + [1] * 8


def test_cluster_identities_iou_fallback_drops_short_tracks():
    tracks = np.array([3, 3, 3, 7, 9, 9, 9, 9])
    slots = np.array([0, 1, 2, 2, 3, 4, 5, 6])
    boxes = np.tile([0, 0, 10, 10], (8, 1))
    res = cluster_identities(slots, boxes, tracks, None, min_samples=3)
    assert res.method == "iou"
    assert res.persons.tolist() == [0, 0, 0, -1, 1, 1, 1, 1]
