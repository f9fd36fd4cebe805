"""Hostile inputs through the album commands and the index: one clear line per bad file,
good files still processed, no traceback (issue 13, "Found")."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from exprsim.cli import main
from exprsim.samples import sample_path

GOOD = ("grace_hopper.jpg", "astronaut_eileen_collins.jpg", "pexels_langer_frame000.jpg")


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    rc = main(["-q", *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.fixture(scope="module")
def mixed_album(tmp_path_factory) -> Path:
    """Three good photos and one truncated JPEG."""
    out = tmp_path_factory.mktemp("mixed")
    for name in GOOD:
        shutil.copy(sample_path(name), out / name)
    data = sample_path(GOOD[0]).read_bytes()
    (out / "truncated.jpg").write_bytes(data[: len(data) // 3])
    return out


@pytest.fixture(scope="module")
def faceless_album(tmp_path_factory) -> Path:
    from PIL import Image

    out = tmp_path_factory.mktemp("faceless")
    for i in range(3):
        Image.fromarray(np.full((120, 160, 3), 40 + 60 * i, np.uint8)).save(out / f"g{i}.png")
    return out


def test_summarize_without_faces_is_one_clear_line(faceless_album, random_model_dir, capsys):
    rc, _, err = run(capsys, "summarize", str(faceless_album), "--model", str(random_model_dir))
    assert rc == 2
    assert "no faces" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_summarize_of_nothing_raises_a_typed_error():
    from exprsim.apps.summarize import summarize
    from exprsim.errors import ExprsimError

    with pytest.raises(ExprsimError, match="no faces"):
        summarize([])


@pytest.mark.slow
def test_album_commands_skip_a_truncated_jpeg(mixed_album, random_model_dir, tmp_path, capsys):
    from exprsim.apps.classify import ReferenceSet
    from exprsim.data.fer import FERPLUS_CLASSES

    model = ("--model", str(random_model_dir))
    rc, out, err = run(capsys, "summarize", str(mixed_album), "-n", "2", *model,
                       "--out", str(tmp_path / "s.csv"))  # fmt: skip
    assert rc == 0, err
    assert "truncated.jpg" in err and "1 of 4 files could not be read" in err
    assert (tmp_path / "s.csv").is_file() and "cluster 1" in out

    rng = np.random.default_rng(0)
    emb = rng.standard_normal((50, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ref = tmp_path / "ref.npz"
    ReferenceSet(emb, rng.integers(0, 8, 50), FERPLUS_CLASSES, "exprnet_s@test", 7).save(ref)
    rc, out, err = run(capsys, "classify", str(mixed_album), "--reference", str(ref), *model)
    assert rc == 0 and "truncated.jpg" in err
    assert all(name in out for name in GOOD)

    db = str(tmp_path / "t.db")
    rc, _, err = run(capsys, "tag", "add", "smile", str(mixed_album / GOOD[0]), "--db", db, *model)
    assert rc == 0, err
    rc, out, _ = run(capsys, "tag", "add", "smile", str(mixed_album / GOOD[0]), "--db", db, *model)
    assert rc == 0 and "already a reference" in out
    rc, out, _ = run(capsys, "tag", "list", "--db", db)
    assert out.count("smile") == 1  # the same reference twice is stored once
    rc, out, err = run(capsys, "tag", str(mixed_album), "--db", db, *model)
    assert rc == 0 and "truncated.jpg" in err and GOOD[1] in out


def test_every_input_failing_is_a_failure(tmp_path, random_model_dir, capsys):
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8\xff not really")
    (tmp_path / "b.png").write_bytes(b"")
    rc, _, err = run(capsys, "summarize", str(tmp_path), "--model", str(random_model_dir))
    assert rc != 0 and "a.jpg" in err and "b.png" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("faces", ".", "--size", "0"), "argument --size: must be >= 8"),
        (("faces", ".", "--size", "x"), "argument --size: expected an integer"),
        (("summarize", ".", "-n", "0"), "must be >= 1"),
        (("search", "q.jpg", "--db", "x.db", "-k", "-3"), "must be >= 1"),
        (
            ("video", "v.mp4", "--out", "o", "--fps", "0"),
            "argument --fps: must be in [0.0001, 1000.0]",
        ),
        (("video", "v.mp4", "--out", "o", "--fps", "nan"), "argument --fps"),
        (("tag", "x.jpg", "--threshold", "-1"), "argument --threshold"),
    ],
)
def test_out_of_range_options_are_one_usage_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and "Traceback" not in err


def test_video_out_is_checked_before_any_decoding(tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"never decoded")
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")
    t0 = time.perf_counter()
    rc, _, err = run(capsys, "video", str(clip), "--out", str(taken))
    assert rc == 2 and "exists and is not a folder" in err
    rc, _, err = run(capsys, "video", str(clip), "--out", str(taken / "sub"))
    assert rc == 2 and "is not a folder" in err
    assert time.perf_counter() - t0 < 5  # no model load, no decoding


def test_index_rerun_hints_at_retry_failed(tmp_path, stub):
    from exprsim.index.store import FaceIndex

    bad = tmp_path / "imgs"
    bad.mkdir()
    (bad / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 garbage")
    with FaceIndex(tmp_path / "x.db", embedder=stub) as index:
        first = index.add([bad])
        assert first.count("failed") == 1 and "retry-failed" not in first.summary()
        second = index.add([bad])
        assert second.count("skipped") == 1 and second.failed_before == 1
        assert "--retry-failed" in second.summary()
        third = index.add([bad], retry_failed=True)
        assert third.count("failed") == 1


def test_a_second_writer_waits_for_the_first(tmp_path, stub):
    """Two adds on one database: the second blocks on the writer lock, then skips what the
    first stored (no double work, correct counts)."""
    from exprsim.index.store import FaceIndex

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    shutil.copy(sample_path(GOOD[0]), imgs / GOOD[0])
    db = tmp_path / "x.db"
    reports = {}

    def second_writer() -> None:  # its own connection, in its own thread
        with FaceIndex(db, embedder=stub) as second:
            reports["b"] = second.add([imgs])

    with FaceIndex(db, embedder=stub) as first, first._writer_lock():
        worker = threading.Thread(target=second_writer)
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive()  # waiting for the lock
        reports["a"] = first._add_one(imgs / GOOD[0], stub, stub.config.name_version, None, False)
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert reports["a"].status == "added"
    assert reports["b"].count("skipped") == 1 and reports["b"].count("added") == 0


@pytest.mark.slow
def test_unwritable_output_is_one_line(mixed_album, random_model_dir, capsys):
    rc, _, err = run(capsys, "summarize", str(mixed_album / GOOD[0]), "--model",
                     str(random_model_dir), "--out", "/nonexistent-exprsim-dir/s.csv")  # fmt: skip
    assert rc == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [
        "exprsim summarize: error: --out /nonexistent-exprsim-dir/s.csv: "
        "cannot write it (folder /nonexistent-exprsim-dir does not exist)"
    ]  # refused before any work


def test_tag_add_goes_past_a_faceless_image(
    faceless_album, mixed_album, random_model_dir, tmp_path, capsys
):
    """``tag add NAME good faceless good``: both good faces are added and the faceless one
    reported (it used to stop at the faceless image with the first face already stored)."""
    db = str(tmp_path / "t.db")
    model = ("--model", str(random_model_dir))
    images = [
        str(mixed_album / GOOD[0]),
        str(faceless_album / "g0.png"),
        str(mixed_album / GOOD[1]),
    ]
    rc, out, err = run(capsys, "tag", "add", "smile", *images, "--db", db, *model)
    assert rc == 0, err  # good faces were stored, so the job succeeds
    assert "g0.png" in err and "1 of 3" in err and "Traceback" not in err
    assert out.count("added a reference face") == 2
    rc, out, _ = run(capsys, "tag", "list", "--db", db)
    assert out.count("smile") == 2 and GOOD[1] in out

    rc, _, err = run(
        capsys, "tag", "add", "frown", str(faceless_album / "g1.png"), "--db", db, *model
    )
    assert rc == 1 and "g1.png" in err  # nothing added: a failure
