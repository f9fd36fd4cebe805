"""``embed --engine ray``, audit 11 finding 3: without Ray (or failing before the first
shard) the output folder was made and stamped, and a corrected rerun was refused ("holds
shards embedded with detector ...", though it held none). Each test but the last failed
before its fix."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from exprsim.errors import BackendUnavailableError, ExprsimError
from exprsim.scale import ray_embed

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "exprsim" / "samples"


def test_without_ray_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails, as without the extra
    monkeypatch.setitem(sys.modules, "ray.data", None)
    out = tmp_path / "shards"
    with pytest.raises(BackendUnavailableError, match=r"Ray is not installed.*exprsim\[ray\]"):
        ray_embed.embed_with_ray(SAMPLES, out, progress=False)
    assert not out.exists()  # was: the folder, with _embed.json in it


def no_ray(monkeypatch: pytest.MonkeyPatch, run: Any) -> None:
    """Ray "installed", and ``run`` in place of the run on Ray."""
    monkeypatch.setattr(ray_embed, "_ray", lambda: None)
    monkeypatch.setattr(ray_embed, "_run_on_ray", run)


def test_a_run_that_failed_before_its_first_shard_stamps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(*args: Any) -> list[int]:
        raise ExprsimError("cannot start Ray")

    no_ray(monkeypatch, fails)
    out = tmp_path / "shards"
    with pytest.raises(ExprsimError, match="cannot start Ray"):
        ray_embed.embed_with_ray(SAMPLES, out, progress=False)
    assert not list(out.glob("part-*"))
    no_ray(monkeypatch, lambda *args: [0, 0, 0])
    # the corrected rerun (was: "holds shards embedded with detector mediapipe, not haar")
    rep = ray_embed.embed_with_ray(SAMPLES, out, detector="haar", progress=False)
    assert rep.shards == 1
    assert json.loads((out / ray_embed.STAMP_NAME).read_text())["detector"] == "haar"


def test_a_folder_with_shards_of_another_detector_is_still_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A guard: the stamp is compared when shards are there."""
    no_ray(monkeypatch, lambda *args: [0, 0, 0])
    out = tmp_path / "shards"
    ray_embed.embed_with_ray(SAMPLES, out, progress=False)
    (out / "part-00000-0123456789ab.parquet").write_bytes(b"")  # a shard of this engine
    with pytest.raises(ExprsimError, match="not haar: use a new output folder"):
        ray_embed.embed_with_ray(SAMPLES, out, detector="haar", progress=False)


def test_ray_whose_data_library_cannot_load_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sixteenth audit round: with Ray installed but `ray.data` failing (its pyarrow too old)
    the message said "Ray is not installed"."""
    import builtins
    import types

    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kw: Any) -> Any:
        if name == "ray.data":
            raise ImportError("Dataset requires pyarrow >= 17.0.0")
        if name == "ray":
            return types.ModuleType("ray")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(BackendUnavailableError, match=r"Ray Data cannot be imported.*pyarrow"):
        ray_embed._ray()
