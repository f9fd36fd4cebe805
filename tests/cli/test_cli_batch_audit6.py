"""Audit D (sixth round): batch commands that lost earlier outputs or finished work, demo
over a user's index, empty tables without a header, ignored options, SIGTERM. Each test
failed before its fix."""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from exprsim.cli import main
from exprsim.samples import sample_path

# the fast, deterministic stand-in embedder lives beside the index tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
from stub_embedder import StubEmbedder


def _imgs(folder: Path, n: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    names = ["grace_hopper.jpg", "astronaut_eileen_collins.jpg", "pexels_langer_frame000.jpg"]
    for name in names[:n]:
        shutil.copy(sample_path(name), folder / name)
    return folder


def test_table_writer_keeps_an_earlier_file_it_never_opened(tmp_path):
    from exprsim.io import TableWriter

    out = tmp_path / "faces.csv"
    out.write_text("source,face\nold.jpg,0\n")
    with pytest.raises(RuntimeError), TableWriter(out):  # fails before any row
        raise RuntimeError("no image files found")
    assert out.read_text() == "source,face\nold.jpg,0\n"  # was deleted


def test_streamed_tables_reach_the_disk_within_a_second(tmp_path, monkeypatch):
    import exprsim.io as io_mod

    clock = [100.0]
    monkeypatch.setattr(io_mod.time, "monotonic", lambda: clock[0])
    w = io_mod.TableWriter(tmp_path / "t.csv", chunk_rows=1000)
    w.write([{"a": 1}])
    assert not (tmp_path / "t.csv").exists()  # buffered
    clock[0] += 1.5
    w.write([{"a": 2}])  # a killed job now keeps both rows (it waited for 1,000)
    assert (tmp_path / "t.csv").read_text().splitlines() == ["a", "1", "2"]
    w.close()


def test_faces_keeps_an_earlier_table_when_every_input_fails(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"not an image")
    out = tmp_path / "f.csv"
    out.write_text("earlier\n")
    assert main(["-q", "faces", str(bad), "--out", str(out)]) == 1
    assert out.read_text() == "earlier\n"  # was replaced by an empty table
    assert "not written" in capsys.readouterr().err


def test_faces_writes_the_files_done_on_ctrl_c(tmp_path, capsys, monkeypatch):
    import exprsim.faces.stream as stream_mod

    real = stream_mod.analyze_stream

    def cut_after_first(*args, **kwargs):
        items = real(*args, **kwargs)
        yield next(items)
        raise KeyboardInterrupt

    monkeypatch.setattr(stream_mod, "analyze_stream", cut_after_first)
    out = tmp_path / "f.csv"
    rc = main(["-q", "faces", str(_imgs(tmp_path / "imgs")), "--out", str(out)])
    assert rc == 130
    import pandas as pd

    assert len(pd.read_csv(out)) == 1  # the first file's face (nothing was written before)
    assert "interrupted: 1 face of the files done saved" in capsys.readouterr().err


def test_faces_refuses_a_folder_as_out_before_the_work(tmp_path, capsys, monkeypatch):
    import exprsim.faces.pipeline as pipeline_mod

    monkeypatch.setattr(pipeline_mod, "analyze_files", lambda *a, **k: pytest.fail("worked"))
    (tmp_path / "out.csv").mkdir()
    rc = main(["-q", "faces", str(_imgs(tmp_path / "imgs")), "--out", str(tmp_path / "out.csv")])
    assert rc == 2 and "--out" in capsys.readouterr().err


def test_demo_never_replaces_an_index_of_other_photos(tmp_path, capsys):
    work = tmp_path / "work"
    _imgs(work / "photos", 1)
    assert main(["-q", "index", "add", str(work / "photos"), "--db", str(work / "faces.db")]) == 0
    before = (work / "faces.db").read_bytes()
    capsys.readouterr()
    assert main(["-q", "demo", "--out", str(work)]) == 2  # was: deleted, exit 0
    assert "holds an index of other photos" in capsys.readouterr().err
    assert (work / "faces.db").read_bytes() == before
    assert main(["-q", "demo", "--out", ""]) == 2  # blank: the working folder
    assert "blank" in capsys.readouterr().err


def test_demo_index_check_accepts_a_demo_index(tmp_path):
    from exprsim.demo import check_demo_index
    from exprsim.index.store import FaceIndex
    from exprsim.samples import sample_images

    db = tmp_path / "faces.db"
    check_demo_index(db)  # missing: fine
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(sample_images()[:2])
    check_demo_index(db)  # the demo's own photos: it may be replaced


def test_empty_classify_and_tag_tables_have_their_header():
    from exprsim.apps.classify import ClassificationResult
    from exprsim.apps.tag import TagResults

    frame = ClassificationResult((), "m@1", 5, ("neutral", "happiness")).to_frame()
    assert list(frame.columns) == [
        "source", "face", "label", "confidence", "quality_ok", "p_neutral", "p_happiness",
    ]  # fmt: skip
    assert list(TagResults().to_frame().columns) == [
        "source", "face", "tags", "best", "best_distance",
    ]  # fmt: skip


@pytest.mark.parametrize("extra", [["--ref-out", "x.npz"], ["--max-faces", "5"]])
def test_classify_options_of_build_reference_alone_are_refused(tmp_path, capsys, extra):
    img = str(_imgs(tmp_path / "imgs", 1) / "grace_hopper.jpg")
    assert main(["-q", "classify", img, *extra]) == 2  # was ignored, exit 0
    assert "is an option of --build-reference" in capsys.readouterr().err


def test_knn_warns_when_k_exceeds_the_faces(caplog):
    from exprsim.apps.classify import ExpressionKNN

    x = np.eye(4, 16, dtype=np.float32)
    knn = ExpressionKNN(k=10).fit(x, ["a", "a", "b", "b"])
    assert knn.k_ == 4 and "k = 10 is more than the 4 faces" in caplog.text


def test_sigterm_is_an_interruption_with_its_own_exit_code(monkeypatch, capsys):
    import exprsim.cli as cli

    before = signal.getsignal(signal.SIGTERM)
    try:
        cli._terminate_as_interrupt()
        with pytest.raises(cli.Terminated):
            signal.raise_signal(signal.SIGTERM)  # was: the process died, nothing saved
    finally:
        signal.signal(signal.SIGTERM, before)

    def terminated(args):
        raise cli.Terminated

    import exprsim.cli.faces_cmd as faces_cmd

    monkeypatch.setattr(faces_cmd, "cmd_detectors", terminated)
    assert cli.main(["detectors"]) == 143
    assert "exprsim detectors: terminated" in capsys.readouterr().err


def test_embed_keeps_an_earlier_table_when_it_fails_or_reads_nothing(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"not an image")
    (tmp_path / "empty").mkdir()
    out = tmp_path / "e.csv"
    for argv in (
        [str(tmp_path / "empty")],  # no image files: the file was deleted
        [str(bad)],  # every input failed: replaced by an empty table
        [str(_imgs(tmp_path / "imgs", 1)), "--detector", "nope"],  # deleted
    ):
        out.write_text("earlier\n")
        assert main(["-q", "embed", *argv, "-o", str(out)]) in (1, 2)
        assert out.read_text() == "earlier\n", argv


def test_embed_embeds_a_file_named_twice_once(tmp_path, capsys):
    import pandas as pd

    imgs = _imgs(tmp_path / "imgs", 2)
    out = tmp_path / "e.parquet"
    argv = [str(imgs), str(imgs / "grace_hopper.jpg"), str(tmp_path / "imgs" / ".")]
    assert main(["-q", "embed", *argv, "-o", str(out)]) == 0
    assert len(pd.read_parquet(out)) == 2  # was 5 rows, refused by index add --from-parquet


@pytest.mark.parametrize(
    "extra", [["--address", "ray://x:1"], ["--shard-size", "7"], ["--no-retry-failed"]]
)
def test_embed_refuses_ray_options_without_ray(tmp_path, capsys, extra):
    img = str(_imgs(tmp_path / "imgs", 1))
    assert main(["-q", "embed", img, "-o", str(tmp_path / "e.csv"), *extra]) == 2
    assert "options of --engine ray" in capsys.readouterr().err


def test_embed_refuses_a_folder_as_out_before_the_work(tmp_path, capsys):
    (tmp_path / "out.parquet").mkdir()
    img = str(_imgs(tmp_path / "imgs", 1))
    assert main(["-q", "embed", img, "-o", str(tmp_path / "out.parquet")]) == 2
    assert not (tmp_path / "out.parquet.partial").exists()  # was left after all the work


def test_embed_stream_hands_on_what_waited_when_interrupted(random_embedder, monkeypatch):
    """Faces waited for a full batch of 64: a Ctrl-C lost them all ("0 faces saved")."""
    import exprsim.faces.stream as stream_mod

    real = stream_mod.analyze_stream

    def two_then_ctrl_c(*args, **kwargs):
        items = real(*args, **kwargs)
        yield next(items)
        yield next(items)
        raise KeyboardInterrupt

    monkeypatch.setattr(stream_mod, "analyze_stream", two_then_ctrl_c)
    paths = [sample_path("grace_hopper.jpg"), sample_path("astronaut_eileen_collins.jpg")] * 2
    got = []
    with pytest.raises(KeyboardInterrupt):
        for item in random_embedder.embed_stream(paths, workers=1):
            got.append(item)
    assert [len(i.faces) for i in got] == [1, 1]  # both embedded before the interrupt


def test_embed_stream_does_not_hold_images_for_a_full_batch(random_embedder, monkeypatch):
    import exprsim.faces.stream as stream_mod
    import exprsim.models.embedder as emb_mod

    monkeypatch.setattr(emb_mod, "STREAM_WAIT_S", 0.0)  # every image has waited long enough
    real, analysed = stream_mod.analyze_stream, []

    def counted(*args, **kwargs):
        for item in real(*args, **kwargs):
            analysed.append(item.index)
            yield item

    monkeypatch.setattr(stream_mod, "analyze_stream", counted)
    stream = random_embedder.embed_stream([sample_path("grace_hopper.jpg")] * 3, workers=1)
    first = next(stream)
    assert first.index == 0 and len(first.faces) == 1
    assert analysed == [0]  # was [0, 1, 2]: held until 64 crops or the end
    assert [i.index for i in stream] == [1, 2]
