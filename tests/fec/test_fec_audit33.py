"""Round 33: FEC evaluation against the run's own training data, crops-folder errors,
`fec stats` of a special file, and what an interrupted `fec fetch` / `fec crop` keeps;
round 34: a byte-for-byte copy of the training CSV, a perceptual-VAE run given to it."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from exprsim.cli import main
from exprsim.data.fec import write_fec_csv
from exprsim.errors import DataError, ModelError
from exprsim.fec import crops as crops_mod
from exprsim.fec import fetch as fetch_mod
from exprsim.fec.crops import CropConfig, CropStore, build_crops
from exprsim.fec.evaluate import evaluate_fec, warn_unlike_training
from exprsim.fec.fetch import open_manifest
from exprsim.interrupts import Terminated
from run_folders import pvae_run

from .conftest import FecServer, fetched_photos, heldout_rows
from .test_fec_audit26 import _fec_cfg, _fec_run


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["-q", *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def evaluate_run(
    capsys: pytest.CaptureFixture[str], fec_run: dict[str, Path], test: str, crops: str
) -> tuple[int, str, str]:
    """``exprsim evaluate`` of the module's FEC run on ``test`` (a CSV) with ``crops``."""
    model = str(fec_run["root"] / "run")
    return run(capsys, "evaluate", "--model", model, "--fec-test", test, "--fec-crops", crops)


@pytest.fixture(scope="module")
def fec_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A FEC run trained one iteration on 32 px box-aligned crops (margin 0.5), and a
    second store of the same CSV at 48 px, margin 0.2."""
    from exprsim.training.fec import train_fec

    root = tmp_path_factory.mktemp("fec33")
    csv, data, _ = _fec_run(root, 24)
    train_fec(_fec_cfg(csv, data, 1, log_every=1), root / "run", progress=False)
    other = root / "other"
    cfg = CropConfig(detector="none", size=48, margin=0.2)
    build_crops(csv, data, other, config=cfg, progress=False)
    copy = root / "copy.csv"  # the same triplets in another order: not a byte copy
    copy.write_bytes(b"".join(reversed(csv.read_bytes().splitlines(keepends=True))))
    byte_copy = root / "held-out.csv"  # the training CSV's bytes under another name
    shutil.copy(csv, byte_copy)
    return {
        "root": root, "csv": csv, "copy": copy, "byte_copy": byte_copy, "data": data,
        "other": other,
    }  # fmt: skip


def count_fetched(out: Path) -> int:
    with open_manifest(out) as man:
        return len(man.ok_paths())


def count_crops(data: Path) -> int:
    return len(CropStore(data))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _evaluated(
    fec_run: dict[str, Path], caplog: pytest.LogCaptureFixture, test: str, crops: str
) -> list[str]:
    """The warnings of the module's run evaluated on ``fec_run[test]`` with
    ``fec_run[crops]``."""
    with caplog.at_level(logging.INFO):
        evaluate_fec(fec_run["root"] / "run", fec_run[test], fec_run[crops])
    return _warnings(caplog)


# ----------------------------------------------------------------- 1. unlike the training


def test_other_crop_settings_than_the_runs_are_warned_of(
    fec_run: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    said = _evaluated(fec_run, caplog, "copy", "other")
    assert len(said) == 1, said  # was none: 29% on other crops, 42% on its own, no word
    assert "size 48 (trained on 32), margin 0.2 (trained on 0.5)" in said[0]
    assert "--size 32 --margin 0.5" in said[0] and "\n" not in said[0]


def test_the_runs_own_crops_and_a_copy_of_its_csv_say_nothing(
    fec_run: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        evaluate_fec(fec_run["root"] / "run", fec_run["copy"], fec_run["data"])
    assert _warnings(caplog) == []


def test_the_runs_training_csv_is_warned_of(
    fec_run: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    said = _evaluated(fec_run, caplog, "csv", "data")
    assert len(said) == 1, said  # was none
    assert "is the training CSV of" in said[0] and "train_csv" in said[0]


def test_the_cli_warns_once_per_difference(
    fec_run: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = evaluate_run(capsys, fec_run, str(fec_run["csv"]), str(fec_run["other"]))
    assert rc == 0 and "FEC triplet accuracy" in out
    lines = err.splitlines()
    assert len([x for x in lines if "is the training CSV of" in x]) == 1, err
    assert len([x for x in lines if "crops made with other settings" in x]) == 1, err


def test_a_model_that_is_not_a_fec_run_gets_no_warning(
    fec_run: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    exported = fec_run["root"] / "exported"
    shutil.copytree(fec_run["root"] / "run", exported)
    (exported / "train_config.json").unlink()  # a model folder, as shipped models are
    with caplog.at_level(logging.WARNING):
        evaluate_fec(exported, fec_run["csv"], fec_run["other"])
    assert _warnings(caplog) == []


def test_a_training_store_that_is_gone_is_named_by_its_key(
    fec_run: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    moved = fec_run["root"] / "moved"
    shutil.copytree(fec_run["root"] / "run", moved)
    cfg = moved / "train_config.json"
    cfg.write_text(cfg.read_text().replace(str(fec_run["data"]), "/nonexistent/fetch"))
    with caplog.at_level(logging.INFO):
        evaluate_fec(moved, fec_run["copy"], fec_run["other"])
    assert _warnings(caplog) == []  # nothing to compare with: not a warning
    assert f"/nonexistent/fetch (crops_dir of {cfg}): no such folder" in caplog.text


# ----------------------------------------------------------------- 2. crops-folder errors


def test_a_missing_crops_folder_is_said_to_be_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DataError, match=r"^/nonexistent/x: no such folder;"):
        CropStore("/nonexistent/x")  # was "no FEC crops here (no index.sqlite ..."
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as err:
        CropStore("rel/x")
    assert f"rel/x: no such folder (relative to the working folder {tmp_path})" in str(err.value)
    (tmp_path / "f.csv").write_text("x\n")
    with pytest.raises(DataError, match=r"f\.csv: a file, not a crops folder"):
        CropStore("f.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no FEC crops here"):
        CropStore("empty")


def test_the_cli_says_no_such_folder(
    fec_run: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = evaluate_run(capsys, fec_run, str(fec_run["copy"]), "/nonexistent/x")
    assert rc == 2 and "error: /nonexistent/x: no such folder" in err and len(err.splitlines()) == 1


# ----------------------------------------------------------------- 3. fec stats /dev/null


def test_fec_stats_names_a_special_file_or_an_empty_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = run(capsys, "fec", "stats", os.devnull)
    assert rc == 2  # was "no such FEC CSV file" for a file that exists
    assert err.strip() == (
        f"exprsim fec stats: error: {os.devnull}: not a regular file (a character device); "
        "give a FEC CSV file"
    )
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    rc, _, err = run(capsys, "fec", "stats", str(fifo))
    assert rc == 2 and "not a regular file (a pipe)" in err
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    rc, _, err = run(capsys, "fec", "stats", str(empty))
    assert rc == 1 and err.strip() == f"exprsim fec stats: {empty}: an empty file"
    rc, _, err = run(capsys, "fec", "stats", str(tmp_path / "none.csv"))
    assert rc == 2 and "no such FEC CSV file" in err  # a missing file is still said so


def test_special_files_are_named_by_fetch_crop_and_evaluate(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a regular file"):
        fetch_mod.fetch_fec(os.devnull, tmp_path / "out", progress=False)
    csv, data = fetched_photos(tmp_path)
    with pytest.raises(DataError, match="not a regular file"):
        build_crops([csv, os.devnull], data, config=CropConfig(detector="none"), progress=False)


# ----------------------------------------------------------------- 4. interrupted


def _stop_fetch_after(monkeypatch: pytest.MonkeyPatch, n: int, exc: type) -> None:
    real = fetch_mod.fetch_fec

    def fetch(*args, **kw):  # type: ignore[no-untyped-def]
        seen = []

        def stop(res) -> None:  # type: ignore[no-untyped-def]
            seen.append(res)
            if len(seen) == n:
                raise exc

        return real(*args, **kw, on_result=stop)

    monkeypatch.setattr(fetch_mod, "fetch_fec", fetch)


def _stop_crop_after(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    real = crops_mod._ShardWriter.add
    added = [0]

    def add(self, item) -> None:  # type: ignore[no-untyped-def]
        real(self, item)
        added[0] += 1
        if added[0] == n:
            raise KeyboardInterrupt

    monkeypatch.setattr(crops_mod._ShardWriter, "add", add)


@pytest.mark.parametrize(("exc", "word", "code"), [(KeyboardInterrupt, "interrupted", 130),
                                                    (Terminated, "terminated", 143)])  # fmt: skip
def test_an_interrupted_fetch_says_how_many_images_are_kept(
    fec_server: FecServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exc: type,
    word: str,
    code: int,
) -> None:
    csv = write_fec_csv(heldout_rows(fec_server), tmp_path / "t.csv")
    out = tmp_path / "fec"
    _stop_fetch_after(monkeypatch, 3, exc)
    rc, _, err = run(capsys, "fec", "fetch", str(csv), "--out", str(out), "--workers", "1")
    n = count_fetched(out)
    assert rc == code and n >= 3
    assert err.strip() == (  # was "exprsim fec fetch: interrupted"
        f"exprsim fec fetch: {word}: {n} images fetched in {out} kept; run the same command "
        "again to go on (done work is not done again)"
    )


def test_an_interrupted_crop_says_how_many_crops_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    csv, data = fetched_photos(tmp_path)
    _stop_crop_after(monkeypatch, 3)
    rc, _, err = run(capsys, "fec", "crop", str(csv), "--data", str(data), "--detector", "none")
    assert rc == 130 and count_crops(data) == 3
    assert err.strip() == (  # was "exprsim fec crop: interrupted"
        f"exprsim fec crop: interrupted: 3 crops in {data / 'crops'} kept; run the same "
        "command again to go on (done work is not done again)"
    )
    rc, out, _ = run(capsys, "fec", "crop", str(csv), "--data", str(data), "--detector", "none")
    assert rc == 0 and "3 already there" in out


def test_fetch_interrupted_while_it_crops_says_both(
    fec_server: FecServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    csv = write_fec_csv(heldout_rows(fec_server), tmp_path / "t.csv")
    out = tmp_path / "fec"
    _stop_crop_after(monkeypatch, 2)
    argv = ["fec", "fetch", str(csv), "--out", str(out), "--crop", "--detector", "none"]
    rc, _, err = run(capsys, *argv)
    assert rc == 130 and count_crops(out) == 2
    assert f": interrupted: 9 images fetched in {out} and 2 crops in {out / 'crops'} kept" in err


# ------------------------------------------- round 34: a byte copy of the CSV, a pvae run


def test_a_copy_of_the_training_csv_is_warned_of(
    fec_run: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    said = _evaluated(fec_run, caplog, "byte_copy", "data")
    assert len(said) == 1, said  # was none: another name, the same bytes
    assert f"{fec_run['byte_copy']} is a byte-for-byte copy of {fec_run['csv']}" in said[0]
    assert "the training CSV of" in said[0] and "train_csv" in said[0]
    assert "not on held-out ones" in said[0] and "\n" not in said[0]


def test_the_training_csv_itself_is_still_named_as_such(fec_run: dict[str, Path]) -> None:
    store = CropStore(fec_run["data"])
    lines = warn_unlike_training(fec_run["root"] / "run", fec_run["csv"], store)
    assert len(lines) == 1 and f"{fec_run['csv']} is the training CSV of" in lines[0]
    assert "copy" not in lines[0]


def test_other_bytes_of_the_same_size_say_nothing(
    fec_run: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    assert fec_run["copy"].stat().st_size == fec_run["csv"].stat().st_size
    with caplog.at_level(logging.WARNING):
        evaluate_fec(fec_run["root"] / "run", fec_run["copy"], fec_run["data"])
    assert _warnings(caplog) == []


def test_the_cli_warns_of_a_copy_once(
    fec_run: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = evaluate_run(capsys, fec_run, str(fec_run["byte_copy"]), str(fec_run["data"]))
    assert rc == 0 and "FEC triplet accuracy" in out
    assert len([x for x in err.splitlines() if "byte-for-byte copy" in x]) == 1, err


def test_a_pvae_run_is_told_how_it_is_evaluated(fec_run: dict[str, Path], tmp_path: Path) -> None:
    pv = pvae_run(tmp_path / "pvae-m2", 6)
    with pytest.raises(ModelError) as exc:
        evaluate_fec(pv, fec_run["csv"], fec_run["data"])
    said = str(exc.value)
    assert "not exported" not in said  # was "a training run not exported yet"
    assert "perceptual-VAE run" in said and f"exprsim evaluate --model {pv}" in said
    assert "--fec-test" in said and "\n" not in said


def test_the_cli_tells_a_pvae_run_how_it_is_evaluated(
    fec_run: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pv = str(pvae_run(tmp_path / "pvae-m2", 6))
    rc, _, err = run(
        capsys, "evaluate", "--model", pv, "--fec-test", str(fec_run["csv"]),
        "--fec-crops", str(fec_run["data"]),
    )  # fmt: skip
    lines = err.strip().splitlines()
    assert rc != 0 and len(lines) == 1, err
    assert "not exported" not in lines[0] and f"exprsim evaluate --model {pv}" in lines[0]
