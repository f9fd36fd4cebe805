"""Round 31, training configs: a setting outside what it may be is an
:class:`~exprsim.errors.ArgumentError` (a ``ValueError`` too) found before any work, and
``exprsim train`` turns only those into its one line. Before, the trainer raised plain
``ValueError``s, which the command caught all of (a bug deep in the training read as a
config problem), and these settings got through: an unknown ``augment_mode`` trained with
the full augmentation; ``embedding_dim``, ``latent_dim``, ``samples``, widths and
``stages`` of 10**8 or more failed in torch's allocator (a traceback) or ran out of memory;
``max_train`` 10**9 of synthetic faces asked for 60 GiB; ``triplets_per_type`` -1 trained;
``eval_every`` past the iterations drew billions of permutations. Each test fails on the
code before the fix."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from exprsim.errors import ArgumentError
from exprsim.training.registry import train_from_dict
from exprsim.training.run import RunFolder

TINY = {
    "data": "synthetic",
    "max_train": 192,
    "val_fraction": 0.25,
    "epochs": 1,
    "batch_size": 64,
    "triplet_weight": 0.0,
    "num_threads": 1,
}
PVAE = {"kind": "pvae", "model": "pvae-vae", "data": "synthetic", "max_train": 120, "iterations": 8}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"augment_mode": "nonsense"}, "augment_mode"),
        ({"embedding_dim": 10**9}, "embedding_dim"),
        ({"max_train": 10**9}, "max_train"),
        ({"triplets_per_type": -1}, "triplets_per_type"),
        ({"triplets_per_type": 10**9, "triplet_weight": 1.0}, "triplets_per_type"),
        ({"model": "exprnet_v", "model_kwargs": {"stages": [[10**8]]}}, "model_kwargs"),
    ],
)
def test_ferplus_settings_out_of_range_are_refused_first(
    tmp_path: Path, change: dict[str, Any], field: str
) -> None:
    t0 = time.perf_counter()
    with pytest.raises(ArgumentError, match=field):
        train_from_dict({**TINY, **change}, tmp_path / "run", progress=False)
    assert time.perf_counter() - t0 < 20  # before the data and the training
    assert not (tmp_path / "run" / "state.pt").exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"latent_dim": 10**9}, "latent_dim"),
        ({"samples": 10**9}, "samples"),
        ({"encoder_hidden": [10**8]}, "encoder_hidden"),
        ({"batch_size": 10**5}, "batch_size"),
        ({"triplet_threshold": -1.0}, "triplet_threshold"),
        ({"max_train": 10**9}, "max_train"),
    ],
)
def test_pvae_settings_out_of_range_are_refused_first(
    tmp_path: Path, change: dict[str, Any], field: str
) -> None:
    with pytest.raises(ArgumentError, match=field):
        train_from_dict({**PVAE, **change}, tmp_path / "run", progress=False)


def test_a_pvae_validation_interval_past_the_iterations_trains_at_once(tmp_path: Path) -> None:
    """``eval_every`` 10**9 with 8 iterations ran for minutes (killed at 60 s); run in a
    child process, so that the old behaviour fails the test instead of hanging it."""
    raw = json.dumps({**PVAE, "eval_every": 10**9})
    code = (
        "import json, sys\n"
        "from exprsim.training.registry import train_from_dict\n"
        "res = train_from_dict(json.loads(sys.argv[1]), sys.argv[2], progress=False)\n"
        "print(res.iterations_run)\n"
    )
    argv = [sys.executable, "-c", code, raw, str(tmp_path / "run")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "8"


def test_a_damaged_saved_config_is_an_argument_error(tmp_path: Path) -> None:
    """Read by an ensemble's members and the SGM sub-class levels without a guard (it was a
    bare ``JSONDecodeError``)."""
    from exprsim.training.ferplus import TrainConfig

    (tmp_path / "train_config.json").write_bytes(b"\xff\xfe{not json")
    with pytest.raises(ArgumentError, match=r"train_config\.json: not valid JSON"):
        RunFolder(tmp_path).saved_config(TrainConfig)


def _config(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(raw))
    return path


def test_train_gives_one_line_for_a_setting(tmp_path: Path, capsys: Any) -> None:
    from exprsim.cli import main

    cfg = _config(tmp_path, {**TINY, "augment_mode": "nonsense"})
    assert main(["-q", "train", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"exprsim train: error: {cfg}: augment_mode must be one of ('full', 'flip'), got 'nonsense'"
    ]


def test_train_does_not_pass_a_bug_off_as_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``ValueError`` from inside the training (not a setting) is not "<config>: ..."."""
    import exprsim.training as training
    from exprsim.cli import main

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(training, "train_from_dict", broken)
    cfg = _config(tmp_path, TINY)
    with pytest.raises(ValueError, match="broadcast"):
        main(["-q", "train", "--config", str(cfg), "--out", str(tmp_path / "run")])


@pytest.mark.parametrize("text", [b"\xff\xfe{not json", b"[1, 2]"])
def test_a_member_with_a_damaged_config_is_one_line(
    tmp_path: Path, capsys: Any, text: bytes
) -> None:
    """``exprsim ensemble`` over a run folder whose ``train_config.json`` is damaged: a
    JSON list was a ``TypeError`` traceback (and, once its catch was narrowed, bad JSON
    would have been one too)."""
    import shutil

    from exprsim.cli import main
    from exprsim.training.ferplus import load_run_config

    member = {**TINY, "model": "exprnet_v", "model_kwargs": {"readout": "hybrid"}}
    train_from_dict(member, tmp_path / "trained", progress=False)
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        shutil.copytree(tmp_path / "trained", run)
        (run / "train_config.json").write_bytes(text)
    with pytest.raises(ArgumentError, match=r"train_config\.json: (not valid JSON|expected)"):
        load_run_config(runs[0])
    argv = ["-q", "ensemble", *map(str, runs), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("exprsim ensemble: error: ")
    assert "train_config.json" in err[0]


def test_sgm_levels_beyond_any_run_are_refused(tmp_path: Path) -> None:
    """10**9 levels were taken and trained on without end (each level is a training)."""
    raw = {"recipe": "sgm-subspaces", "base": {**TINY, "objective": "sgm"}, "levels": 10**9}
    with pytest.raises(ArgumentError, match=r"levels must be an integer in \[1, 1000\]"):
        train_from_dict(raw, tmp_path / "run", progress=False)
