"""Distributed embedding on Ray: same rows as the local path, resumable shards; input listing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from exprsim.scale.ray_embed import embed_rows, list_inputs, shard_name

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "exprsim" / "samples"


def test_list_inputs(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    for name in ("x.jpg", "y.png", "notes.txt"):
        (tmp_path / "a" / name).write_bytes(b"")
    pd.DataFrame({"path": ["/p/2.jpg", "/p/1.jpg"]}).to_csv(tmp_path / "list.csv", index=False)
    pd.DataFrame({"source": ["s3://bucket/3.jpg"]}).to_parquet(tmp_path / "list.parquet")
    got = list_inputs(
        [
            tmp_path / "a",
            str(tmp_path / "a" / "*.png"),
            tmp_path / "list.csv",
            tmp_path / "list.parquet",
        ]
    )
    assert got == sorted(
        {str(tmp_path / "a" / "x.jpg"), str(tmp_path / "a" / "y.png"), "/p/1.jpg", "/p/2.jpg",
         "s3://bucket/3.jpg"}
    )  # fmt: skip
    assert shard_name(3, ["a"]) != shard_name(3, ["b"]) and shard_name(3, ["a"]).startswith(
        "part-00003-"
    )


@pytest.mark.slow
def test_ray_matches_local_and_resumes(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="Ray not installed: pip install 'exprsim[ray]'")
    from exprsim.apps.embed import embed_files
    from exprsim.models.embedder import load_model
    from exprsim.scale.ray_embed import embed_with_ray

    album = tmp_path / "album"  # copies: the test damages one later
    album.mkdir()
    images = []
    for src in sorted(SAMPLES.glob("*.jpg"))[:5]:
        images.append(album / src.name)
        images[-1].write_bytes(src.read_bytes())
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    inputs = [*map(str, images), str(bad)]
    table = embed_files(sorted(inputs), embedder=load_model("default"))  # the local path
    local = pd.DataFrame(table.rows).sort_values(["source", "face"]).reset_index(drop=True)
    assert len(table.errors) == 1 and len(local) >= 3
    errors: list[str] = []
    rows, failed = embed_rows(load_model("default"), [str(bad), str(images[0])], errors=errors)
    assert failed == 1 and rows and rows[0]["source"] == str(images[0])
    assert len(errors) == 1 and errors[0].startswith(str(bad))

    out = tmp_path / "shards"
    rep = embed_with_ray(inputs, out, num_workers=2, shard_size=2, num_cpus=2, progress=False)
    assert (rep.shards, rep.shards_skipped, rep.faces, rep.failed) == (3, 0, len(local), 1)
    assert len(rep.errors) == 1 and "broken.jpg" in rep.errors[0]  # the CLI prints these
    files = sorted(out.glob("*.parquet"))
    assert len(files) == 3
    ray_df = pd.concat([pd.read_parquet(f) for f in files if pd.read_parquet(f).shape[1]])
    ray_df = ray_df.sort_values(["source", "face"]).reset_index(drop=True)
    assert list(ray_df.columns) == list(local.columns)
    assert ray_df["source"].tolist() == local["source"].tolist()
    emb = [f"e{i}" for i in range(16)]
    np.testing.assert_allclose(ray_df[emb].to_numpy(), local[emb].to_numpy(), atol=1e-4)

    failed_lists = sorted(out.glob("*.failed.json"))  # the shard holding broken.jpg
    assert [json.loads(f.read_text()) for f in failed_lists] == [[str(bad)]]
    kw = {"num_workers": 1, "shard_size": 2, "num_cpus": 2, "progress": False}
    skip = embed_with_ray(inputs, out, retry_failed=False, **kw)
    assert (skip.shards_skipped, skip.images) == (3, 0)  # nothing redone
    again = embed_with_ray(inputs, out, **kw)  # only the unreadable image is tried again
    assert (again.shards_skipped, again.shards_retried, again.images, again.failed) == (2, 1, 1, 1)
    ordered = list_inputs(inputs)
    pair = ordered[ordered.index(str(bad)) // 2 * 2 :][:2]  # the shard holding broken.jpg
    (partner,) = [Path(p) for p in pair if p != str(bad)]
    shard = out / shard_name(ordered.index(str(bad)) // 2, pair)
    n_partner = len(pd.read_parquet(shard))
    assert n_partner == int((local.source == str(partner)).sum()) > 0
    saved = partner.read_bytes()
    partner.write_bytes(b"gone")  # unreadable now: the rows it gave stay (were: lost)
    bad.write_bytes(images[0].read_bytes())  # fixed: its faces now join the shard
    fixed = embed_with_ray(inputs, out, **kw)
    n_first = int((local.source == str(images[0])).sum())
    assert (fixed.shards_retried, fixed.images, fixed.failed, fixed.faces) == (1, 1, 0, n_first)
    assert len(pd.read_parquet(shard)) == n_partner + n_first
    assert not list(out.glob("*.failed.json"))
    partner.write_bytes(saved)
    files[0].unlink()  # "killed" before that shard finished: only it is redone
    third = embed_with_ray(inputs, out, **kw)
    assert (third.shards_skipped, third.images) == (2, 2)
    assert sorted(out.glob("*.parquet")) == files
    assert len(pd.concat(pd.read_parquet(f) for f in files)) == len(local) + n_first


def test_ray_cli_names_each_unreadable_image(tmp_path: Path, capsys) -> None:
    """`embed --engine ray` prints one line per unreadable image, as the local engine does."""
    pytest.importorskip("ray", reason="Ray not installed: pip install 'exprsim[ray]'")
    from exprsim.cli import main

    album = tmp_path / "album"
    album.mkdir()
    (album / "good.jpg").write_bytes((SAMPLES / "grace_hopper.jpg").read_bytes())
    (album / "broken.jpg").write_bytes(b"not an image")
    rc = main(["-q", "embed", "--engine", "ray", "--workers", "1", str(album),
               "-o", str(tmp_path / "shards")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 0
    named = [line for line in err if line.startswith("exprsim embed:")]
    assert len(named) == 1 and "broken.jpg" in named[0], err
    # a rerun tries broken.jpg again (one line again); --no-retry-failed skips it
    for flag, n_lines in (("--no-retry-failed", 0), (None, 1)):
        argv = ["-q", "embed", "--engine", "ray", "--workers", "1", str(album)]
        rc = main([*argv, "-o", str(tmp_path / "shards"), *([flag] if flag else [])])
        err = capsys.readouterr().err.strip().splitlines()
        named = [x for x in err if x.startswith("exprsim embed:")]
        assert rc == 0 and len(named) == n_lines, (flag, err)
