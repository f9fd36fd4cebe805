"""The CLI end to end on the bundled samples: real face pipeline, random-weight model."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from exprsim.cli import main
from exprsim.samples import sample_dir, sample_path


@pytest.fixture(scope="module")
def album(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("album")
    for name in ("grace_hopper.jpg", "astronaut_eileen_collins.jpg", "pexels_langer_frame000.jpg",
                 "pexels_langer_frame144.jpg", "pexels_langer_frame288.jpg"):  # fmt: skip
        shutil.copy(sample_path(name), out / name)
    return out


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    rc = main(["-q", *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def assert_self_contained(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and not re.search(r"https?://", text)
    assert all(s.startswith("data:image/") for s in re.findall(r'src="([^"]*)"', text))


@pytest.mark.slow
def test_index_search_summarize_tag(
    album: Path, random_model_dir: Path, tmp_path: Path, capsys
) -> None:
    db = str(tmp_path / "faces.db")
    model = ["--model", str(random_model_dir)]
    rc, out, _ = run(capsys, "index", "add", str(album), "--db", db, *model)
    assert rc == 0 and "5 files added" in out
    rc, out, _ = run(capsys, "index", "add", str(album), "--db", db, *model)
    assert rc == 0 and "5 skipped" in out
    rc, out, _ = run(capsys, "index", "info", "--db", db, "--json")
    info = json.loads(out)
    assert info["files"] == 5 and info["faces"] >= 5 and info["model"] == "exprnet_s@test"
    assert info["ann_fresh"] is True

    html = tmp_path / "search.html"
    q = str(album / "pexels_langer_frame000.jpg")
    rc, out, _ = run(capsys, "search", q, "--db", db, "-k", "3", "--html", str(html), *model,
                     "--out", str(tmp_path / "hits.csv"))  # fmt: skip
    assert rc == 0 and html.is_file() and "frame000" not in out.split("report:")[0]
    assert len(out.strip().splitlines()) == 1 + 3 + 1  # header, 3 hits, report line
    assert_self_contained(html)

    html = tmp_path / "summary.html"
    rc, out, _ = run(
        capsys, "summarize", str(album), "-n", "3", "--method", "ward", "--html", str(html), *model
    )
    assert rc == 0 and out.count("cluster ") == 3
    assert_self_contained(html)

    rc, out, _ = run(
        capsys, "tag", "add", "mine", str(album / "grace_hopper.jpg"), "--db", db, *model
    )
    assert rc == 0
    rc, out, _ = run(capsys, "tag", "list", "--db", db)
    assert "mine" in out
    html = tmp_path / "tags.html"
    rc, out, _ = run(
        capsys, "tag", str(album / "grace_hopper.jpg"), "--db", db, "--html", str(html), *model
    )
    assert rc == 0 and "mine" in out  # a face is at distance 0 from its own reference
    assert_self_contained(html)

    rc, out, _ = run(capsys, "index", "remove", str(album / "grace_hopper.jpg"), "--db", db)
    assert rc == 0 and "removed 1 file" in out


def test_classify_cli(album: Path, random_model_dir: Path, tmp_path: Path, capsys) -> None:
    from exprsim.apps.classify import ReferenceSet
    from exprsim.data.fer import FERPLUS_CLASSES

    rng = np.random.default_rng(0)
    emb = rng.standard_normal((50, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ref = tmp_path / "ref.npz"
    ReferenceSet(emb, rng.integers(0, 8, 50), FERPLUS_CLASSES, "exprnet_s@test", 7).save(ref)
    rc, out, _ = run(capsys, "classify", str(album / "grace_hopper.jpg"), "--reference", str(ref),
                     "--model", str(random_model_dir), "--json", str(tmp_path / "c.json"))  # fmt: skip
    assert rc == 0 and json.loads((tmp_path / "c.json").read_text())["k"] == 7
    assert any(c in out for c in FERPLUS_CLASSES)
    rc, _, err = run(capsys, "classify", "--model", str(random_model_dir))
    assert rc == 2 and "exactly one" in err


def test_cli_errors(tmp_path: Path, random_model_dir: Path, capsys) -> None:
    rc, _, err = run(capsys, "index", "info", "--db", str(tmp_path / "none.db"))
    assert rc == 2 and "no such database" in err
    rc, _, err = run(capsys, "search", str(sample_dir() / "grace_hopper.jpg"), "--db", str(tmp_path / "none.db"),
                     "--model", str(random_model_dir))  # fmt: skip
    assert rc == 2 and "no such database" in err
    rc, _, err = run(capsys, "tag", "add", "x", "--db", str(tmp_path / "t.db"))
    assert rc == 2 and "usage: exprsim tag add" in err
    rc, _, err = run(capsys, "index", "add", str(tmp_path), "--db", str(tmp_path / "t.db"))
    assert rc == 2 and "no image files" in err


def test_option_values_out_of_range_are_usage_errors(tmp_path: Path, capsys) -> None:
    """Checked by argparse before any work: exit 2 and one usage line, no traceback."""
    photo = str(sample_dir() / "grace_hopper.jpg")
    db = str(tmp_path / "none.db")
    bad = [
        ("search", photo, "--db", db, "--max-yaw", "-1"),
        ("search", photo, "--db", db, "--min-sharpness", "nan"),
        ("search", photo, "--db", db, "--face", "-1"),
        ("tag", "add", "smile", photo, "--db", db, "--face", "-1"),
        ("faces", photo, "--size", "100000"),
        ("serve", "--db", db, "--port", "70000"),
        ("subclasses", str(tmp_path), "--max-components", "0"),
        ("subclasses", str(tmp_path), "--min-per-component", "0"),
        ("subclasses", str(tmp_path), "--top", "-1"),
        ("subclasses", "--fer", "PublicTest", "--max-faces", "-1"),
        ("classify", "--build-reference", "--max-faces", "-1"),
    ]
    for argv in bad:
        with pytest.raises(SystemExit) as info:
            main(["-q", *argv])
        err = capsys.readouterr().err
        assert info.value.code == 2, argv
        assert "Traceback" not in err and "must be" in err, (argv, err)


def test_read_only_commands_do_not_turn_files_into_databases(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "photo.jpg"
    empty.write_bytes(b"")
    rc, _, err = run(capsys, "index", "info", "--db", str(empty))
    assert rc == 2 and "empty file" in err and len(err.strip().splitlines()) == 1
    assert empty.stat().st_size == 0


def test_evaluate_refuses_an_unwritable_json_before_working(tmp_path: Path, capsys) -> None:
    rc, _, err = run(capsys, "evaluate", "--json", str(tmp_path / "no" / "such" / "r.json"))
    assert rc == 2 and "cannot write" in err and len(err.strip().splitlines()) == 1
    rc, _, err = run(capsys, "evaluate", "--fec-crops", str(tmp_path))
    assert rc == 2 and "--fec-test" in err
