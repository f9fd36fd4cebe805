"""Round 27 (docs/robustness.md): two Ray embeds into one shard folder at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_ray_audit19 import FixedDetector, _images, _in_process

from exprsim.errors import ExprsimError
from exprsim.scale import ray_embed


def test_a_second_embed_into_a_busy_shard_folder_is_refused(
    tmp_path: Path, random_model_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "a", tmp_path / "d"
    _images(first, {"a1.png": 100, "a2.png": 100})
    _images(second, {"d1.png": 100})
    out = tmp_path / "shards"
    kw: dict[str, Any] = {"model": str(random_model_dir), "detector": FixedDetector()}
    refused: list[str] = []

    def first_run(todo, actor_kwargs, *args):
        # the other command starts while this one embeds
        with pytest.raises(ExprsimError, match="another `exprsim embed --engine ray`") as info:
            ray_embed.embed_with_ray(second, out, progress=False, **kw)
        refused.append(str(info.value))
        return _in_process(todo, actor_kwargs, *args)

    monkeypatch.setattr(ray_embed, "_ray", lambda: None)
    monkeypatch.setattr(ray_embed, "_check_before_ray", lambda *a: None, raising=False)
    monkeypatch.setattr(ray_embed, "_run_on_ray", first_run)
    report = ray_embed.embed_with_ray(first, out, progress=False, **kw)
    assert len(refused) == 1 and "\n" not in refused[0]
    # was: the second removed the first's shards as stale, and both said they succeeded
    assert report.faces == 2
    assert sorted(pd.read_parquet(out)["source"]) == [str(first / "a1.png"), str(first / "a2.png")]
    monkeypatch.setattr(ray_embed, "_run_on_ray", _in_process)
    again = ray_embed.embed_with_ray(second, out, progress=False, **kw)  # free again
    assert again.faces == 1


def test_a_run_refused_before_its_first_shard_leaves_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    album = tmp_path / "album"
    _images(album, {"x.png": 100})

    def fails(*args):
        raise RuntimeError("the cluster went away")

    monkeypatch.setattr(ray_embed, "_ray", lambda: None)
    monkeypatch.setattr(ray_embed, "_check_before_ray", lambda *a: None, raising=False)
    monkeypatch.setattr(ray_embed, "_run_on_ray", fails)
    with pytest.raises(RuntimeError):
        ray_embed.embed_with_ray(album, tmp_path / "shards", progress=False)
    assert not (tmp_path / "shards").exists()  # neither its stamp nor its lock file left


def test_a_run_refused_as_busy_never_undoes_the_folder(
    tmp_path: Path, random_model_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: two runs that both saw no folder: the one refused removed the other's stamp,
    lock and folder (it thought it had made it)."""
    album = tmp_path / "a"
    _images(album, {"a1.png": 100})
    out = tmp_path / "shards"
    kw: dict[str, Any] = {"model": str(random_model_dir), "detector": FixedDetector()}
    undone: list[bool] = []
    real_undo = ray_embed._undo_new_folder
    monkeypatch.setattr(
        ray_embed, "_undo_new_folder", lambda o, made: undone.append(made) or real_undo(o, made)
    )

    def first_run(todo, actor_kwargs, *args):
        real_exists = Path.exists
        # the second run saw no folder either (both started at once)
        monkeypatch.setattr(Path, "exists", lambda p: False if p == out else real_exists(p))
        try:
            with pytest.raises(ExprsimError, match="another `exprsim embed --engine ray`"):
                ray_embed.embed_with_ray(album, out, progress=False, **kw)
        finally:
            monkeypatch.setattr(Path, "exists", real_exists)
        assert (out / ray_embed.STAMP_NAME).is_file()  # was removed, and the folder with it
        return _in_process(todo, actor_kwargs, *args)

    monkeypatch.setattr(ray_embed, "_ray", lambda: None)
    monkeypatch.setattr(ray_embed, "_check_before_ray", lambda *a: None, raising=False)
    monkeypatch.setattr(ray_embed, "_run_on_ray", first_run)
    assert ray_embed.embed_with_ray(album, out, progress=False, **kw).faces == 1
    assert undone == []
