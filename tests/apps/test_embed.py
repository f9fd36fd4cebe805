"""embed: one row per face in the shared per-face schema, every table format, the CLI."""

from __future__ import annotations

import hashlib
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from stub_embedder import grid_embedding, write_images

from exprsim.apps.embed import embed_files
from exprsim.cli import main
from exprsim.errors import ExprsimError
from exprsim.faces.pipeline import FACE_COLUMNS
from exprsim.io import load_image
from exprsim.samples import sample_path


def test_rows_schema_and_errors(stub, tmp_path) -> None:
    paths = write_images(tmp_path / "imgs", 3)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not a png")
    seen = []
    table = embed_files([tmp_path / "imgs"], stub, on_error=lambda f, e: seen.append(f))
    assert table.files == 4 and len(table.rows) == 3
    assert len(table.errors) == 1 and seen and seen[0].endswith("broken.png")
    frame = table.to_frame()
    emb_cols = [f"e{i}" for i in range(16)]
    assert list(frame.columns) == [*FACE_COLUMNS, "model", *emb_cols, "size", "mtime_ns", "sha256"]
    assert frame["size"].tolist() == [p.stat().st_size for p in paths]
    assert frame["sha256"].tolist() == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert not {"file", "ok"} & set(frame.columns)
    assert frame["model"].unique().tolist() == ["stub@1"]
    assert frame["source"].tolist() == [str(p) for p in paths]
    for p, (_, row) in zip(paths, frame.iterrows(), strict=True):
        # the stub's embedding, computed here from the pixels
        np.testing.assert_allclose(row[emb_cols].to_numpy(float), grid_embedding(load_image(p)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExprsimError, match="no image files"):
        embed_files([tmp_path / "empty"], stub)


def test_rows_can_stream_to_a_sink(stub, tmp_path) -> None:
    """With a sink, rows leave as each image is done and the table keeps only counts."""
    write_images(tmp_path / "imgs", 5)
    chunks: list[list[dict]] = []
    table = embed_files([tmp_path / "imgs"], stub, sink=chunks.append)
    assert table.rows == [] and table.n_faces == 5 and table.stats["seconds"] > 0
    assert [len(c) for c in chunks] == [1] * 5
    kept = embed_files([tmp_path / "imgs"], stub)
    assert [r for c in chunks for r in c] == kept.rows


def test_table_loads_into_an_index_with_landmarks(stub, tmp_path) -> None:
    """``embed`` -> Parquet -> ``FaceIndex.add_table``: the per-face columns survive."""
    from exprsim.index.store import FaceIndex

    write_images(tmp_path / "imgs", 2)
    table = embed_files([tmp_path / "imgs"], stub)
    out = table.save(tmp_path / "faces.parquet")
    with FaceIndex(tmp_path / "faces.db", embedder=stub) as index:
        report = index.add_table(pd.read_parquet(out))
        assert report.faces == 2
        rec = index.records()[0]
        assert rec.landmarks is not None and rec.landmarks.shape == (5, 2)
        assert rec.quality_ok and rec.box.tolist() == [0, 0, 32, 32]


@pytest.mark.slow
def test_embed_cli_formats_and_failures(random_model_dir, tmp_path, capsys) -> None:
    album = tmp_path / "album"
    album.mkdir()
    shutil.copy(sample_path("grace_hopper.jpg"), album / "grace.jpg")
    (album / "empty.jpg").write_bytes(b"")
    model = ["--model", str(random_model_dir)]
    for suffix in (".csv", ".parquet", ".jsonl", ".json"):
        out = tmp_path / f"faces{suffix}"
        assert main(["-q", "embed", str(album), "-o", str(out), *model]) == 0
        cap = capsys.readouterr()
        said = re.fullmatch(
            r"1 face from 1/2 images in ([\d.]+) s \(([\d.]+) faces/s\) -> (.*)", cap.out.strip()
        )
        assert said is not None and said[3] == str(out)  # time and faces/s, then the file
        assert cap.err.count("\n") == 1 and "empty.jpg" in cap.err
        if suffix == ".csv":
            frame = pd.read_csv(out)
        elif suffix == ".parquet":
            frame = pd.read_parquet(out)
        elif suffix == ".jsonl":
            frame = pd.read_json(out, lines=True)
        else:
            frame = pd.DataFrame(json.loads(out.read_text()))
        assert len(frame) == 1 and frame["source"].iloc[0].endswith("grace.jpg")
        assert frame["model"].iloc[0] == "exprnet_s@test"
        e = frame[[f"e{i}" for i in range(16)]].to_numpy(float)
        assert e.shape == (1, 16) and np.isfinite(e).all()
        assert list(frame.columns[: len(FACE_COLUMNS)]) == list(FACE_COLUMNS)
    assert main(["-q", "embed", str(album), "-o", str(tmp_path / "f.csv"), "--strict", *model]) == 1
    capsys.readouterr()
    assert main(["-q", "embed", str(album), "-o", str(tmp_path / "f.xlsx"), *model]) == 2
    assert "must end in .csv" in capsys.readouterr().err
