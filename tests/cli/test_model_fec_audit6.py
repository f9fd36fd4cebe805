"""Audit C (sixth round), model and FEC commands: items 8-13 of /tmp/auditC.md (a NaN
readout angle, perceptual-VAE evaluation, --json over the FER+ files, NaN in JSON
reports, ranges of the fec options, fetching without a network). Each test failed before
its fix. No real training, FER+ evaluation or download: the data functions are stubs."""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from cli_run import one_line, run

from exprsim.cli import main
from exprsim.errors import ModelError
from run_folders import stub_fer_landmarks


def usage_error(capsys: pytest.CaptureFixture, *argv: str) -> str:
    """argparse's error line for ``argv`` (exit code 2, before any work)."""
    with pytest.raises(SystemExit) as exc:
        main(["-q", *argv])
    assert exc.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def strict_json(path: Path) -> Any:
    """``path`` read as strict JSON: a ``NaN`` or ``Infinity`` token fails."""

    def refuse(token: str) -> None:
        raise AssertionError(f"{path}: {token} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


# ----------------------------------------------------------------------------- C8


@pytest.mark.parametrize("angle", ["nan", "inf", "-inf", "-1", "91"])
def test_ensemble_angles_are_finite_and_in_range(capsys, tmp_path: Path, angle: str) -> None:
    # the members need not exist: the option is refused before anything is read
    line = usage_error(
        capsys, "ensemble", "a", "b", "--out", str(tmp_path / "e"), f"--angles={angle}"
    )
    assert "--angles" in line and "must be in [0.0, 90.0]" in line
    assert not (tmp_path / "e").exists()


def _hybrid_model(folder: Path, angle: Any) -> Path:
    """A checkpoint folder of a random hybrid ``exprnet_v`` whose config.json holds
    ``readout_angle`` = ``angle`` (written with json.dumps, as the ensemble wrote NaN)."""
    import torch
    from safetensors.torch import save_file

    from exprsim.models.registry import create_model

    torch.manual_seed(0)
    kwargs = {"stages": [[8], [8], [8], [8]], "readout": "hybrid", "readout_angle": 15.0}
    net = create_model("exprnet_v", embedding_dim=16, **kwargs)
    folder.mkdir()
    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()}, folder / "model.safetensors"
    )
    doc = {"model": "exprnet_v", "embedding_dim": 16, "model_kwargs": {**kwargs}}
    doc["model_kwargs"]["readout_angle"] = angle
    (folder / "config.json").write_text(json.dumps(doc, indent=2))
    return folder


def test_load_model_refuses_a_non_finite_readout_angle(tmp_path: Path) -> None:
    from exprsim.models.embedder import load_model

    good = load_model(str(_hybrid_model(tmp_path / "good", 15.0)))
    crops = (np.random.default_rng(0).random((2, 48, 48)) * 255).astype(np.uint8)
    assert np.isfinite(good.embed_crops(crops)).all()
    for name, angle in (("nan", float("nan")), ("inf", float("inf"))):
        folder = _hybrid_model(tmp_path / name, angle)
        assert (
            "NaN" in (folder / "config.json").read_text()
            or "Infinity" in (folder / "config.json").read_text()
        )
        with pytest.raises(ModelError, match=r"model_kwargs\.readout_angle is (nan|inf)"):
            load_model(str(folder))  # was: loaded, every embedding NaN


def test_embedder_config_refuses_any_non_finite_setting() -> None:
    from exprsim.models.embedder import EmbedderConfig, PreprocessConfig

    nan, inf = float("nan"), float("inf")
    with pytest.raises(ValueError, match="readout_angle"):
        EmbedderConfig(model="exprnet_ens", model_kwargs={"readout_angle": nan})
    with pytest.raises(ValueError, match=r"members\[1\]\.classifier_scale"):
        EmbedderConfig(
            model="exprnet_ens", model_kwargs={"members": [{}, {"classifier_scale": inf}]}
        )
    with pytest.raises(ValueError, match=r"class_weights\[2\]"):
        EmbedderConfig(model="exprnet_ens", model_kwargs={"class_weights": [1.0, 1.0, nan]})
    with pytest.raises(ValueError, match="tag_threshold"):
        EmbedderConfig(model="exprnet_s", tag_threshold=nan)
    with pytest.raises(ValueError, match=r"preprocess\.std"):
        PreprocessConfig(std=nan)
    with pytest.raises(ValueError, match=r"preprocess\.std"):
        PreprocessConfig(std=0.0)
    with pytest.raises(ValueError, match="mean"):
        EmbedderConfig.from_dict({"model": "exprnet_s", "preprocess": {"mean": inf}})
    ok = EmbedderConfig(model="exprnet_ens", model_kwargs={"readout_angle": 30.0, "n": 2})
    assert ok.model_kwargs["readout_angle"] == 30.0


# ----------------------------------------------------------------------------- C9


def _pvae_run(
    folder: Path, dim: int, cache: Path, data: str = "ferplus", data_dir: Path | None = None
) -> Path:
    """A perceptual-VAE run folder (random weights) trained on ``dim`` features."""
    from safetensors.torch import save_file

    from exprsim.config import save_json
    from exprsim.pvae.model import PerceptualVAE, PVAEConfig

    cfg = PVAEConfig(
        variant="vae", input_dim=dim, latent_dim=4, encoder_hidden=(8,), decoder_hidden=(8,)
    )
    net = PerceptualVAE(cfg)
    folder.mkdir()
    save_json(cfg, folder / "pvae_config.json")
    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()}, folder / "model.safetensors"
    )
    train = {"kind": "pvae", "model": "pvae-vae", "data": data, "landmark_cache": str(cache)}
    train["data_dir"] = str(data_dir) if data_dir else None
    (folder / "train_config.json").write_text(json.dumps(train, indent=2))
    return folder


@pytest.fixture
def fake_fer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, list[Any]]:
    """FER+ meshes, splits and triplets replaced by small random stand-ins; returns what
    each stub was asked for (``cache``: landmark caches, ``data_dir``: FER folders)."""
    monkeypatch.chdir(tmp_path)  # a stray default cache would land here, not in the checkout
    monkeypatch.setenv("EXPRSIM_FER_DIR", str(tmp_path / "no-fer"))
    asked: dict[str, list[Any]] = {"cache": [], "data_dir": []}

    def note(what: str, cache: Any, data_dir: Any, progress: Any) -> None:
        if what != "split":
            asked["cache"].append(str(cache))
        if what != "test":
            asked["data_dir"].append(data_dir)

    stub_fer_landmarks(monkeypatch, note)
    return asked


def test_pvae_evaluation_scores_also_with_the_runs_landmark_cache(
    capsys, tmp_path: Path, fake_fer: dict[str, list[Any]]
) -> None:
    from exprsim.pvae.features import FEATURE_DIM

    cache, fer_dir = tmp_path / "elsewhere" / "meshes", tmp_path / "my-fer"
    first = _pvae_run(tmp_path / "pa", FEATURE_DIM, cache, data_dir=fer_dir)
    second = _pvae_run(tmp_path / "pb", FEATURE_DIM, tmp_path / "other-cache")
    out = tmp_path / "ev.json"
    rc, text, err = run(
        capsys, "evaluate", "--model", str(first), "--also", str(second), "--json", str(out)
    )
    assert rc == 0, err
    rows = [r["name"] for r in strict_json(out)["rows"]]
    assert rows == ["pa", "pb"]  # was ["pa"]: --also dropped silently
    assert "pb" in text
    # the first run's landmark cache and FER folder, never runs/pvae under the working folder
    assert set(fake_fer["cache"]) == {str(cache)}
    assert set(fake_fer["data_dir"]) == {str(fer_dir)}
    assert not (tmp_path / "runs").exists()


def test_pvae_evaluation_refuses_an_image_model_as_also(
    capsys, tmp_path: Path, fake_fer: dict[str, list[Any]], random_model_dir: Path
) -> None:
    from exprsim.pvae.features import FEATURE_DIM

    run_dir = _pvae_run(tmp_path / "pa", FEATURE_DIM, tmp_path / "meshes")
    rc, _, err = run(capsys, "evaluate", "--model", str(run_dir), "--also", str(random_model_dir))
    assert rc == 2 and "is not a perceptual-VAE run" in one_line(err)
    assert fake_fer["cache"] == []  # refused before any mesh is read
    rc, _, err = run(capsys, "evaluate", "--model", str(random_model_dir), "--also", str(run_dir))
    assert rc == 2 and "is a perceptual-VAE run" in one_line(err)


def test_pvae_run_on_other_features_is_one_line_before_the_meshes(
    capsys, tmp_path: Path, fake_fer: dict[str, list[Any]]
) -> None:
    from exprsim.pvae.features import FEATURE_DIM

    run_dir = _pvae_run(tmp_path / "p1", 24, tmp_path / "meshes", data="synthetic")
    rc, _, err = run(capsys, "evaluate", "--model", str(run_dir))
    line = one_line(err)  # was a torch RuntimeError traceback (375 vs 24), after the meshes
    assert rc == 2 and "24 landmark features" in line and str(FEATURE_DIM) in line
    assert "synthetic" in line
    assert fake_fer["cache"] == []


# ----------------------------------------------------------------------------- C10


@pytest.fixture
def stub_ferplus(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """``evaluate_ferplus`` returns a report with a NaN at once; returns its calls."""
    import exprsim.evaluate as ev

    calls: list[Any] = []

    def fake(model: Any, **kw: Any) -> Any:
        calls.append(model)
        doc = {"rows": [{"name": str(model), "accuracy": 0.5, "triplets": float("nan")}]}
        return SimpleNamespace(to_text=lambda: "stub report", to_dict=lambda: doc)

    monkeypatch.setattr(ev, "evaluate_ferplus", fake)
    return calls


@pytest.mark.parametrize(
    "name", ["fer2013new.csv.gz", "fer2013.csv", "fer2013.csv.gz", "fer2013_provenance.csv.gz"]
)
def test_evaluate_json_never_replaces_a_fer_file(
    capsys, tmp_path: Path, monkeypatch, stub_ferplus: list[Any], random_model_dir: Path, name
) -> None:
    fer_dir = tmp_path / "ferdata"
    fer_dir.mkdir()
    data = fer_dir / name
    data.write_bytes(b"the votes")
    monkeypatch.setenv("EXPRSIM_FER_DIR", str(fer_dir))
    rc, _, err = run(capsys, "evaluate", "--model", str(random_model_dir), "--json", str(data))
    assert rc == 2 and "a FER+ data file" in one_line(err) and "overwritten" in err
    assert data.read_bytes() == b"the votes"  # was: replaced by the JSON report
    assert stub_ferplus == []  # refused before the evaluation


def test_pvae_evaluate_json_never_replaces_its_meshes_or_fer_files(
    capsys, tmp_path: Path, fake_fer: dict[str, list[Any]]
) -> None:
    from exprsim.pvae.features import FEATURE_DIM

    cache, fer_dir = tmp_path / "meshes", tmp_path / "fer"
    cache.mkdir()
    fer_dir.mkdir()
    run_dir = _pvae_run(tmp_path / "pa", FEATURE_DIM, cache, data_dir=fer_dir)
    for target, what in (
        (cache / "mesh-Training.npz", "a cached mesh file"),
        (fer_dir / "fer2013new.csv", "a FER+ data file"),
    ):
        target.write_bytes(b"kept")
        rc, _, err = run(capsys, "evaluate", "--model", str(run_dir), "--json", str(target))
        assert rc == 2 and what in one_line(err)
        assert target.read_bytes() == b"kept"
    assert fake_fer["cache"] == []


# ----------------------------------------------------------------------------- C11


def test_evaluate_json_is_strict_json_written_atomically(
    capsys, tmp_path: Path, monkeypatch, stub_ferplus: list[Any], random_model_dir: Path
) -> None:
    monkeypatch.setenv("EXPRSIM_FER_DIR", str(tmp_path / "no-fer"))
    out = tmp_path / "reports" / "ev.json"
    out.parent.mkdir()
    rc, _, err = run(capsys, "evaluate", "--model", str(random_model_dir), "--json", str(out))
    assert rc == 0, err
    assert strict_json(out)["rows"][0]["triplets"] is None  # was: NaN
    out.write_text("{}")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    rc, _, err = run(capsys, "evaluate", "--model", str(random_model_dir), "--json", str(out))
    assert rc == 2 and "No space left" in one_line(err)
    assert out.read_text() == "{}"  # was: replaced in place
    assert [p.name for p in out.parent.iterdir()] == ["ev.json"]  # no temporary left


def test_fec_and_pvae_evaluate_json_are_strict(
    capsys, tmp_path: Path, monkeypatch, fake_fer: dict[str, list[Any]]
) -> None:
    import exprsim.fec.evaluate as fe
    from exprsim.pvae.features import FEATURE_DIM

    doc = {"n_triplets": 1, "accuracy": {"one": 1.0, "two": float("nan")}, "median": -math.inf}
    result = SimpleNamespace(n_triplets=1, to_dict=lambda: doc)
    monkeypatch.setattr(fe, "evaluate_fec", lambda *a, **k: result)
    out = tmp_path / "fec.json"
    rc, _, err = run(
        capsys, "evaluate", "--fec-test", "t.csv", "--fec-crops", str(tmp_path), "--json", str(out)
    )
    assert rc == 0, err
    got = strict_json(out)
    assert got["accuracy"] == {"one": 1.0, "two": None} and got["median"] is None
    import exprsim.pvae.evaluate as pe

    real = pe.score_representation

    def nan_scores(*args: Any) -> Any:
        row = real(*args)
        return pe.PVAEEvalRow(row.name, row.dim, float("nan"), row.triplets, row.odd_one_out)

    monkeypatch.setattr(pe, "score_representation", nan_scores)
    run_dir = _pvae_run(tmp_path / "pa", FEATURE_DIM, tmp_path / "meshes")
    out = tmp_path / "pvae.json"
    rc, _, err = run(capsys, "evaluate", "--model", str(run_dir), "--json", str(out))
    assert rc == 0, err
    assert strict_json(out)["rows"][0]["accuracy"] is None


# ----------------------------------------------------------------------------- C12


@pytest.mark.parametrize(
    "argv",
    [
        ["fetch", "x.csv", "--out", "o", "--timeout", "nan"],
        ["fetch", "x.csv", "--out", "o", "--timeout", "0"],
        ["fetch", "x.csv", "--out", "o", "--timeout", "1e300"],
        ["fetch", "x.csv", "--out", "o", "--host-delay", "inf"],
        ["fetch", "x.csv", "--out", "o", "--host-delay", "-1"],
        ["fetch", "x.csv", "--out", "o", "--backoff", "nan"],
        ["fetch", "x.csv", "--out", "o", "--backoff", "-0.5"],
        ["fetch", "x.csv", "--out", "o", "--min-side", "-1"],
        ["fetch", "x.csv", "--out", "o", "--retries", "-1"],
        ["fetch", "x.csv", "--out", "o", "--workers", "0"],
        ["fetch", "x.csv", "--out", "o", "--crop", "--margin", "nan"],
        ["crop", "x.csv", "--data", "d", "--margin", "nan"],
        ["crop", "x.csv", "--data", "d", "--margin", "-0.1"],
        ["crop", "x.csv", "--data", "d", "--margin", "1e308"],
        ["crop", "x.csv", "--data", "d", "--size", "4"],
        ["crop", "x.csv", "--data", "d", "--crop-workers", "0"],
        ["stats", "x.csv", "--max-issues", "-1"],
    ],
)
def test_fec_numeric_options_have_ranges(capsys, tmp_path: Path, monkeypatch, argv) -> None:
    monkeypatch.chdir(tmp_path)
    line = usage_error(capsys, "fec", *argv)
    assert line.startswith("exprsim fec") and "error: argument" in line
    assert "must be" in line
    assert list(tmp_path.iterdir()) == []  # nothing made


@pytest.mark.parametrize(
    "field", ["host_delay", "timeout", "total_timeout", "backoff", "backoff_max"]
)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e300])
def test_fetch_config_refuses_nan_and_infinite_seconds(field: str, value: float) -> None:
    from exprsim.fec.fetch import FetchConfig

    with pytest.raises(ValueError, match=field):
        FetchConfig(**{field: value})


def test_fetch_and_crop_configs_refuse_bad_numbers() -> None:
    from exprsim.fec.crops import CropConfig
    from exprsim.fec.fetch import FetchConfig

    for bad in ({"min_side": -1}, {"min_bytes": -1}, {"max_bytes": 0}, {"timeout": 0.0}):
        with pytest.raises(ValueError):
            FetchConfig(**bad)
    for margin in (float("nan"), float("inf"), -0.5, 11.0):
        with pytest.raises(ValueError, match="margin"):
            CropConfig(margin=margin)
    for iou in (float("nan"), 1.5):
        with pytest.raises(ValueError, match="min_iou"):
            CropConfig(min_iou=iou)
    assert CropConfig(margin=0.0).margin == 0.0 and FetchConfig(host_delay=0.0).host_delay == 0


def test_cli_and_config_limits_agree() -> None:
    from exprsim.cli import fec_cmd
    from exprsim.fec.crops import MAX_MARGIN
    from exprsim.fec.fetch import MAX_SECONDS

    assert fec_cmd.MAX_SECONDS == MAX_SECONDS and fec_cmd.MAX_MARGIN == MAX_MARGIN


# ----------------------------------------------------------------------------- C13


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fec_csv(path: Path, base: str) -> Path:
    from exprsim.data.fec import (
        Annotation,
        FaceBox,
        FecFace,
        FecTriplet,
        TripletType,
        write_fec_csv,
    )

    faces = tuple(FecFace(f"{base}/img{i}.jpg", FaceBox(0.3, 0.7, 0.2, 0.8)) for i in range(3))
    votes = tuple(Annotation(f"100{r}", 1) for r in range(6))
    return write_fec_csv([FecTriplet(1, faces, TripletType.ONE, votes)], path)  # type: ignore[arg-type]


def test_fetch_without_network_says_so_in_one_line(capsys, tmp_path: Path) -> None:
    csv = _fec_csv(tmp_path / "fec.csv", f"http://127.0.0.1:{_closed_port()}")
    out = tmp_path / "fx"
    argv = ["fec", "fetch", str(csv), "--out", str(out), "--retries", "0", "--timeout", "5"]
    rc, text, err = run(capsys, *argv)
    assert rc == 1
    assert "failures: connection 3" in text  # the report is kept
    line = one_line(err)  # was: nothing on stderr
    assert line == (
        "exprsim fec fetch: no file could be downloaded: 3 connection failures (no network?)"
    )
    assert strict_json(out / "fetch_report.json")["n_ok"] == 0


def test_nothing_fetched_line() -> None:
    from exprsim.fec.fetch import FetchReport

    def report(errors: dict[str, int], n_ok: int = 0, n_urls: int = 4) -> FetchReport:
        failed = sum(errors.values())
        return FetchReport(
            "fx", n_urls, n_ok, failed, n_urls - n_ok - failed, 0, 0, 0, failed, errors, {}, 1.0
        )

    assert report({"connection": 1, "timeout": 3}).nothing_fetched() == (
        "no file could be downloaded: 1 connection failure, 3 timeouts (no network?)"
    )
    assert report({"connection": 2, "http_404": 2}).nothing_fetched() == (
        "no file could be downloaded: 4 failed (connection 2, http_404 2)"
    )
    assert report({"connection": 2}, n_ok=2).nothing_fetched() is None
    assert report({}, n_urls=0).nothing_fetched() is None


def test_fetch_report_of_no_url_is_strict_json(capsys, tmp_path: Path) -> None:
    csv = tmp_path / "empty.csv"
    csv.write_text("")
    out = tmp_path / "fx"
    rc, _, _ = run(capsys, "fec", "fetch", str(csv), "--out", str(out))
    assert rc == 1
    assert strict_json(out / "fetch_report.json")["availability"] is None  # was: NaN
