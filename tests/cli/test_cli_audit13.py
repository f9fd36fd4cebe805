"""Thirteenth robustness round, CLI side: what `index add`, `index remove` and `tag add`
say and record."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from cli_run import run, stub_cli_model
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
from stub_embedder import StubEmbedder, write_images


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> StubEmbedder:
    return stub_cli_model(monkeypatch, StubEmbedder())


def test_index_add_records_the_ann_asked_for_when_no_face_was_found(tmp_path, stub, capsys):
    """Audit: `index add --ann faiss-hnsw` of faceless files left the choice at auto."""
    pytest.importorskip("faiss")
    from exprsim.index.store import FaceIndex

    black = tmp_path / "black.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(black)  # the stub finds no face
    db = tmp_path / "f.db"
    rc, out, _ = run(capsys, "index", "add", str(black), "--db", str(db), "--ann", "faiss-hnsw")
    assert rc == 0 and "0 faces stored" in out
    with FaceIndex(db, create=False) as ix:
        assert ix.recorded_ann_backend == "faiss-hnsw"


def test_index_remove_names_the_paths_that_matched_nothing(tmp_path, stub, capsys):
    imgs = write_images(tmp_path / "p", 2)
    db = tmp_path / "f.db"
    assert run(capsys, "index", "add", *map(str, imgs), "--db", str(db))[0] == 0
    ghost = tmp_path / "p" / "ghost.png"
    rc, out, err = run(capsys, "index", "remove", str(imgs[0]), str(ghost), "--db", str(db))
    assert rc == 0 and "removed 1 file" in out
    assert "no indexed file (left) under" in err and str(ghost) in err and str(imgs[0]) not in err


def test_tag_add_of_a_faceless_photo_does_not_say_it_could_not_be_read(tmp_path, stub, capsys):
    """Audit: "1 of 1 files could not be read" for a photo that was read and has no face."""
    black = tmp_path / "black.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(black)
    rc, _, err = run(capsys, "tag", "add", "happy", str(black), "--db", str(tmp_path / "f.db"))
    assert rc == 1
    assert "could not be read" not in err and "1 of 1 file gave no reference face" in err


def test_index_add_prune_forgets_files_deleted_or_renamed_under_the_folders(tmp_path, stub, capsys):
    """Audit: files deleted or renamed on disk stayed in the index (and in searches) for
    good; a renamed photo came back as a second file."""
    from exprsim.index.store import FaceIndex

    imgs = write_images(tmp_path / "p", 3)
    other = write_images(tmp_path / "elsewhere", 1, seed=5)
    db = tmp_path / "f.db"
    assert run(capsys, "index", "add", str(tmp_path / "p"), str(other[0]), "--db", str(db))[0] == 0
    imgs[0].unlink()
    imgs[1].rename(imgs[1].with_name("renamed.png"))
    other[0].unlink()  # not under a folder given: kept
    rc, out, _ = run(capsys, "index", "add", str(tmp_path / "p"), "--db", str(db))
    assert rc == 0
    with FaceIndex(db, create=False) as ix:
        assert len(ix.files()) == 5  # without --prune: the gone files stay
    rc, out, _ = run(capsys, "index", "add", str(tmp_path / "p"), "--db", str(db), "--prune")
    assert rc == 0 and "forgot 2 files no longer there" in out
    with FaceIndex(db, create=False) as ix:
        kept = sorted(Path(p).name for p in ix.files()["path"])
        assert kept == ["img_0000.png", "img_0002.png", "renamed.png"] and len(ix) == 3
        # a folder that is not there names nothing (an offline share is not emptied)
        assert ix.missing_under([tmp_path / "offline", tmp_path / "elsewhere"]) == [
            str(other[0].resolve())
        ]


def test_a_ctrl_c_while_embed_writes_its_last_rows_loses_nothing(tmp_path, capsys, monkeypatch):
    """Audit: a Ctrl-C as the bar reached 100% (the table being finished) wrote no .json
    or .parquet at all, and left a .csv of 129 of 240 rows under the final name."""
    import signal

    import pandas as pd

    import exprsim.models.embedder as emb_mod
    from exprsim.io import TableWriter

    class Stub16(StubEmbedder):
        embedding_dim = 16

    monkeypatch.setattr(emb_mod, "load_model", lambda *a, **k: Stub16())
    real = TableWriter.close

    def close(self):
        if not self._closed:
            signal.raise_signal(signal.SIGINT)  # as the last rows are written
        return real(self)

    monkeypatch.setattr(TableWriter, "close", close)
    write_images(tmp_path / "imgs", 5)
    for suffix in (".json", ".parquet", ".csv"):
        out = tmp_path / f"e{suffix}"
        rc, _, err = run(capsys, "embed", str(tmp_path / "imgs"), "-o", str(out))
        assert rc == 130 and "interrupted while writing: 5 faces saved" in err
        frame = pd.read_json(out) if suffix == ".json" else (
            pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out))  # fmt: skip
        assert len(frame) == 5


@pytest.mark.parametrize("typo", ["ad", "Add", "lst", "remov"])
def test_a_mistyped_tag_action_is_refused_with_the_action(tmp_path, stub, capsys, typo):
    """Audit: `tag ad smile x.jpg` tagged the images `ad`, `smile` and `x.jpg`, exit 0."""
    (img,) = write_images(tmp_path / "p", 1)
    rc, _, err = run(capsys, "tag", typo, "smile", str(img), "--db", str(tmp_path / "f.db"))
    assert rc == 2 and "did you mean `exprsim tag" in err and len(err.strip().splitlines()) == 1


def test_tag_index_alone_retags_the_index(tmp_path, stub, capsys):
    imgs = write_images(tmp_path / "p", 2)
    db = tmp_path / "f.db"
    assert run(capsys, "index", "add", *map(str, imgs), "--db", str(db))[0] == 0
    assert run(capsys, "tag", "add", "happy", str(imgs[0]), "--db", str(db))[0] == 0
    rc, out, _ = run(capsys, "tag", "--index", "--db", str(db))
    assert rc == 0 and "tagged 1 indexed face" in out  # the reference's own face at least


def test_search_says_when_the_index_holds_no_face(tmp_path, stub, capsys):
    from exprsim.index.store import FaceIndex

    (img,) = write_images(tmp_path / "p", 1)
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add([img])
        ix.remove([img])
    rc, _, err = run(capsys, "search", str(img), "--db", str(db))
    assert rc == 0 and "holds no faces yet" in err


def test_a_url_or_a_folder_given_as_one_image_is_named_as_such(tmp_path, stub, capsys):
    """Audit: `faces https://host/x.jpg` said "https:/host/x.jpg: no such file"; a folder
    as search's query "no such file", compare on a folder "needs at least two images"."""
    from exprsim.index.store import FaceIndex

    (img,) = write_images(tmp_path / "p", 1)
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add([img])
    url = "https://upload.example.org/x.jpg"
    rc, _, err = run(capsys, "search", url, "--db", str(db))
    assert rc == 2 and f"{url}: a URL: exprsim reads local files only" in err
    rc, _, err = run(capsys, "faces", url)
    assert rc == 1 and f"{url}: a URL" in err
    rc, _, err = run(capsys, "search", str(tmp_path / "p"), "--db", str(db))
    assert rc == 2 and "is a folder; the query is one image file" in err
    rc, _, err = run(capsys, "compare", str(tmp_path / "p"))
    assert rc == 2 and "is a folder; compare takes image files" in err


def test_a_video_given_to_an_image_command_says_so(capsys):
    from exprsim.errors import ImageError
    from exprsim.io import load_image
    from exprsim.samples import sample_dir

    with pytest.raises(ImageError, match=r"a video, not an image \(exprsim video"):
        load_image(sample_dir() / "langer_clip.mp4")


def test_serve_refuses_a_db_in_a_missing_folder(tmp_path, capsys, monkeypatch):
    """Audit: `serve --db typo/faces.db` made the folder and a new, empty index."""
    pytest.importorskip("uvicorn")
    import exprsim.cli.serve_cmd as serve_cmd

    def never(*a, **k):
        raise AssertionError("the server started")

    monkeypatch.setattr(serve_cmd, "_run_server", never)
    rc, _, err = run(capsys, "serve", "--db", str(tmp_path / "typo" / "faces.db"), "--port", "0")
    assert rc == 2 and "--db" in err and not (tmp_path / "typo").exists()


class _StopAfter(StubEmbedder):
    """The stub, embedding one face at a time (``iter_faces``), with a Ctrl-C after
    ``stop`` images."""

    embedding_dim = 16

    def __init__(self, stop: int) -> None:
        super().__init__()
        self.stop = stop

    def iter_faces(self, images, detector=None, progress=False, failures=None, workers=None):
        import signal

        for n, item in enumerate(self.embed_stream(images, detector)):
            if n == self.stop:
                signal.raise_signal(signal.SIGINT)
            yield from item.faces


def test_an_interrupted_classify_keeps_the_faces_done(tmp_path):
    """Audit: `classify` had embedded all 240 faces when a Ctrl-C came, and wrote nothing."""
    from exprsim.apps.classify import ReferenceSet, classify_images

    imgs = write_images(tmp_path / "p", 5)
    ref = ReferenceSet(np.eye(16, dtype=np.float32)[:4], np.array([0, 1, 0, 1]), ("a", "b"),
                       "stub@1", 3, {})  # fmt: skip
    result = classify_images(imgs, _StopAfter(2), ref, keep_on_interrupt=True)
    assert result.interrupted and len(result.faces) == 2
    with pytest.raises(KeyboardInterrupt):  # as before without the option
        classify_images(imgs, _StopAfter(2), ref)


def test_an_interrupted_tag_saves_the_faces_done(tmp_path, monkeypatch, capsys):
    import pandas as pd

    imgs = write_images(tmp_path / "p", 5)
    db = tmp_path / "f.db"
    stub_cli_model(monkeypatch, StubEmbedder())
    assert run(capsys, "tag", "add", "happy", str(imgs[0]), "--db", str(db))[0] == 0
    stub_cli_model(monkeypatch, _StopAfter(3))
    out = tmp_path / "t.csv"
    rc, _, err = run(capsys, "tag", *map(str, imgs), "--db", str(db), "-o", str(out))
    assert rc == 130 and f"exprsim tag: interrupted: 3 faces of the images done -> {out}" in err
    assert len(pd.read_csv(out)) == 3


def test_index_info_failed_lists_the_files_that_could_not_be_read(tmp_path, stub, capsys):
    """Audit: `index info` counted failed files, and no command said which."""
    import json as _json

    imgs = write_images(tmp_path / "p", 1)
    bad = tmp_path / "p" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    db = tmp_path / "f.db"
    run(capsys, "index", "add", str(tmp_path / "p"), "--db", str(db))
    rc, out, _ = run(capsys, "index", "info", "--db", str(db), "--failed")
    assert rc == 0 and f"failed: {bad.resolve()}: " in out and str(imgs[0]) not in out
    rc, out, _ = run(capsys, "index", "info", "--db", str(db), "--failed", "--json")
    doc = _json.loads(out)
    assert rc == 0 and [f["path"] for f in doc["failed"]] == [str(bad.resolve())]
    assert "failed" not in _json.loads(run(capsys, "index", "info", "--db", str(db), "--json")[1])
