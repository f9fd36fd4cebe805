"""compare: distance matrix and odd one out against hand-made and naive references; the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from exprsim.apps.compare import compare_images, distance_matrix, odd_one_out
from exprsim.cli import main
from exprsim.errors import ExprsimError
from exprsim.samples import sample_path


def test_distance_matrix_matches_a_loop() -> None:
    e = np.random.default_rng(0).normal(size=(5, 16))
    d = distance_matrix(e)
    for i in range(5):
        for j in range(5):
            assert d[i, j] == pytest.approx(math.dist(e[i], e[j]), abs=1e-12)
    assert (np.diag(d) == 0).all()


def test_distance_matrix_in_blocks_is_the_same_and_stays_small(monkeypatch) -> None:
    """Rows a block at a time: the same numbers as all at once (a block of one row, of 3
    rows, of all), and memory of the result plus a block, not of (N, N, D) differences."""
    import tracemalloc

    import exprsim.apps.compare as compare

    e = np.random.default_rng(2).normal(size=(7, 16)).astype(np.float32)
    # worked in float64 since round 26 (scaled by a power of two), given back as float32
    e64 = e.astype(np.float64)
    whole = np.linalg.norm(e64[:, None] - e64[None], axis=-1).astype(np.float32)
    for block in (1, 3 * 7 * 16, 1 << 22):
        monkeypatch.setattr(compare, "DIFFERENCE_BLOCK", block)
        d = distance_matrix(e)
        assert d.dtype == np.float32 and np.array_equal(d, whole), block
    monkeypatch.undo()
    big = np.random.default_rng(3).normal(size=(2000, 16))
    tracemalloc.start()
    try:
        d = distance_matrix(big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert d.shape == (2000, 2000)
    assert peak < 200e6  # the result is 32 MB, a block 32 MB; all differences at once: 512 MB
    assert d[17, 1234] == pytest.approx(math.dist(big[17], big[1234]), abs=1e-12)
    with pytest.raises(ExprsimError, match=r"\(N, D\)"):
        distance_matrix(np.zeros(16))


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64, bool])
def test_distance_matrix_of_integers_does_not_wrap(dtype) -> None:
    """uint8 differences wrapped round (0 - 200 = 56) and the result was float16."""
    e = np.array([[0, 10], [200, 0], [1, 1]]).astype(dtype)
    d = distance_matrix(e)
    assert d.dtype == np.float64
    want = [[math.dist(a, b) for b in e.astype(float)] for a in e.astype(float)]
    np.testing.assert_allclose(d, want, rtol=1e-12)


def test_odd_one_out_by_hand() -> None:
    a, b, far = [1.0, 0.0], [0.8, 0.6], [-1.0, 0.0]  # a and b are close, far is not
    assert odd_one_out(np.array([a, b, far])) == 2
    assert odd_one_out(np.array([far, a, b])) == 0
    assert odd_one_out(np.array([a, far, b])) == 1
    with pytest.raises(ExprsimError, match=r"\(3, D\)"):
        odd_one_out(np.zeros((4, 2)))


def test_compare_images_with_stub(stub) -> None:
    rng = np.random.default_rng(1)
    base = rng.integers(1, 255, (32, 32, 3), dtype=np.uint8)
    near = np.clip(base.astype(int) + 3, 0, 255).astype(np.uint8)
    other = rng.integers(1, 255, (32, 32, 3), dtype=np.uint8)
    res = compare_images([base, near, other], stub)
    assert res.sources == ("<array #0>", "<array #1>", "<array #2>")
    assert res.embeddings.shape == (3, 16)
    e = res.embeddings
    assert res.distances[0, 2] == pytest.approx(math.dist(e[0], e[2]), abs=1e-6)
    assert res.odd_one_out == 2
    out = res.to_dict()
    assert out["odd_one_out"] == "<array #2>" and len(out["distances"]) == 3
    two = compare_images([base, other], stub)
    assert two.odd_one_out is None and "odd_one_out" not in two.to_dict()
    with pytest.raises(ExprsimError, match="at least two"):
        compare_images([base], stub)
    with pytest.raises(ExprsimError, match="no face"):
        compare_images([base, np.zeros((32, 32, 3), np.uint8)], stub)  # black: no face


@pytest.mark.slow
def test_compare_cli(random_model_dir, capsys) -> None:
    imgs = [str(sample_path(n)) for n in ("grace_hopper.jpg", "pexels_langer_frame360.jpg",
                                          "pexels_langer_frame432.jpg")]  # fmt: skip
    model = ["--model", str(random_model_dir)]
    assert main(["-q", "compare", *imgs, *model]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 3 + 1 and lines[-1].startswith("odd one out: ")
    assert lines[1].startswith("grace_hopper.jpg") and "0.000" in lines[1]
    assert main(["-q", "compare", *imgs, *model, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    d = np.array(out["distances"])
    assert out["images"] == imgs and d.shape == (3, 3) and np.allclose(d, d.T)
    pair = [d[1, 2], d[0, 2], d[0, 1]]
    assert out["odd_one_out"] == imgs[int(np.argmin(pair))]
    assert lines[-1] == f"odd one out: {out['odd_one_out']}"
    assert main(["-q", "compare", imgs[0], *model]) == 2
    assert "at least two" in capsys.readouterr().err


def test_compare_cli_takes_a_detector(random_model_dir, capsys) -> None:
    """Fifteenth round: `compare` had no --detector, though compare_images takes one."""
    from exprsim.apps.compare import compare_images
    from exprsim.models.embedder import load_model

    imgs = [str(sample_path(n)) for n in ("grace_hopper.jpg", "astronaut_eileen_collins.jpg")]
    model = ["--model", str(random_model_dir)]
    assert main(["-q", "compare", *imgs, *model, "--detector", "haar", "--json"]) == 0
    got = np.array(json.loads(capsys.readouterr().out)["distances"])
    embedder = load_model(str(random_model_dir))
    want = compare_images(imgs, embedder, detector="haar").distances
    np.testing.assert_allclose(got, want, atol=1e-4)  # the JSON's 4 decimals
    default = compare_images(imgs, embedder).distances  # haar's boxes give other crops
    assert np.abs(default - want).max() > 1e-3
    assert main(["-q", "compare", *imgs, *model, "--detector", "nope"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and len(err.strip().splitlines()) == 1
