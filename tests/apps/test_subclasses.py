"""Sub-expressions: the EM split on known mixtures, discovery and its page, the CLI."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from exprsim.apps.subclasses import (
    discover_subexpressions,
    split_classes,
    subexpressions_page,
)
from mixtures import gaussian_subclasses

_mixture = gaussian_subclasses


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = {(int(x), int(y)) for x, y in zip(a, b, strict=True)}
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_bic_finds_the_known_components() -> None:
    emb, labels, truth = _mixture()
    split = split_classes(emb, labels, "bic", max_components=5)
    assert split.n_components == {0: 3, 1: 1}
    assert split.parent.tolist() == [0, 0, 0, 1]
    assert _same_partition(split.labels, truth)
    # sub-classes of a class are ordered by size: 60, 40, 30
    assert np.bincount(split.labels).tolist() == [60, 40, 30, 50]
    assert min(split.bic[0], key=split.bic[0].get) == 3
    np.testing.assert_allclose(split.means[3], [10, 10, 10], atol=0.2)


def test_fixed_components_with_stride() -> None:
    emb, labels, truth = _mixture(1)
    split = split_classes(emb, labels, n_components=3, stride=3)
    assert split.parent.tolist() == [0, 0, 0, 1, 1, 1]
    assert _same_partition(split.labels[labels == 0], truth[labels == 0])
    assert set(split.labels[labels == 1].tolist()) <= {3, 4, 5}
    one = split_classes(emb, labels, n_components=1)
    assert np.array_equal(one.labels, labels)
    # a class with a single face stays whole
    lab = labels.copy()
    lab[0] = 7
    for n in ("bic", 2):
        split = split_classes(emb, lab, n_components=n)
        assert split.n_components[7] == 1 and split.parent[split.labels[0]] == 7


def test_discover_and_page() -> None:
    emb, labels, _ = _mixture(3)
    crops = [np.full((48, 48), i % 255, np.uint8) for i in range(len(emb))]
    rep = discover_subexpressions(emb, labels, class_names=["happy", "sad"], top_k=5, crops=crops)
    assert [s.to_dict()["subclass"] for s in rep.subexpressions] == [
        "happy-1", "happy-2", "happy-3", "sad-1"]  # fmt: skip
    for s in rep.subexpressions:
        members = emb[s.members]
        centre = members.mean(0)
        assert s.medoid == s.members[np.argmin(np.linalg.norm(members - centre, axis=1))]
        assert s.top[0] == s.medoid and len(s.top) == 5
        d = np.linalg.norm(emb[list(s.top)] - emb[s.medoid], axis=1)
        assert np.all(np.diff(d) >= 0)
    df = rep.to_frame()
    assert len(df) == len(emb) and set(df["class"]) == {"happy", "sad"}
    html = subexpressions_page(rep, map_method="pca").render()
    assert "happy-3" in html and html.count("<img") >= 4 * 5 + 1


@pytest.mark.slow
def test_subclasses_cli(tmp_path: Path, random_model_dir: Path, capsys) -> None:
    from exprsim.cli import main
    from exprsim.samples import sample_path

    for folder, names in {
        "a": ("grace_hopper.jpg", "astronaut_eileen_collins.jpg"),
        "b": ("pexels_langer_frame000.jpg", "pexels_langer_frame144.jpg",
              "pexels_langer_frame288.jpg"),
    }.items():  # fmt: skip
        (tmp_path / "album" / folder).mkdir(parents=True)
        for n in names:
            shutil.copy(sample_path(n), tmp_path / "album" / folder / n)
    html, js = tmp_path / "sub.html", tmp_path / "sub.json"
    rc = main(["-q", "subclasses", str(tmp_path / "album"), "--model", str(random_model_dir),
               "--labels", "folder", "--components", "2", "--min-per-component", "1", "--top", "3", "--map", "pca",
               "--html", str(html), "--json", str(js)])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "a-1" in out and "b-2" in out
    text = html.read_text()
    assert text.startswith("<!DOCTYPE html>") and not re.search(r"https?://", text)
    data = json.loads(js.read_text())
    assert data["split"]["n_subclasses"] == 4
    assert main(["-q", "subclasses", "--model", str(random_model_dir)]) == 2
    assert main(["-q", "subclasses", "--fer", "PublicTest", "x.jpg"]) == 2
    assert main(["-q", "subclasses", "--fer", "PublicTest", "--components", "zero"]) == 2


def test_subclasses_cli_skips_unreadable_images(
    tmp_path: Path, random_model_dir: Path, capsys
) -> None:
    """An unreadable image among good ones: one line for it, the page from the others, exit 0
    (as summarize, classify and tag); only unreadable images: the count line, then exit 2."""
    from exprsim.cli import main
    from exprsim.samples import sample_path

    album = tmp_path / "album"
    album.mkdir()
    for n in ("grace_hopper.jpg", "pexels_langer_frame000.jpg", "pexels_langer_frame288.jpg"):
        shutil.copy(sample_path(n), album / n)
    (album / "broken.jpg").write_bytes(b"not a picture")
    html = tmp_path / "sub.html"
    argv = ["-q", "subclasses", "--model", str(random_model_dir), "--labels", "none",
            "--components", "1", "--map", "pca", "--html", str(html)]  # fmt: skip
    assert main([*argv, str(album)]) == 0
    cap = capsys.readouterr()
    assert "3 faces" in cap.out and html.is_file()
    err = cap.err.strip().splitlines()
    assert any("broken.jpg" in line for line in err) and err[-1].endswith(
        "1 of 4 files could not be read"
    ), err
    bad_only = tmp_path / "bad"
    bad_only.mkdir()
    (bad_only / "broken.jpg").write_bytes(b"not a picture")
    assert main([*argv, str(bad_only)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_identical_faces_are_not_split() -> None:
    """A class of copies of one face gets one sub-class (no more components than distinct
    faces), without sklearn's duplicate-point warnings; the three-blob class beside it still
    splits in three."""
    import warnings

    x, y, _ = _mixture(seed=3)
    copies = np.tile(x[:1], (40, 1))
    emb = np.vstack([x, copies])
    labels = np.concatenate([y, np.full(40, 2)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ConvergenceWarning would fail the test
        split = split_classes(emb, labels, n_components="bic", seed=0)
    assert split.n_components[2] == 1 and split.n_components[0] == 3


def test_component_bounds_below_one_are_refused() -> None:
    from exprsim.errors import ExprsimError

    emb, labels, _ = _mixture()
    for kwargs in ({"max_components": 0}, {"min_per_component": 0}, {"max_components": -3}):
        with pytest.raises(ExprsimError, match=">= 1"):
            split_classes(emb, labels, "bic", **kwargs)
    with pytest.raises(ExprsimError, match="top_k"):
        discover_subexpressions(emb, labels, top_k=0)


def test_bic_never_picks_a_component_smaller_than_min_per_component():
    from exprsim.apps.subclasses import split_classes

    rng = np.random.default_rng(0)
    for seed, n in ((0, 10), (1, 14), (2, 20)):
        # one blob with no sub-structure: BIC used to split off 1-2 face "sub-expressions"
        x = np.random.default_rng(seed).normal(size=(n, 16))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        split = split_classes(x, np.zeros(n, np.int64), min_per_component=5)
        sizes = np.bincount(split.labels)
        assert sizes.min() >= 5, (n, sizes)
    # two real groups still split
    a = rng.normal(size=(12, 16)) * 0.05 + np.eye(16)[0]
    b = rng.normal(size=(12, 16)) * 0.05 + np.eye(16)[1]
    split = split_classes(np.vstack([a, b]), np.zeros(24, np.int64), min_per_component=5)
    assert sorted(np.bincount(split.labels).tolist()) == [12, 12]
