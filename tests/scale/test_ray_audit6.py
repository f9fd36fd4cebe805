"""``embed --engine ray``, sixth audit: the output folder is one readable Parquet dataset
(failure lists under ``_`` names, typed empty shards), lists of the previous name are still
retried, and Ray's log lines are quiet unless ``-v``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from exprsim.scale.ray_embed import shard_name, write_shard

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "exprsim" / "samples"


def _row(columns: list[str], source: str) -> dict[str, object]:
    """A shard row of the types ``exprsim embed`` writes."""
    row: dict[str, object] = dict.fromkeys(columns, 0.25)
    row.update(source=source, face=0, quality_ok=True, reasons="", detector="d", model="m@1")
    row.update(size=10, mtime_ns=20, sha256="ab")
    return row


def test_failure_lists_are_skipped_by_dataset_readers(tmp_path: Path) -> None:
    """pandas/pyarrow read the shard folder as one dataset (was: "Parquet magic bytes not
    found in footer" on the ``.failed.json`` beside the shards)."""
    from exprsim.scale.ray_embed import _write_failed_list, failed_list_path, shard_columns

    columns = shard_columns(16)
    shards = [tmp_path / shard_name(i, [f"{i}.jpg"]) for i in range(2)]
    for i, shard in enumerate(shards):
        write_shard([_row(columns, f"{i}.jpg")], shard, columns)
    _write_failed_list(shards[1], ["broken.jpg"])
    listed = failed_list_path(shards[1])
    assert listed.name.startswith("_") and listed.name.endswith(".failed.json")
    assert json.loads(listed.read_text()) == ["broken.jpg"]
    table = pd.read_parquet(tmp_path)
    assert sorted(table["source"]) == ["0.jpg", "1.jpg"] and list(table.columns) == columns
    assert pq.read_table(tmp_path).num_rows == 2


def test_empty_shard_has_the_columns_and_types_of_the_others(tmp_path: Path) -> None:
    """A shard of faceless images: the table's columns, no rows (was: no columns at all),
    and the same Arrow schema as a shard with faces, whichever is read first."""
    from exprsim.scale.ray_embed import shard_columns

    columns = shard_columns(16)
    empty, full = tmp_path / "part-00000-a.parquet", tmp_path / "part-00001-b.parquet"
    write_shard([], empty, columns)
    write_shard([_row(columns, "x.jpg")], full, columns)
    assert list(pd.read_parquet(empty).columns) == columns and pd.read_parquet(empty).empty
    assert pq.read_schema(empty) == pq.read_schema(full)
    both = pd.read_parquet(tmp_path)
    assert len(both) == 1 and list(both.columns) == columns
    assert both["e0"].dtype == "float64" and both["face"].dtype == "int64"


def test_old_failure_list_name_still_retried_then_renamed(tmp_path: Path) -> None:
    """A folder written by the previous version (``part-...failed.json``): its list is
    still found for a retry, and replaced by the ``_`` name (or removed when all read)."""
    from exprsim.scale.ray_embed import (
        _merge_retry,
        _retry_list,
        _work,
        _write_failed_list,
        failed_list_path,
        shard_columns,
    )

    columns = shard_columns(16)
    paths = ["a.jpg", "broken.jpg"]
    name = shard_name(0, paths)
    shard = tmp_path / name
    write_shard([_row(columns, "a.jpg")], shard, columns)
    old = shard.with_name(name.removesuffix(".parquet") + ".failed.json")
    old.write_text(json.dumps(["broken.jpg"]))
    assert _retry_list(shard) == ["broken.jpg"]
    todo, retried = _work(tmp_path, [name], [paths], retry_failed=True)
    assert retried == 1 and todo[0]["retry"] and json.loads(todo[0]["paths"]) == ["broken.jpg"]
    _write_failed_list(shard, ["broken.jpg"])  # still unreadable: the list moves
    assert not old.exists() and failed_list_path(shard).exists()
    old.write_text(json.dumps(["broken.jpg"]))
    _merge_retry(shard, {"broken.jpg"}, [_row(columns, "broken.jpg")], [], columns)
    assert not old.exists() and not failed_list_path(shard).exists()  # all read: both gone
    assert sorted(pd.read_parquet(shard)["source"]) == ["a.jpg", "broken.jpg"]


def test_ray_log_level_follows_verbosity(caplog) -> None:
    from exprsim.scale.ray_embed import _ray_log_level

    caplog.set_level(logging.WARNING, logger="exprsim.scale.ray_embed")
    assert _ray_log_level() == logging.ERROR  # exprsim and exprsim -q
    caplog.set_level(logging.DEBUG, logger="exprsim.scale.ray_embed")
    assert _ray_log_level() == logging.INFO  # exprsim -v


@pytest.mark.slow
def test_ray_output_folder_reads_as_a_dataset(tmp_path: Path, capfd) -> None:
    """The audit's run: a shard of a faceless and an unreadable image, one of faces."""
    pytest.importorskip("ray", reason="Ray not installed: pip install 'exprsim[ray]'")
    import numpy as np
    from PIL import Image

    from exprsim.cli import main

    nf, imgs = tmp_path / "nf", tmp_path / "imgs"
    nf.mkdir()
    imgs.mkdir()
    Image.fromarray(np.full((200, 300, 3), 120, np.uint8)).save(nf / "noface.png")
    (nf / "a.jpg").write_bytes(b"junk\n")
    for name in ("grace_hopper.jpg", "astronaut_eileen_collins.jpg"):
        (imgs / name).write_bytes((SAMPLES / name).read_bytes())
    out = tmp_path / "rayout"
    argv = ["-q", "embed", "--engine", "ray", str(nf), str(imgs), "-o", str(out)]
    assert main([*argv, "--workers", "1", "--shard-size", "2"]) == 0
    err = capfd.readouterr().err
    shards = sorted(out.glob("part-*.parquet"))
    assert len(shards) == 2
    table = pd.read_parquet(out)  # was: ArrowInvalid on the .failed.json
    assert len(table) == 2 and set(table["source"].map(lambda s: Path(s).parent.name)) == {"imgs"}
    faceless = pd.read_parquet(shards[1])  # noface.png + a.jpg: no rows, the same columns
    assert faceless.empty and list(faceless.columns) == list(table.columns)
    (listed,) = out.glob("*.failed.json")
    assert listed.name.startswith("_part-00001-")
    assert json.loads(listed.read_text()) == [str(nf / "a.jpg")]
    # Ray's INFO lines are not shown under -q
    assert "Started a local Ray instance" not in err and "Execution plan" not in err, err
