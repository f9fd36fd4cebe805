"""FER2013 + FER+ loader: rules on a tiny synthetic CSV trio, and the real files (``data``)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from exprsim.data.fer import (
    FERPLUS_CLASSES,
    default_data_dir,
    load_fer_table,
    load_ferplus,
    pixel_hashes,
)
from exprsim.errors import DataError

# (usage, emotion, pixel value, votes[10], provenance)
ROWS = [
    ("Training", 3, 10, [0, 9, 1, 0, 0, 0, 0, 0, 0, 0], "png_exact"),  # kept
    ("Training", 6, 20, [6, 0, 0, 2, 0, 0, 0, 0, 2, 0], "png_exact"),  # kept (8 > 2)
    ("Training", 0, 30, [1, 0, 0, 0, 2, 0, 0, 0, 3, 4], "png_exact"),  # dropped: 3 <= 7 unknown/NF
    (
        "Training",
        4,
        40,
        [0, 0, 0, 7, 3, 0, 0, 0, 0, 0],
        "kaggle_jpg_unmatched",
    ),  # dropped: provenance
    (
        "Training",
        5,
        50,
        [0, 0, 10, 0, 0, 0, 0, 0, 0, 0],
        "png_exact",
    ),  # kept; duplicates a test row
    ("PublicTest", 5, 50, [0, 0, 8, 0, 0, 0, 2, 0, 0, 0], "png_exact"),
    ("PublicTest", 1, 60, [0, 0, 0, 0, 0, 5, 0, 5, 0, 0], "png_exact"),
]


def _write(folder: Path, gz: bool = False, rows: list = ROWS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fer = ["emotion,pixels,Usage"]
    new = ["Usage,Image name," + ",".join([*FERPLUS_CLASSES, "unknown", "NF"])]
    prov = ["row,Usage,pixel_source,ferplus_png,kaggle_jpg"]
    for r, (usage, emo, value, votes, source) in enumerate(rows):
        pixels = np.full(48 * 48, value, np.uint8)
        pixels[r] = 255 if value != 50 else pixels[r]  # distinct images, except the duplicate pair
        if value == 50:
            pixels[0] = 7
        fer.append(f"{emo},{' '.join(map(str, pixels))},{usage}")
        new.append(f"{usage},fer{r:07d}.png," + ",".join(map(str, votes)))
        prov.append(f"{r},{usage},{source},fer{r:07d}.png,x.jpg")
    for stem, lines in (("fer2013", fer), ("fer2013new", new), ("fer2013_provenance", prov)):
        text = "\n".join(lines) + "\n"
        if gz:
            with gzip.open(folder / f"{stem}.csv.gz", "wt") as f:
                f.write(text)
        else:
            (folder / f"{stem}.csv").write_text(text)
    return folder


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXPRSIM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("gz", [False, True])
def test_rules_on_synthetic_files(tmp_path: Path, cache: Path, gz: bool) -> None:
    folder = _write(tmp_path / "fer", gz=gz)
    train = load_ferplus("Training", data_dir=folder)
    assert train.rows.tolist() == [0, 1, 4]
    assert train.images.shape == (3, 48, 48) and train.images.dtype == np.uint8
    assert train.votes.shape == (3, 8)
    assert train.votes[1].tolist() == [6, 0, 0, 2, 0, 0, 0, 0]  # unknown/NF removed
    assert np.allclose(train.dist.sum(1), 1.0)
    assert train.dist[1, 0] == pytest.approx(0.75)
    assert train.majority.tolist() == [1, 0, 2]
    assert train.emotion.tolist() == [3, 6, 5]
    test = load_ferplus("PublicTest", data_dir=folder)
    assert test.rows.tolist() == [5, 6] and len(test) == 2
    assert test.majority.tolist() == [2, 5]  # tie 5/5 -> first class (disgust before contempt)
    dedup = load_ferplus("Training", data_dir=folder, drop_duplicates_of="PublicTest")
    assert dedup.rows.tolist() == [0, 1]
    assert train.subset(np.array([2])).rows.tolist() == [4]


def test_cache_written_and_reused(tmp_path: Path, cache: Path) -> None:
    folder = _write(tmp_path / "fer")
    first = load_fer_table(folder)
    files = list(cache.glob("fer-*.npz"))
    assert len(files) == 1
    again = load_fer_table(folder)
    assert np.array_equal(first.images, again.images) and np.array_equal(first.votes, again.votes)
    assert list(folder.iterdir())  # the data folder is only read
    assert not list(folder.glob("*.npz"))


def test_errors(tmp_path: Path, cache: Path) -> None:
    with pytest.raises(DataError, match="missing: no such folder"):
        load_fer_table(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no fer2013"):
        load_fer_table(tmp_path / "empty")
    folder = _write(tmp_path / "fer")
    with pytest.raises(DataError, match="unknown split"):
        load_ferplus("Validation", data_dir=folder)
    with pytest.raises(DataError, match="no usable"):
        load_ferplus("PrivateTest", data_dir=folder)
    bad = _write(tmp_path / "bad")
    lines = (bad / "fer2013new.csv").read_text().splitlines()
    (bad / "fer2013new.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match="rows"):
        load_fer_table(bad, cache=False)


def test_pixel_hashes() -> None:
    imgs = np.zeros((3, 48, 48), np.uint8)
    imgs[2, 0, 0] = 1
    h = pixel_hashes(imgs)
    assert h[0] == h[1] and h[0] != h[2]


def _real_dir() -> Path:
    folder = default_data_dir()
    if not any((folder / name).is_file() for name in ("fer2013.csv.gz", "fer2013.csv")):
        pytest.skip(f"FER data not found at {folder} (../shared/data/fer2013)")
    return folder


@pytest.mark.data
@pytest.mark.slow
def test_real_files() -> None:
    folder = _real_dir()
    table = load_fer_table(folder)
    assert table.images.shape == (32298, 48, 48)
    assert (table.usage == "Training").sum() == 28709 and (
        table.usage == "PublicTest"
    ).sum() == 3589
    train = load_ferplus("Training", data_dir=folder)
    test = load_ferplus("PublicTest", data_dir=folder)
    # measured: 28,490 usable Training and 3,569 usable PublicTest faces
    assert len(train) == 28490 and len(test) == 3569
    assert np.allclose(train.dist.sum(1), 1.0, atol=1e-5)
    counts = np.bincount(test.majority, minlength=8)
    assert counts.argmax() == 0 and counts[1] > counts[2]  # neutral, then happiness
    dedup = load_ferplus("Training", data_dir=folder, drop_duplicates_of="PublicTest")
    assert 300 <= len(train) - len(dedup) <= 400  # cross-split duplicates dropped
