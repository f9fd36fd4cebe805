"""Round 24 (docs/robustness.md): ``FaceIndex`` arguments the Python API took without a
word: text in a bulk table's number columns (stored, then every later read failed), a
string of tags read as its letters by ``retag``, one folder read as its characters by
``missing_under``, a ``k`` whose padding allocated terabytes, unchecked ``nearest_passing``
arguments and ``get`` chunks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from test_bulk import embed_table

from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex


@pytest.fixture
def index(tmp_path: Path):
    with FaceIndex(tmp_path / "faces.db") as ix:
        ix.add_table(embed_table(3))
        yield ix


@pytest.mark.parametrize(
    "column, value",
    [("sharpness", "x"), ("x1", "abc"), ("score", math.inf), ("face", 2.5), ("size", "x")],
)
def test_a_bulk_table_with_text_in_a_number_column_is_refused(
    tmp_path: Path, column: str, value: object
) -> None:
    table = embed_table(3, seed=1)
    table[column] = table[column].astype(object) if column in table else None
    table.loc[1, column] = value
    with FaceIndex(tmp_path / "t.db") as ix:
        with pytest.raises(ExprsimError, match=f"column {column} must hold"):
            ix.add_table(table)
        assert len(ix.records()) == 0  # nothing was loaded; reads still work


def test_a_bad_quality_flag_is_refused(tmp_path: Path) -> None:
    table = embed_table(2, seed=2)
    table["quality_ok"] = table["quality_ok"].astype(object)
    table.loc[0, "quality_ok"] = "no"  # was stored as True
    with FaceIndex(tmp_path / "q.db") as ix, pytest.raises(ExprsimError, match="quality_ok"):
        ix.add_table(table)


def test_retag_takes_a_string_as_one_tag(index: FaceIndex) -> None:
    fid = index.records()[0].id
    index.retag({fid: "happy"}, "happy")
    assert index.get([fid])[0].tags == ("happy",)  # was ('a', 'h', 'p', 'y')
    with pytest.raises(ExprsimError, match="tag name"):
        index.retag({fid: ["ok", ""]}, ["ok"])
    with pytest.raises(ExprsimError, match="mapping"):
        index.retag([fid], ["x"])


def test_missing_under_takes_one_folder_as_one(tmp_path: Path) -> None:
    from exprsim.samples import sample_path

    a, b = tmp_path / "A", tmp_path / "B"
    for folder in (a, b):
        folder.mkdir()
        (folder / "p.jpg").write_bytes(Path(sample_path("grace_hopper.jpg")).read_bytes())
    from stub_embedder import StubEmbedder

    with FaceIndex(tmp_path / "m.db", embedder=StubEmbedder()) as ix:
        ix.add([a, b])
        (b / "p.jpg").unlink()
        assert ix.missing_under(str(a)) == []  # was: B's file, through "/" of the string
        assert ix.missing_under(str(b)) == [str((b / "p.jpg").resolve())]


def test_a_huge_k_is_refused_not_allocated(index: FaceIndex) -> None:
    q = np.ones(16, np.float32) / 4
    _, ids = index.query(q, k=10)  # small padding: as documented
    assert ids.shape == (1, 10) and (ids[0, 3:] == -1).all()
    with pytest.raises(ExprsimError, match="ask for at most 3"):
        index.query(q, k=10**12)  # was: MemoryError, 3.6 TiB


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"k": -1}, "k must"),
        ({"k": 2.5}, "k must"),
        ({"k": None}, "k must"),
        ({"query": np.full(16, np.nan)}, "NaN"),
        ({"query": np.ones(8)}, r"\(Q, 16\)"),
        ({"query": np.ones((2, 16))}, "one"),
        ({"min_sharpness": "x"}, "min_sharpness"),
        ({"max_abs_yaw": math.nan}, "max_abs_yaw"),
    ],
)
def test_nearest_passing_checks_its_arguments(index: FaceIndex, kw: dict, match: str) -> None:
    args = {"query": np.ones(16, np.float32) / 4, "k": 2} | kw
    with pytest.raises(ExprsimError, match=match):
        index.nearest_passing(**args)


def test_get_refuses_a_chunk_that_is_not_positive(index: FaceIndex) -> None:
    ids = [r.id for r in index.records()]
    assert len(index.get(ids, chunk=1)) == 3
    for chunk in (0, -1):  # -1 answered [] without a word
        with pytest.raises(ExprsimError, match="chunk"):
            index.get(ids, chunk=chunk)
