"""``embed --engine ray``, eighth audit: a folder of another model or detector is refused,
a damaged shard is embedded again, and shards of another input list are removed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from exprsim.errors import ExprsimError
from exprsim.scale.ray_embed import (
    _work,
    _write_failed_list,
    failed_list_path,
    shard_columns,
    shard_name,
    write_shard,
)

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "exprsim" / "samples"


def _row(columns: list[str], source: str) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(columns, 0.25)
    row.update(source=source, face=0, quality_ok=True, reasons="", detector="d", model="m@1")
    row.update(size=10, mtime_ns=20, sha256="ab")
    return row


def test_damaged_shard_is_embedded_again_whole(tmp_path: Path, caplog) -> None:
    """A truncated shard with a failure list: the whole shard is redone (was: only its
    unreadable images, merged into the damaged file, a Ray traceback); a truncated shard
    without one is redone too (was: "already done" for ever)."""
    columns = shard_columns(16)
    shards = [["a.jpg", "broken.jpg"], ["c.jpg", "d.jpg"]]
    names = [shard_name(i, s) for i, s in enumerate(shards)]
    for name, paths in zip(names, shards, strict=True):
        write_shard([_row(columns, paths[0])], tmp_path / name, columns)
    _write_failed_list(tmp_path / names[0], ["broken.jpg"])
    for name, size in zip(names, (100, 0), strict=True):
        with open(tmp_path / name, "r+b") as fh:
            fh.truncate(size)
    todo, retried = _work(tmp_path, names, shards, retry_failed=True)
    assert [t["name"] for t in todo] == names and not any(t["retry"] for t in todo)
    assert [json.loads(t["paths"]) for t in todo] == shards and retried == 0
    assert not failed_list_path(tmp_path / names[0]).exists()
    assert sum("damaged shard" in r.getMessage() for r in caplog.records) == 2


def test_stamp_refuses_another_model_or_detector(tmp_path: Path, random_model_dir) -> None:
    from exprsim.scale.ray_embed import STAMP_NAME, _check_stamp, _stamp

    _check_stamp(tmp_path, _stamp("default", None, 2))
    first = json.loads((tmp_path / STAMP_NAME).read_text())
    assert first["model"].startswith("exprnet") and "weights" in first["model"]
    _check_stamp(tmp_path, _stamp("default", None, 5))  # another shard size: fine
    for model, det in ((str(random_model_dir), None), ("default", "haar")):
        with pytest.raises(ExprsimError, match="use a new output folder, or delete it"):
            _check_stamp(tmp_path, _stamp(model, det, 2))


def test_stale_shards_removed_and_other_files_kept(tmp_path: Path) -> None:
    from exprsim.scale.ray_embed import _remove_stale_shards

    columns = shard_columns(16)
    keep, stale = shard_name(0, ["a.jpg"]), shard_name(0, ["b.jpg"])
    for name in (keep, stale):
        write_shard([_row(columns, "x.jpg")], tmp_path / name, columns)
    _write_failed_list(tmp_path / stale, ["b.jpg"])
    others = ["part-1.parquet", "_mine.json", "notes.txt"]
    for name in others:
        (tmp_path / name).write_text("x")
    _remove_stale_shards(tmp_path, [keep])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([keep, *others])


@pytest.mark.slow
def test_ray_reruns_model_damage_and_grown_list(tmp_path: Path, random_model_dir) -> None:
    """The audit's three reruns, end to end on a local Ray."""
    pytest.importorskip("ray", reason="Ray not installed: pip install 'exprsim[ray]'")
    from exprsim.scale.ray_embed import embed_with_ray

    album, out = tmp_path / "album", tmp_path / "shards"
    album.mkdir()
    for name in ("grace_hopper.jpg", "astronaut_eileen_collins.jpg", "pexels_langer_frame000.jpg"):
        (album / name).write_bytes((SAMPLES / name).read_bytes())
    kw = {"num_workers": 1, "shard_size": 2, "num_cpus": 2, "progress": False}
    first = embed_with_ray(album, out, **kw)
    table = pd.read_parquet(out)
    assert first.shards == 2 and len(table) == first.faces > 0
    # 1. another model into the same folder: refused before any work (was: "all done")
    with pytest.raises(ExprsimError, match="use a new output folder"):
        embed_with_ray(album, out, model=str(random_model_dir), **kw)
    # 2. a truncated shard: embedded again (was: skipped for ever)
    (shard,) = [p for p in sorted(out.glob("part-*.parquet")) if p.name.startswith("part-00000")]
    with open(shard, "r+b") as fh:
        fh.truncate(100)
    again = embed_with_ray(album, out, **kw)
    assert (again.shards, again.shards_skipped) == (2, 1)
    assert len(pd.read_parquet(out)) == len(table)
    # 3. a photo that sorts first: the old shards go (was: every face twice)
    (album / "aaa_new.jpg").write_bytes((SAMPLES / "grace_hopper.jpg").read_bytes())
    grown = embed_with_ray(album, out, **kw)
    both = pd.read_parquet(out)
    assert grown.shards == 2 and not both.duplicated(["source", "face"]).any()
    assert len(both) == len(table) + int((table.source.str.endswith("grace_hopper.jpg")).sum())
    assert len(list(out.glob("part-*.parquet"))) == 2
