"""Audit 7, findings 2, 4, 6 and 7, and the duplicate rows of ``fec stats``: damaged crop
stores and databases, malformed URLs. Each test failed before its fix.

The crop stores are built without a server or a detector: a manifest recording the bundled
photos as fetched, and box-only alignment (``detector="none"``).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from exprsim.cli import main
from exprsim.data.fec import FaceBox, FecFace, TripletType, write_fec_csv
from exprsim.errors import DataError
from exprsim.fec.crops import CropConfig, CropStore, build_crops, face_key
from exprsim.fec.dataset import FecTripletDataset
from exprsim.fec.fetch import FetchConfig, fetch_fec, open_manifest

from .conftest import NAMES, SAMPLE_BOXES, FecServer, face, fetched_photos, row

BOX_ONLY = CropConfig(detector="none", shard_size=4)  # 6 faces: shards of 4 and 2


def _face(name: str) -> FecFace:
    return FecFace(f"http://photos.invalid/{name}", FaceBox(*SAMPLE_BOXES[name]))


def _fetched(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """``(csv, fetch folder, face keys)``: 2 strong triplets over 6 photos, recorded as
    fetched, cropped into shards of 4 and 2 faces."""
    faces = [_face(n) for n in NAMES[:6]]
    csv, data = fetched_photos(tmp_path)  # the same faces, in their measured boxes
    rep = build_crops(csv, data, config=BOX_ONLY, progress=False)
    assert rep.n_new == 6 and len(list((data / "crops").glob("shard-*.npy"))) == 2
    return csv, data, [face_key(f.url, f.box.as_tuple()) for f in faces]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["-q", *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


# --------------------------------------------------------------------------- 2. repair


@pytest.mark.parametrize("how", ["missing", "truncated", "garbage"])
def test_crop_again_repairs_a_missing_or_damaged_shard(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    csv, data, keys = _fetched(tmp_path)
    before = CropStore(data).get_keys(keys)
    shard = data / "crops" / "shard-00000.npy"
    if how == "missing":
        shard.unlink()
    elif how == "truncated":
        _truncate(shard)
    else:
        shard.write_bytes(b"\x93NUMPY junk" * 50)
    again = build_crops(csv, data, config=BOX_ONLY, progress=False)
    # was: "6 already there", n_new 0, and evaluation failed on the missing shard
    assert again.n_new == 4 and again.n_skipped == 2 and again.n_indexed == 6
    assert "shard-00000.npy" in caplog.text and "cropped again" in caplog.text
    np.testing.assert_array_equal(CropStore(data).get_keys(keys), before)


def test_faces_indexed_in_no_shard_are_cropped_again(tmp_path: Path) -> None:
    csv, data, keys = _fetched(tmp_path)
    with sqlite3.connect(data / "crops" / "index.sqlite") as conn:
        conn.execute("DELETE FROM shards WHERE id = 1")
    conn.close()
    again = build_crops(csv, data, config=BOX_ONLY, progress=False)
    assert again.n_new == 2 and again.n_indexed == 6  # was: counted as done, never cropped
    assert CropStore(data).get_keys(keys).shape == (6, 112, 112, 3)


# --------------------------------------------------------------------------- 6. damaged store


def test_a_truncated_shard_is_a_data_error_naming_it(
    tmp_path: Path, random_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv, data, _ = _fetched(tmp_path)
    _truncate(data / "crops" / "shard-00000.npy")
    # was: ValueError "mmap length is greater than file size" from np.load, a traceback
    with pytest.raises(DataError, match=r"shard-00000\.npy: crop shard truncated"):
        FecTripletDataset(csv, data)[0]
    rc, _, err = run(capsys, "evaluate", "--fec-test", str(csv), "--fec-crops", str(data),
                     "--model", str(random_model_dir))  # fmt: skip
    assert rc == 2 and "shard-00000.npy" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["{not json", "[1, 2]", '{"size": "big"}'])
def test_damaged_recorded_settings_are_a_data_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    csv, data, _ = _fetched(tmp_path)
    with sqlite3.connect(data / "crops" / "index.sqlite") as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'config'", (value,))
    conn.close()
    with pytest.raises(DataError, match="damaged crop store"):
        CropStore(data)  # was: JSONDecodeError, AttributeError or ValueError
    if value.startswith("{not"):
        with pytest.raises(DataError, match="damaged crop store"):
            build_crops(csv, data, config=BOX_ONLY, progress=False)
        rc, _, err = run(capsys, "fec", "crop", str(csv), "--data", str(data), "--detector", "none")
        assert rc == 2 and "damaged crop store" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- 7. named files


def test_a_damaged_manifest_or_crop_index_is_named(
    tmp_path: Path, random_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv, data, _ = _fetched(tmp_path)
    junk = np.random.default_rng(0).bytes(5000)
    index = data / "crops" / "index.sqlite"
    for f in index.parent.glob("index.sqlite-*"):  # WAL leftovers of the good index
        f.unlink()
    index.write_bytes(junk)
    # was: "exprsim fec: error: database: file is not a database", no file named
    rc, _, err = run(capsys, "fec", "crop", str(csv), "--data", str(data), "--detector", "none")
    assert rc == 2 and f"{index}: cannot use this FEC crop index" in err
    rc, _, err = run(capsys, "evaluate", "--fec-test", str(csv), "--fec-crops", str(data),
                     "--model", str(random_model_dir))  # fmt: skip
    assert rc == 2 and f"{index}: cannot use this FEC crop index" in err
    manifest = data / "manifest.sqlite"
    for f in data.glob("manifest.sqlite-*"):
        f.unlink()
    manifest.write_bytes(junk)
    rc, _, err = run(capsys, "fec", "crop", str(csv), "--data", str(data), "--detector", "none")
    assert rc == 2 and f"{manifest}: cannot use this FEC image manifest" in err
    assert "can be deleted" in err and len(err.strip().splitlines()) == 1


def test_a_file_given_as_a_folder_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv, data, _ = _fetched(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("hi\n")
    rc, _, err = run(capsys, "fec", "fetch", str(csv), "--out", str(afile))
    assert rc == 2 and f"--out {afile} exists and is not a folder" in err  # was "File exists"
    with pytest.raises(DataError, match="is a file, expected a fetch folder"):
        fetch_fec(csv, afile, progress=False)
    rc, _, err = run(capsys, "fec", "crop", str(csv), "--data", str(afile))
    assert rc == 2 and f"--data {afile} is a file" in err
    with pytest.raises(DataError, match="is a file, expected a crops folder"):
        build_crops(csv, data, afile, config=BOX_ONLY, progress=False)
    assert afile.read_text() == "hi\n"


# --------------------------------------------------------------------------- 4. bad URLs


def test_malformed_and_non_ascii_urls_do_not_stop_the_fetch(
    fec_server: FecServer, tmp_path: Path
) -> None:
    # the server answers the UTF-8 percent-encoded name of an IRI's path
    fec_server.images["caf%C3%A9.jpg"] = fec_server.images[NAMES[0]]
    iri = FecFace(fec_server.url("img/café.jpg"), FaceBox(*SAMPLE_BOXES[NAMES[0]]))
    bad = FecFace("http://[::1:1/x.jpg", FaceBox(0.1, 0.9, 0.1, 0.9))
    rows = [
        row(1, (iri, face(fec_server, NAMES[1]), face(fec_server, NAMES[2])), TripletType.ONE,
            "strong1"),
        row(2, (bad, face(fec_server, NAMES[3]), face(fec_server, NAMES[4])), TripletType.TWO,
            "strong2"),
    ]  # fmt: skip
    csv = write_fec_csv(rows, tmp_path / "fu.csv")
    cfg = FetchConfig(workers=2, retries=0, timeout=5.0)
    # was: UnicodeEncodeError (the IRI) or ValueError "Invalid IPv6 URL", a traceback that
    # stopped the run, on every rerun
    rep = fetch_fec(csv, tmp_path / "out", cfg, progress=False)
    assert rep.n_urls == 6 and rep.n_ok == 5 and rep.errors == {"bad_url": 1}
    with open_manifest(tmp_path / "out") as man:
        assert "malformed URL" in man.rows()[bad.url]["error"]
        assert iri.url in man.ok_paths()
    again = fetch_fec(csv, tmp_path / "out", cfg, progress=False)  # a rerun: nothing to redo
    assert again.n_attempted == 0 and again.n_skipped == 5


def test_request_url_encodes_iris_and_keeps_ascii_urls() -> None:
    from exprsim.fec.fetch import request_url

    assert request_url("http://a.example/x%20y.jpg?s=1") == "http://a.example/x%20y.jpg?s=1"
    assert request_url("http://Bücher.example:8080/ü b.jpg?q=ä") == (
        "http://xn--bcher-kva.example:8080/%C3%BC%20b.jpg?q=%C3%A4"
    )
    for bad in ("http://[::1:1/x.jpg", "http://a..b\u00e9/x.jpg"):
        with pytest.raises(ValueError):
            request_url(bad)


# --------------------------------------------------------------------------- noted: stats


def test_stats_counts_duplicate_rows_and_repeated_raters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    faces = [_face(n) for n in NAMES[:3]]
    one = row(1, (faces[0], faces[1], faces[2]), TripletType.ONE, "strong1")
    two = row(2, (faces[2], faces[1], faces[0]), TripletType.ONE, "strong2")
    csv = write_fec_csv([one, two, one, two, one], tmp_path / "dup.csv")
    rc, out, _ = run(capsys, "fec", "stats", str(csv))
    assert rc == 0 and "duplicate rows: 3" in out  # was: counted as 5 triplets, no word
    assert "more than once" not in out
    rc, out, _ = run(capsys, "fec", "stats", str(csv), "--json")
    doc = json.loads(out)
    assert doc["duplicate_rows"] == 3 and doc["repeated_raters"] == 0
    text = csv.read_text().splitlines()[0].split(",")
    text[18] = text[16]  # the second rater id is the first one again
    (tmp_path / "rater.csv").write_text(",".join(text) + "\n")
    rc, out, _ = run(capsys, "fec", "stats", str(tmp_path / "rater.csv"))
    assert "rows where one rater votes more than once: 1" in out
    assert "duplicate rows" not in out
