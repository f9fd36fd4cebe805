"""scripts/framing_shift.py: the re-framing transforms checked on drawn geometry (no data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from file_module import load_file_module

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "framing_shift.py"


@pytest.fixture(scope="module")
def fs():
    yield from load_file_module(SCRIPT, "framing_shift")


def _square(side: int = 48, inner: int = 24) -> np.ndarray:
    """A black crop with a centred white square of side ``inner``."""
    img = np.zeros((side, side), np.uint8)
    o = (side - inner) // 2
    img[o : o + inner, o : o + inner] = 255
    return img


def test_tighter_half_fills_the_crop_with_the_central_square(fs):
    out = fs.reframe(_square()[None], 0.5)
    assert out.shape == (1, 48, 48) and out.dtype == np.uint8
    assert (out == 255).all()  # the central 24 px were the square, now the whole crop


def test_looser_double_halves_the_square_and_keeps_it_centred(fs):
    out = fs.reframe(_square()[None], 2.0)[0].astype(float) / 255
    # padded by 24 replicated (black) pixels a side: 96 px, the square 24 of them; back to
    # 48 px the square is 12 px wide, centred: rows/cols 18..29
    assert out.sum() == pytest.approx(12 * 12, abs=1e-6)
    assert out[18:30, 18:30].min() == 1.0 and out[:18].max() == 0.0 and out[:, 30:].max() == 0.0


def test_factor_one_and_lowres_of_a_flat_crop_change_nothing(fs):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (3, 48, 48), dtype=np.uint8)
    assert np.array_equal(fs.reframe(imgs, 1.0), imgs)
    flat = np.full((2, 48, 48), 77, np.uint8)
    assert np.array_equal(fs.lowres(flat, 24), flat)


def test_lowres_removes_detail_finer_than_its_side(fs):
    checker = ((np.indices((48, 48)).sum(0) % 2) * 255).astype(np.uint8)[None]
    out = fs.lowres(checker, 24)
    assert np.abs(out.astype(int) - 127).max() <= 1  # 1-px checks average to grey
    assert np.abs(checker.astype(int) - 127).min() == 127


def test_conditions_parse_and_bad_ones_are_refused(fs):
    img = _square()[None]
    assert np.array_equal(fs.condition("as-is")(img), img)
    assert np.array_equal(fs.condition("tighter-0.5")(img), fs.reframe(img, 0.5))
    assert np.array_equal(fs.condition("lowres-24")(img), fs.lowres(img, 24))
    for bad in ("tighter-1.2", "looser-0.8", "lowres-0", "zoom-2", "tighter-x"):
        with pytest.raises(ValueError, match="unknown condition"):
            fs.condition(bad)


def test_score_val_of_a_perfect_embedding(fs):
    from exprsim.data.triplets import TripletSet

    labels = np.repeat(np.arange(8), 12)  # 11 neighbours of every face share its class
    images = np.zeros((96, 48, 48), np.uint8)
    images[:, 0, 0] = labels  # the label written into a pixel
    fn = lambda im: np.eye(8)[im[:, 0, 0]]  # noqa: E731
    # faces 0 and 1 share a class, face 12 is the odd one
    trip = TripletSet(*(np.array([v]) for v in (0, 1, 12, 2, 0, 0.5)))
    row = fs.score_val(fn, images, labels, images, labels, trip)
    assert row == {"triplet_all": 1.0, "knn11_acc": 1.0, "score": 2.0}


def test_usage_errors_exit_2(fs, capsys):
    for argv in (["--split", "val", "--models", "default"],
                 ["--split", "test", "--models", "default", "--conditions", "zoom-2"]):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            fs.main(argv)
        assert exc.value.code == 2
    assert "unknown condition" in capsys.readouterr().err
