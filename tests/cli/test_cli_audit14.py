"""Fourteenth robustness round, command line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from exprsim.cli import main
from exprsim.samples import sample_path


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
