"""Detection guided by earlier frames: ``BaseDetector.detect_near`` and ``TrackGuide``.

A fake backend whose faces are white squares on black (found by scanning the image it is
given) makes the geometry exact and independent of any model.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from exprsim.faces.detect import BaseDetector, Candidate
from exprsim.faces.stream import TrackGuide, analyze_stream


class Squares(BaseDetector):
    """Faces are the white squares wholly inside the image it is shown."""

    name = "squares"

    def __init__(self) -> None:
        super().__init__(max_side=None)
        self.calls: list[tuple[int, int]] = []  # shapes proposed on

    def propose(self, image):
        self.calls.append(image.shape[:2])
        mask = image[:, :, 0] > 127
        out, seen = [], np.zeros_like(mask)
        for y, x in zip(*np.nonzero(mask & ~seen), strict=True):
            if seen[y, x]:
                continue
            ys, xs = np.nonzero(mask[y:, x:].cumprod(0).cumprod(1))  # the block from (x, y)
            h, w = ys.max() + 1, xs.max() + 1
            seen[y : y + h, x : x + w] = True
            box = np.array([x, y, x + w, y + h], np.float64)
            layout = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]])
            five = np.array([x, y]) + layout * np.array([w, h])
            out.append(Candidate(box, 0.9, five, five))
        return out


def frame(*squares, size=(240, 320)):
    im = np.zeros((*size, 3), np.uint8)
    for x, y, s in squares:
        im[y : y + s, x : x + s] = 255
    return im


def test_a_shifted_candidate_moves_box_and_points():
    c = Candidate(np.array([1.0, 2, 3, 4]), 0.5, np.zeros((5, 2)), np.ones((5, 2)))
    d = c.shifted(10, 20)
    np.testing.assert_array_equal(d.box, [11, 22, 13, 24])
    np.testing.assert_array_equal(d.landmarks, np.tile([10, 20], (5, 1)))
    np.testing.assert_array_equal(d.fallback, np.tile([11, 21], (5, 1)))
    assert c.shifted(0, 0) is c


def test_near_a_hint_finds_the_same_face_as_the_full_detector():
    det = Squares()
    im = frame((100, 60, 40))
    full = det.detect(im)
    near = det.detect_near(im, np.array([[96.0, 58, 138, 98]]))  # last frame's box, moved
    assert near is not None and len(near) == len(full) == 1
    np.testing.assert_allclose(near[0].box, full[0].box)
    np.testing.assert_allclose(near[0].landmarks, full[0].landmarks)
    # only the region around the hint was searched: the 42 x 40 box grown by half its
    # size on each side, y 38..119 and x 75..160
    assert det.calls[-1] == (81, 85)


def test_a_face_gone_from_its_region_or_cut_by_it_means_a_full_pass():
    det = Squares()
    assert det.detect_near(frame((200, 150, 40)), np.array([[20.0, 20, 60, 60]])) is None
    # moved half out of its region: the region's edge cuts it
    assert det.detect_near(frame((80, 60, 40)), np.array([[20.0, 60, 60, 100]])) is None
    # a region clipped by the image border is fine: the border is not a cut
    near = det.detect_near(frame((0, 0, 40)), np.array([[0.0, 0, 40, 40]]))
    assert near is not None and len(near) == 1
    assert det.detect_near(frame((0, 0, 40)), np.zeros((0, 4))) is None


def test_faces_outside_every_region_are_not_searched_for():
    det = Squares()
    im = frame((20, 20, 40), (240, 160, 40))
    near = det.detect_near(im, np.array([[20.0, 20, 60, 60]]))
    assert near is not None and len(near) == 1 and len(det.detect(im)) == 2


def test_the_guide_schedule_full_passes_and_fallbacks():
    det = Squares()
    guide = TrackGuide(redetect_every=4)
    # a face that sits still, then jumps away at frame 6
    frames = [frame((100, 60, 40))] * 6 + [frame((240, 160, 40))] * 4
    full_calls = []
    out = []
    for i, im in enumerate(frames):
        n = len(det.calls)
        faces = guide.detect(det, im, i)
        guide.done(i, np.array([f.box for f in faces]).reshape(-1, 4))
        full_calls.append(det.calls[n:][-1] == im.shape[:2])  # last propose on the whole frame
        out.append(faces)
    assert all(len(f) == 1 for f in out)  # the jump is found the same frame (fallback)
    # frames 0, 4, 8 are full passes; 6 and 7 (hints from frame 4) fell back to one; the
    # rest were guided
    assert full_calls == [True, False, False, False, True, False, True, True, True, False]
    assert guide.guided == 7 and guide.fallbacks == 2


def test_a_new_face_waits_for_the_next_full_pass():
    det = Squares()
    guide = TrackGuide(redetect_every=3)
    counts = []
    for i in range(6):
        im = frame((20, 20, 40)) if i < 1 else frame((20, 20, 40), (240, 160, 40))
        faces = guide.detect(det, im, i)
        guide.done(i, np.array([f.box for f in faces]).reshape(-1, 4))
        counts.append(len(faces))
    assert counts == [1, 1, 1, 2, 2, 2]  # the newcomer from frame 1 is found at frame 3


def test_frames_without_faces_before_them_get_full_passes():
    det = Squares()
    guide = TrackGuide(redetect_every=10)
    for i, im in enumerate([frame(), frame((50, 50, 40))]):
        faces = guide.detect(det, im, i)
        guide.done(i, np.array([f.box for f in faces]).reshape(-1, 4))
    assert len(faces) == 1 and guide.guided == 0


def test_threads_give_the_same_faces_as_one_thread(monkeypatch):
    import exprsim.faces.pipeline as pipeline

    # the squares are no faces: the orientation check would call them upside down about
    # half the time and look again in each turned frame, doubling the detector calls
    monkeypatch.setattr(pipeline, "_upright", lambda image, aligned, *a: aligned)
    rng = np.random.default_rng(0)
    frames = []
    x = 100
    for i in range(30):
        x = int(np.clip(x + rng.integers(-6, 7), 0, 270))
        extra = [(10, 180, 30)] if i >= 12 else []  # enters at frame 12
        frames.append(frame((x, 60, 40), *extra))

    def run(workers):
        import exprsim.faces.stream as stream

        dets = threading.local()
        threads = set()

        def per_thread(name):  # one fake detector per thread, as the registry gives
            assert name == "haar"  # stands in: a registered name, so the stream checks it
            threads.add(threading.get_ident())
            if not hasattr(dets, "d"):
                dets.d = Squares()
            return dets.d

        # by name: a detector instance is not thread-safe, so it would run on one thread
        monkeypatch.setattr(stream, "_thread_detector", per_thread)
        real = pipeline.resolve_detector
        monkeypatch.setattr(  # one worker: the calling thread's
            pipeline, "resolve_detector", lambda d: per_thread(d) if d == "haar" else real(d)
        )
        guide = TrackGuide(redetect_every=5)
        items = list(analyze_stream(frames, "haar", workers=workers, guide=guide))
        assert len(threads) == workers
        return [[af.face.box.tolist() for af in it.faces] for it in items], guide

    one, g1 = run(1)
    assert [len(f) for f in one] == [1] * 15 + [2] * 15  # the newcomer found at frame 15
    assert g1.guided == 24  # every frame but the full passes 0, 5, ..., 25
    for workers in (2, 3, 4):  # 3 and 4: more threads than before a full pass is done
        many, g = run(workers)
        assert many == one  # each frame waits for its full pass: no dependence on timing
        assert g.guided == g1.guided


def test_guide_settings_are_checked():
    with pytest.raises(ValueError):
        TrackGuide(redetect_every=0)


def test_a_long_full_pass_period_keeps_its_guide_frames():
    det = Squares()
    guide = TrackGuide(redetect_every=200)
    im = frame((100, 60, 40))
    for i in range(300):
        faces = guide.detect(det, im, i)  # guided for long runs; old frames are forgotten
        guide.done(i, np.array([f.box for f in faces]).reshape(-1, 4))
        assert len(faces) == 1
    assert guide.guided == 298 and guide.fallbacks == 0  # full passes at 0 and 200
    assert sorted(guide._boxes) == [0, 200]  # only the full passes are kept


def test_the_full_passes_kept_are_bounded(monkeypatch):
    monkeypatch.setattr(TrackGuide, "KEPT_PASSES", 64)  # the rule, on a short clip
    det = Squares()
    guide = TrackGuide(redetect_every=2)
    im = frame((100, 60, 40))
    for i in range(2 * 2 * TrackGuide.KEPT_PASSES + 100):
        faces = guide.detect(det, im, i)
        guide.done(i, np.array([f.box for f in faces]).reshape(-1, 4))
    assert len(guide._boxes) <= TrackGuide.KEPT_PASSES + 1 and guide._floor > 0
    assert len(guide._events) <= TrackGuide.KEPT_PASSES + 1
    assert guide.guided == 2 * TrackGuide.KEPT_PASSES + 50 and guide.fallbacks == 0


def test_the_old_lag_is_taken_and_ignored():
    """``TrackGuide(lag=...)`` of the API before the thirty-second round still builds one."""
    with pytest.warns(DeprecationWarning, match="lag is ignored"):
        guide = TrackGuide(lag=2, redetect_every=3)
    assert guide.every == 3
