"""Round 33 (audit E), `exprsim evaluate`: a perceptual-VAE run evaluated from another
folder finds its cached meshes, -q hides the mesh bars, the --json guard lists only the FEC
crop store's own files (and only with --json), and an unfinished perceptual-VAE run is named
as one. Each test failed before its fix. No FER+ data or meshing: the data functions are
stubs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cli_run import run

from exprsim.cli import main
from run_folders import pvae_run, stub_fer_landmarks


def _pvae_run(folder: Path, cache: str = "runs/pvae", weights: bool = True) -> Path:
    """A perceptual-VAE run folder (random weights) on face-mesh features whose
    train_config.json names ``cache`` (the configs' relative ``runs/pvae``)."""
    from exprsim.pvae.features import FEATURE_DIM

    return pvae_run(folder, FEATURE_DIM, weights=weights, cache=cache, iterations=3000)


@pytest.fixture
def stub_fer(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """FER+ meshes, the PublicTest split and its triplets replaced by small random stand-ins;
    returns what the mesh functions were asked for (``cache`` and ``progress``)."""
    asked: list[dict[str, Any]] = []

    def note(what: str, cache: Any, data_dir: Any, progress: Any) -> None:
        if what != "split":
            asked.append({"cache": str(cache), "progress": progress})

    stub_fer_landmarks(monkeypatch, note)
    return asked


def _project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, meshes: bool = True
) -> tuple[Path, Path]:
    """``(run, cache)``: ``proj/runs/pa`` trained from ``proj`` with ``runs/pvae`` (its
    meshes there when ``meshes``); the working folder is ``elsewhere``, beside ``proj``."""
    proj = tmp_path.resolve() / "proj"
    run_dir = _pvae_run(proj / "runs" / "pa")
    cache = proj / "runs" / "pvae"
    if meshes:
        cache.mkdir()
        for split in ("Training", "PublicTest"):
            (cache / f"mesh-{split}.npz").write_bytes(b"meshes that took 7 minutes")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    return run_dir, cache


# ------------------------------------------------------------- 1: the run's own mesh cache


def test_pvae_evaluate_from_another_folder_reads_the_runs_cached_meshes(
    capsys: pytest.CaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub_fer: Any
) -> None:
    run_dir, cache = _project(tmp_path, monkeypatch)
    rc, out, err = run(capsys, "evaluate", "--model", str(run_dir))
    assert rc == 0, err
    assert "pa" in out
    # was runs/pvae under the working folder: all of FER+ meshed again (7+ minutes)
    assert {a["cache"] for a in stub_fer} == {str(cache)}
    assert not Path("runs").exists()
    assert err == ""  # found: nothing to warn about


def test_pvae_evaluate_says_where_it_looked_before_meshing_again(
    capsys: pytest.CaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub_fer: Any
) -> None:
    run_dir, cache = _project(tmp_path, monkeypatch, meshes=False)
    rc, _, err = run(capsys, "evaluate", "--model", str(run_dir))
    assert rc == 0, err
    warning = [line for line in err.splitlines() if "no cached FER+ face meshes" in line]
    assert len(warning) == 1, err  # was silent: minutes of meshing without a word
    assert str(tmp_path.resolve() / "elsewhere" / "runs" / "pvae") in warning[0]
    assert str(cache) in warning[0]
    # made beside the run (its project's runs/ folder), not under the working folder
    assert {a["cache"] for a in stub_fer} == {str(cache)}


def test_pvae_evaluate_json_never_replaces_the_runs_cached_meshes(
    capsys: pytest.CaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub_fer: Any
) -> None:
    run_dir, cache = _project(tmp_path, monkeypatch)
    target = cache / "mesh-Training.npz"
    rc, _, err = run(capsys, "evaluate", "--model", str(run_dir), "--json", str(target))
    assert rc == 2 and "a cached mesh file" in err  # was checked under the working folder
    assert target.read_bytes() == b"meshes that took 7 minutes"
    assert stub_fer == []


# ----------------------------------------------------------------- 2: -q and the mesh bars


@pytest.mark.parametrize("quiet", [True, False])
def test_quiet_pvae_evaluate_draws_no_mesh_bar(
    capsys: pytest.CaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stub_fer: Any,
    quiet: bool,
) -> None:
    run_dir, _ = _project(tmp_path, monkeypatch)
    argv = ["evaluate", "--model", str(run_dir)]
    assert main(["-q", *argv] if quiet else argv) == 0
    capsys.readouterr()
    # both mesh extractions (Training, PublicTest); with -q they were drawn all the same
    assert [a["progress"] for a in stub_fer] == [not quiet, not quiet]


# ---------------------------------------------------------------- 3: the FEC --json guard


def _deep_tree(root: Path) -> None:
    """Folders under ``root`` nested past PATH_MAX (an odd tree, as under /tmp): walking
    it fails with "File name too long"."""
    here = os.getcwd()
    os.chdir(root)
    try:
        for _ in range(24):
            os.mkdir("d" * 200)
            os.chdir("d" * 200)
        Path("f").write_text("x")
    finally:
        os.chdir(here)


@pytest.fixture
def stub_fec(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """``evaluate_fec`` replaced by a stub scoring one triplet; returns its calls."""
    import exprsim.fec.evaluate as fe

    calls: list[Any] = []

    def evaluate(*args: Any, **kw: Any) -> Any:
        calls.append(args)
        return SimpleNamespace(n_triplets=1, to_dict=lambda: {"n_triplets": 1})

    monkeypatch.setattr(fe, "evaluate_fec", evaluate)
    return calls


@pytest.mark.parametrize("with_json", [False, True])
def test_fec_evaluate_never_walks_the_crops_tree(
    capsys: pytest.CaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stub_fec: list[Any],
    random_model_dir: Path,
    with_json: bool,
) -> None:
    import pathlib

    folder = tmp_path / "tmp"
    folder.mkdir()
    _deep_tree(folder)
    walked: list[Path] = []
    rglob = pathlib.Path.rglob
    monkeypatch.setattr(
        pathlib.Path, "rglob", lambda p, *a, **k: walked.append(p) or rglob(p, *a, **k)
    )
    csv = tmp_path / "t.csv"
    csv.write_text("")
    argv = ["evaluate", "--model", str(random_model_dir), "--fec-test", str(csv)]
    argv += ["--fec-crops", str(folder)]
    if with_json:
        argv += ["--json", str(tmp_path / "r.json")]
    rc, _, err = run(capsys, *argv)
    # was "error: .../ddd...: File name too long", before anything was scored
    assert rc == 0, err
    assert walked == [] and len(stub_fec) == 1


def test_fec_evaluate_json_guards_the_crop_store_and_fetched_images(
    capsys: pytest.CaptureFixture, tmp_path: Path, stub_fec: list[Any], random_model_dir: Path
) -> None:
    fetch = tmp_path / "fetch"
    (fetch / "crops").mkdir(parents=True)
    (fetch / "images" / "ab").mkdir(parents=True)
    kept = [
        fetch / "manifest.sqlite",
        fetch / "crops" / "index.sqlite",
        fetch / "crops" / "index.sqlite-wal",
        fetch / "crops" / "shard-00003.npy",
        fetch / "images" / "ab" / "0123.jpg",
    ]
    for f in kept:
        f.write_bytes(b"hours of fetching")
    csv = tmp_path / "t.csv"
    csv.write_text("")
    argv = ["evaluate", "--model", str(random_model_dir), "--fec-test", str(csv)]
    argv += ["--fec-crops", str(fetch)]
    for target in kept:
        rc, _, err = run(capsys, *argv, "--json", str(target))
        assert rc == 2 and "it would be overwritten" in err, target
        assert target.read_bytes() == b"hours of fetching"
    assert stub_fec == []
    report = fetch / "report.json"
    for _ in range(2):  # the report of the last run is no input: was refused the second time
        rc, _, err = run(capsys, *argv, "--json", str(report))
        assert rc == 0, err
    assert json.loads(report.read_text()) == {"n_triplets": 1}


# ------------------------------------------------------ 4: an unfinished perceptual-VAE run


def test_unfinished_pvae_run_is_named_as_not_exported_yet(
    capsys: pytest.CaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub_fer: Any
) -> None:
    import torch

    monkeypatch.chdir(tmp_path)
    run_dir = _pvae_run(tmp_path / "pvs", weights=False)
    torch.save({"iteration": 1450}, run_dir / "state.pt")
    rc, _, err = run(capsys, "evaluate", "--model", str(run_dir))
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 2, err
    assert "stopped after 1450 of 3000 iterations" in lines[0]
    # was "error: pvs: not a perceptual-VAE run (pvae_config.json + weights)"
    assert "not a perceptual-VAE run" not in lines[1]
    assert "not exported yet" in lines[1] and "exprsim train" in lines[1]
    assert stub_fer == []
