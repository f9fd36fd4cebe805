"""Round 27 (docs/robustness.md): persons seen briefly, a dissolve from one person to
another, smoothing within one stay on screen."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.video.tracks import cluster_identities, median_smooth

from .conftest import LEFT, compose


def _people(rng, n_people):
    """Descriptor centres of ``n_people`` persons, about 1.0 apart (dlib: another person
    over 0.6), and a draw of ``n`` descriptors of one (pairwise ~0.14)."""
    centres = rng.normal(size=(n_people, 128))
    centres *= 0.7 / np.linalg.norm(centres, axis=1, keepdims=True)

    def draw(p, n):
        return centres[p] + rng.normal(scale=0.01, size=(n, 128))

    return draw


def _identities(tracks, described):
    """``cluster_identities`` of faces in time order: ``tracks`` per face, ``described``
    {face: descriptor}; every face in its own slot except those of one slot."""
    tracks = np.asarray(tracks)
    slots = np.arange(len(tracks))
    boxes = np.tile([0.0, 0.0, 10.0, 10.0], (len(tracks), 1))
    return cluster_identities(slots, boxes, tracks, described, eps=0.5, min_samples=3).persons


def test_one_person_on_screen_twice_briefly_is_one_person():
    draw = _people(np.random.default_rng(0), 2)
    # B on screen throughout (track 0, four descriptors: a cluster); A twice, five faces
    # each time (tracks 1 and 2, one descriptor each: too few for a cluster)
    tracks = [0] * 40 + [1] * 5 + [2] * 5
    described = dict(zip([0, 5, 15, 35], draw(1, 4), strict=True))
    described[40], described[45] = draw(0, 2)
    persons = _identities(tracks, described)
    assert persons[40] >= 0 and set(persons[40:50]) == {persons[40]}  # was two persons
    assert persons[0] != persons[40]


def test_a_short_appearance_joins_its_later_one():
    draw = _people(np.random.default_rng(1), 2)
    # B throughout; C twice: two faces (track 1), then three (track 2)
    tracks = [0] * 40 + [1] * 2 + [2] * 3
    described = dict(zip([0, 5, 15, 35], draw(1, 4), strict=True))
    described[40], described[42] = draw(0, 2)
    persons = _identities(tracks, described)
    assert persons[40] >= 0  # was -1: the two faces dropped
    assert set(persons[40:45]) == {persons[40]} and persons[40] != persons[0]


def test_a_track_that_turns_into_another_person_is_split_where_the_looks_change():
    draw = _people(np.random.default_rng(2), 2)
    # one track: A described at 0, 5, 15, 35, 60, 85; B (a dissolve) at 110 and 135
    tracks = [0] * 145
    described = dict(zip([0, 5, 15, 35, 60, 85], draw(0, 6), strict=True))
    described[110], described[135] = draw(1, 2)
    persons = _identities(tracks, described)
    assert set(persons[:98]) == {persons[0]}
    assert set(persons[98:]) == {persons[110]}  # was A's: B's 35 faces credited to A
    assert persons[110] != persons[0]


def test_one_odd_look_inside_a_track_does_not_make_a_person():
    draw = _people(np.random.default_rng(3), 2)
    tracks = [0] * 60
    described = dict(zip([0, 5, 15, 35], draw(0, 4), strict=True))
    described[50] = draw(1, 1)[0]  # one descriptor far from the rest (a turned head)
    persons = _identities(tracks, described)
    assert set(persons) == {0}


def test_a_short_track_nobody_else_resembles_stays_unassigned():
    draw = _people(np.random.default_rng(4), 2)
    tracks = [0] * 40 + [1] * 2
    described = dict(zip([0, 5, 15, 35], draw(0, 4), strict=True))
    described[40] = draw(1, 1)[0]
    persons = _identities(tracks, described)
    assert persons[40:].tolist() == [-1, -1]
    assert set(persons[:40]) == {0}


def test_smoothing_never_pools_two_stays_on_screen():
    from exprsim.video.tracks import smooth_tracks

    rng = np.random.default_rng(5)
    x = rng.normal(size=(9, 16)).astype(np.float32)
    tracks = np.array([4, 4, 4, 4, 9, 9, 9, 9, 9])
    got = smooth_tracks(x, tracks, 3)
    expected = np.vstack([median_smooth(x[:4], 3), median_smooth(x[4:], 3)])
    np.testing.assert_allclose(got, expected)
    # the last face of the first stay: its own median, not pooled with the next stay's
    naive = np.median(x[2:4], axis=0)
    np.testing.assert_allclose(got[3], naive / np.linalg.norm(naive), rtol=1e-6)


@pytest.mark.slow
def test_a_dissolve_from_one_person_to_another_makes_two_persons(
    face_patches, clip_factory, embedder
):
    from exprsim.video.pipeline import VideoConfig, analyze_video

    frames = []
    eileen = compose(face_patches, {"eileen": LEFT})
    grace = compose(face_patches, {"grace": LEFT})
    for i in range(55):  # Eileen 0-19, a 5-frame cross-dissolve, Grace 25-54 (5 fps)
        w = min(max((i - 19) / 6, 0.0), 1.0)
        frames.append(((1 - w) * eileen + w * grace).round().astype(np.uint8))
    clip = clip_factory("dissolve.mp4", frames, fps=5)
    a = analyze_video(clip, embedder, VideoConfig(fps=5), classifier=None)
    assert a.identity_method == "dlib"
    assert a.n_persons == 2  # was 1: Grace's 33 faces credited to Eileen
    first, second = a.person_stats
    assert abs(first.frames_present - 22) <= 4 and abs(second.frames_present - 33) <= 4


def test_a_fast_face_stays_one_track_and_a_far_one_does_not_join_it():
    from exprsim.video.tracks import link_tracks

    side = 88.0
    # one face crossing at 1.6 of its widths a sampled frame (its boxes never overlap)
    fast = [[10 + 140 * t, 250, 10 + 140 * t + side, 250 + side] for t in range(5)]
    slots = list(range(5))
    assert len(set(link_tracks(slots, np.array(fast)).tolist())) == 1  # was 5 tracks
    far = [fast[0], [fast[0][0] + 3 * side, 250, fast[0][2] + 3 * side, 250 + side]]
    assert len(set(link_tracks([0, 1], np.array(far)).tolist())) == 2  # 3 widths: another
    big = [fast[0], [fast[0][0] + side, 250, fast[0][0] + 3 * side, 250 + 2 * side]]
    assert len(set(link_tracks([0, 1], np.array(big)).tolist())) == 2  # 4 times the area
    # overlap first: of two boxes, the one overlapping the track continues it
    near, jump = [10 + 20, 250, 10 + 20 + side, 250 + side], fast[1]
    ids = link_tracks([0, 1, 1], np.array([fast[0], jump, near])).tolist()
    assert ids[2] == ids[0] and ids[1] != ids[0]
