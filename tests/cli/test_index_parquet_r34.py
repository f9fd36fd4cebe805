"""Round 34: ``index add --from-parquet`` ignored ``--model`` without a word (a missing
model folder loaded everything, exit 0), and a table without a ``model`` column could not
be loaded from the command line at all (the message said "pass model='name@version'")."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from cli_run import one_line, run

from exprsim.index.store import FaceIndex
from exprsim.models.embedder import _weights_dir, load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
from test_bulk import embed_table


@pytest.fixture
def table(tmp_path: Path) -> Path:
    """A bulk-load table of 3 faces without a ``model`` column."""
    path = tmp_path / "e.parquet"
    embed_table(3).drop(columns=["model"]).to_parquet(path)
    return path


def test_a_table_without_a_model_takes_the_model_given(
    tmp_path: Path, table: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, model = str(tmp_path / "f.db"), str(_weights_dir("default"))
    rc, _, err = run(capsys, "index", "add", "--from-parquet", str(table), "--db", db)
    assert rc != 0 and "--model" in one_line(err)  # was: "pass model='name@version'" only
    rc, _, err = run(
        capsys, "index", "add", "--from-parquet", str(table), "--db", db, "--model", model
    )
    assert rc == 0, err
    with FaceIndex(db) as ix:
        assert len(ix) == 3 and ix.model == load_model(model).config.name_version


def test_a_model_that_is_not_there_is_refused(
    tmp_path: Path, table: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "f.db"
    argv = ["index", "add", "--from-parquet", str(table), "--db", str(db)]
    rc, _, err = run(capsys, *argv, "--model", str(tmp_path / "nonexistent"))
    assert rc != 0 and "nonexistent" in one_line(err)  # was: loaded, exit 0
    assert not db.exists()


def test_a_table_of_another_model_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "stub.parquet"
    embed_table(2).to_parquet(path)  # model "stub@1"
    db = str(tmp_path / "f.db")
    model = str(_weights_dir("default"))
    rc, _, err = run(
        capsys, "index", "add", "--from-parquet", str(path), "--db", db, "--model", model
    )
    assert rc != 0 and "holds embeddings of stub@1, not of exprnet" in one_line(err)


def test_model_default_named_explicitly_names_the_table_model(
    tmp_path: Path, table: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review: ``--model default`` was taken for no ``--model`` at all."""
    db = str(tmp_path / "f.db")
    argv = ["index", "add", "--from-parquet", str(table), "--db", db, "--model", "default"]
    rc, _, err = run(capsys, *argv)
    assert rc == 0, err
    with FaceIndex(db) as ix:
        assert ix.model == load_model("default").config.name_version
