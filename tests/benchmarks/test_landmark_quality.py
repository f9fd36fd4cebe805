"""benchmarks/landmark_quality.py: argument checks, the canvas and the report (no data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from file_module import load_file_module

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "landmark_quality.py"


@pytest.fixture(scope="module")
def lq():
    yield from load_file_module(SCRIPT, "bench_landmark_quality")


def test_arguments(lq):
    args = lq.parse_args([])
    assert (args.seed, args.roll, args.limit, args.triplets) == (0, 0.0, None, 3000)
    for bad in (["--roll", "-1"], ["--limit", "5"], ["--triplets", "2"]):
        with pytest.raises(SystemExit):
            lq.parse_args(bad)


def test_paste_puts_the_face_whole_on_the_canvas(lq):
    face = np.full((48, 48), 250, np.uint8)  # brighter than any blurred background pixel
    canvas = lq.paste(face, np.random.default_rng(3), 0.0)
    assert canvas.shape == (480, 640, 3) and canvas.dtype == np.uint8
    assert np.array_equal(canvas[..., 0], canvas[..., 2])  # gray in RGB
    ys, xs = np.nonzero(canvas[..., 0] == 250)
    side_y, side_x = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    assert side_y == side_x and 150 <= side_x <= 260
    assert len(ys) == side_x * side_y  # one solid square


def test_place_turns_the_face_about_its_centre(lq):
    face = np.zeros((48, 48), np.uint8)
    face[:, 24:] = 250  # right half bright: shows the direction of the turn
    noise = np.full((480, 640), 20.0)
    upright = lq.place(face, noise, 200, 220, 140, 0.0)[..., 0] > 128
    turned = lq.place(face, noise, 200, 220, 140, 90.0)[..., 0] > 128
    assert abs(int(upright.sum()) - int(turned.sum())) < 0.02 * upright.sum()  # same area
    centre = np.array([140 + 99.5, 220 + 99.5])  # (row, col) of the square's centre
    # 90 degrees counter-clockwise: the bright right half now lies above the centre
    assert np.argwhere(upright).mean(axis=0)[1] > centre[1] + 40
    assert np.argwhere(turned).mean(axis=0)[0] < centre[0] - 40
    assert abs(np.argwhere(turned).mean(axis=0)[1] - centre[1]) < 1.5
    outside = np.ones_like(turned)
    outside[140:340, 220:420] = False
    assert not (turned & outside).any()  # nothing mirrored outside the face's square


def test_report_lists_every_row(lq):
    row = {"triplets": 0.8, "knn11": 0.83, "head": 0.84}
    res = {
        "scored": 10,
        "faces": 12,
        "not_found": 1,
        "refused_by_landmark_model": {"mesh": 1, "mesh-lite": 2},
        "roll_max_deg": 0.0,
        "n_triplets": 30,
        "model": "m@1",
        "rows": {"mesh": row, "mesh-lite": row | {"dist_to_mesh_median": 0.035}},
    }
    text = lq.report(res)
    assert "10 of 12" in text and "0.035" in text
    assert [ln.split()[0] for ln in text.splitlines()[2:]] == ["mesh", "mesh-lite"]
