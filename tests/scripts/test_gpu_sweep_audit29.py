"""scripts/gpu_sweep.py, round 29 (a review of what one 15-minute GPU call needs): what
travels fits 64 MiB, what comes back fits $OUT's 8 files of 16 MiB, a call cut short still
says how far each job got, and a smoke run is one epoch whatever the job."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from file_module import load_file_module

SWEEP = Path(__file__).resolve().parents[2] / "scripts" / "gpu_sweep.py"
MiB = 2**20


@pytest.fixture(scope="module")
def sweep():
    yield from load_file_module(SWEEP, "gpu_sweep29")


def _file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size)


def _job(work: Path, name: str, stages: dict[str, dict[str, int]]) -> None:
    job = work / "jobs" / name
    (job / "log.txt").parent.mkdir(parents=True, exist_ok=True)
    (job / "log.txt").write_text("log")
    for stage, files in stages.items():
        (job / stage / "metrics.jsonl").parent.mkdir(parents=True, exist_ok=True)
        (job / stage / "metrics.jsonl").write_text('{"epoch": 1, "seconds": 2.0}\n')
        for f, size in files.items():
            _file(job / stage / f, size)


def _members(out: Path) -> dict[str, int]:
    got: dict[str, int] = {}
    for tar_path in sorted(out.glob("runs-*.tar")):
        with tarfile.open(tar_path) as tar:
            got.update({m.name: m.size for m in tar.getmembers()})
    return got


def test_what_comes_back_fits_outs_limits_figures_first(sweep, tmp_path: Path) -> None:
    """Round 28's helper: a wide job's state made one tarball of 17.96 MB (over 16 MiB,
    dropped whole), and 17 jobs at one per tarball made 18 files (over 8)."""
    work, out = tmp_path / "work", tmp_path / "out"
    out.mkdir()
    big = {"model.safetensors": 4 * MiB, "state.pt": 11 * MiB, "last.safetensors": 4 * MiB}
    exits = {}
    for i in range(17):
        _job(work, f"j{i}", {"stage1": {"model.safetensors": 3 * MiB}, "stage2": big})
        exits[f"j{i}"] = 0
    left = sweep._pack_results(work, out, exits, state_of=None)
    tars = sorted(out.glob("runs-*.tar"))
    assert 1 <= len(tars) <= sweep.OUT_FILES - 2
    assert all(t.stat().st_size < sweep.OUT_FILE_BYTES for t in tars)
    assert sum(t.stat().st_size for t in tars) <= sweep.OUT_BYTES - sweep.OUT_FILE_BYTES
    got = _members(out)
    for i in range(17):  # figures of every job come back before any state
        assert f"j{i}/stage2/metrics.jsonl" in got and f"j{i}/stage1/metrics.jsonl" in got
        assert f"j{i}/log.txt" in got
    models = [n for n in got if n.endswith("stage2/model.safetensors")]
    assert not [n for n in got if n.endswith("stage1/model.safetensors")]  # stage 2's only
    assert len(models) + sum(n.endswith("model.safetensors") for n in left) == 17
    assert left and all(
        n in left for n in (f"j{i}/stage2/state.pt" for i in range(17)) if n not in got
    )
    assert set(left).isdisjoint(got)


def test_a_job_stopped_early_brings_back_what_resumes_it(sweep, tmp_path: Path) -> None:
    work, out = tmp_path / "work", tmp_path / "out"
    out.mkdir()
    # stopped in stage 2 before its first checkpoint: stage 1's model and checkpoint
    _job(
        work,
        "cut",
        {
            "stage1": {"model.safetensors": 100, "state.pt": 200, "last.safetensors": 100},
            "stage2": {},
        },
    )
    # stopped in stage 2 after a checkpoint: stage 2's
    _job(
        work,
        "mid",
        {
            "stage1": {"model.safetensors": 100},
            "stage2": {"state.pt": 300, "last.safetensors": 100},
        },
    )
    _job(
        work,
        "fine",
        {"stage2": {"model.safetensors": 100, "state.pt": 300, "last.safetensors": 100}},
    )
    left = sweep._pack_results(work, out, {"cut": -9, "mid": -9, "fine": 0}, state_of=set())
    got = _members(out)
    assert not left
    assert {
        "cut/stage1/model.safetensors",
        "cut/stage1/state.pt",
        "cut/stage1/last.safetensors",
    } <= set(got)
    assert {
        "mid/stage2/state.pt",
        "mid/stage2/last.safetensors",
        "mid/stage1/model.safetensors",
    } <= set(got)
    assert "fine/stage2/model.safetensors" in got
    assert "fine/stage2/state.pt" not in got  # not asked for, and it ended well


def test_the_summary_says_how_far_each_job_got(sweep, tmp_path: Path) -> None:
    work, out = tmp_path / "work", tmp_path / "out"
    out.mkdir()
    _job(work, "a", {"stage1": {}})
    (work / "jobs" / "a" / "stage1" / "train_config.json").write_text(
        '{"seed": 2, "split_seed": 0}'
    )
    (work / "jobs" / "a" / "summary.json").write_text('{"job": "a", "stage1": {"x": 1}}')
    _job(work, "b", {"stage1": {}, "stage2": {}})
    sweep._write_summary(out, work, ["a", "b", "c"], {"a": 0, "b": None})
    doc = json.loads((out / "summary.json").read_text())
    assert doc["a"] == {"job": "a", "stage1": {"x": 1}, "seed": 2, "split_seed": 0}
    assert doc["b"]["exit"] is None and doc["b"]["epochs_done"] == 2  # still running
    assert "c" not in doc  # not started


def test_the_deadline_projection_counts_each_jobs_own_epochs(sweep) -> None:
    """The wide jobs run 24 + 22 epochs, not the shipped 32 + 30."""
    assert sweep._job_epochs("w78-s0") == 46
    assert sweep._job_epochs("base-s0") == 62
    assert sweep._job_epochs("q-swa7") == sweep._job_epochs("q-base")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def checkout(sweep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small git checkout laid out as exprsim's, as the sweep's ROOT."""
    if shutil.which("git") is None:
        pytest.skip("needs git")
    repo = tmp_path / "repo"
    for path in (*sweep.V7_STAGES, "configs/quick-v5.json"):
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sweep.ROOT / path, repo / path)
    _file(repo / "runs/default-v3/model.safetensors", 1000)  # ctrl-m0's init_from
    _file(repo / "runs/other/state.pt", 3000)
    _file(repo / "runs/other/metrics.jsonl", 10)
    _file(repo / sweep.SHIPPED / "model.safetensors", 2000)
    (repo / sweep.SHIPPED / "config.json").write_text("{}")
    (repo / "code.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    monkeypatch.setattr(sweep, "ROOT", repo)
    return repo


def test_park_moves_what_the_jobs_do_not_read_and_unpark_puts_it_back(
    sweep, checkout: Path, tmp_path: Path, capsys
) -> None:
    parked = tmp_path / "parked"
    assert sweep.park(parked, ["ctrl-m0"], None, None) == 0
    said = capsys.readouterr().out
    assert "needed: runs/default-v3/model.safetensors" in said
    assert (checkout / "runs/default-v3/model.safetensors").is_file()  # read by the job
    assert not (checkout / "runs/other/state.pt").exists()
    assert not (checkout / sweep.SHIPPED / "model.safetensors").exists()  # no student
    assert (parked / "runs/other/state.pt").is_file() and (checkout / "code.py").is_file()
    travelling = dict(sweep._travelling())
    assert "runs/other/state.pt" not in travelling and "code.py" in travelling
    assert sweep.unpark(parked) == 0
    assert _git(checkout, "status", "--porcelain") == ""  # everything back
    assert not (parked / "parked.txt").exists()


def test_park_keeps_the_shipped_weights_for_a_student_and_says_when_over(
    sweep, checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parked = tmp_path / "parked"
    monkeypatch.setattr(sweep, "UPLOAD_BYTES", 1500)
    assert sweep.park(parked, ["student-w05"], None, None) == 1  # over the (small) limit
    assert (checkout / sweep.SHIPPED / "model.safetensors").is_file()
    assert not (checkout / "runs/default-v3/model.safetensors").exists()
    sweep.unpark(parked)
    assert _git(checkout, "status", "--porcelain") == ""


def test_park_refuses_when_a_needed_file_is_missing(
    sweep, checkout: Path, tmp_path, capsys
) -> None:
    (checkout / "runs/default-v3/model.safetensors").unlink()
    assert sweep.park(tmp_path / "parked", ["ctrl-m0"], None, None) == 1
    assert "runs/default-v3/model.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "parked" / "parked.txt").exists()


def test_a_park_cut_short_still_lists_every_moved_file(
    sweep, checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The review of round 29: the list was written after each move (and rewritten whole),
    so a kill between a move and its listing lost that file to ``--unpark``."""
    real, calls = sweep.os.replace, []

    def cut(src, dst):  # the second move is done, then the kill comes
        calls.append(src)
        real(src, dst)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(sweep.os, "replace", cut)
    with pytest.raises(KeyboardInterrupt):
        sweep.park(tmp_path / "parked", ["ctrl-m0"], None, None)
    monkeypatch.setattr(sweep.os, "replace", real)
    assert sweep.unpark(tmp_path / "parked") == 0
    assert _git(checkout, "status", "--porcelain") == ""  # both moved files back


def test_unpark_never_overwrites_and_keeps_what_it_could_not_put_back(
    sweep, checkout: Path, tmp_path: Path, capsys
) -> None:
    """The review of round 29: a parked file whose place was taken was skipped without a
    word, and the list that named it deleted (exit 0)."""
    parked = tmp_path / "parked"
    assert sweep.park(parked, ["ctrl-m0"], None, None) == 0
    (checkout / "runs/other/state.pt").write_bytes(b"new")  # written meanwhile
    assert sweep.unpark(parked) == 1
    assert "runs/other/state.pt" in capsys.readouterr().err
    assert (checkout / "runs/other/state.pt").read_bytes() == b"new"  # not overwritten
    assert (parked / "runs/other/state.pt").stat().st_size == 3000  # still parked
    assert (parked / "parked.txt").read_text() == "runs/other/state.pt\n"
    assert (checkout / sweep.SHIPPED / "model.safetensors").is_file()  # the rest is back
    (checkout / "runs/other/state.pt").unlink()
    assert sweep.unpark(parked) == 0  # once its place is free
    assert _git(checkout, "status", "--porcelain") == ""


def test_a_checkpoint_comes_back_with_its_last_weights_or_not_at_all(sweep, tmp_path: Path) -> None:
    """The review of round 29: ``state.pt`` could come back without the
    ``last.safetensors`` it resumes from (packed file by file)."""
    work, out = tmp_path / "work", tmp_path / "out"
    out.mkdir()
    _job(work, "a", {"stage2": {"state.pt": 10 * MiB, "last.safetensors": 8 * MiB}})
    left = sweep._pack_results(work, out, {"a": -9}, tars=1)
    got = _members(out)
    assert sorted(left) == ["a/stage2/last.safetensors", "a/stage2/state.pt"]
    assert "a/stage2/state.pt" not in got and "a/stage2/metrics.jsonl" in got
    assert len(list(out.glob("runs-*.tar"))) == 1
    left = sweep._pack_results(work, out, {"a": -9}, tars=2)  # room for both
    assert not left and "a/stage2/state.pt" in _members(out)


def test_a_smoke_sweeps_deadline_projection_counts_one_epoch_a_stage(sweep, tmp_path: Path) -> None:
    """The review of round 29: a smoke run's projection counted the full recipe's epochs
    (62 for base-s0) where it runs 2, so --shed stopped jobs that were nearly done."""
    assert sweep._job_epochs("base-s0", smoke=True) == 2
    assert sweep._job_epochs("q-base", smoke=True) == 1
    work = tmp_path / "work"
    _job(work, "base-s0", {"stage1": {}, "stage2": {}})  # two epochs of 2 s done
    shed = sweep._Shedder(0.0, 100.0, smoke=True)
    assert shed.projected_end({"base-s0": None}, work, 10.0) == 10.0 + shed.tail
    full = sweep._Shedder(0.0, 100.0)
    assert full.projected_end({"base-s0": None}, work, 10.0) == 10.0 + 60 * 2.0 + full.tail


def test_the_removed_per_tar_option_still_parses(sweep, tmp_path: Path, capsys) -> None:
    """The model card's earlier commands name ``--per-tar``: ignored, with a word."""
    assert sweep.main(["--per-tar", "2", "--unpark", str(tmp_path / "none")]) == 1
    assert "--per-tar is ignored" in capsys.readouterr().err


def _fake_pack(sweep, path: Path, n: int = 700) -> None:
    import cv2

    from exprsim.training.ferplus_data import pixel_digest

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    blobs = [cv2.imencode(".webp", im, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].ravel() for im in images]
    votes = rng.multinomial(10, np.full(8, 1 / 8), size=n).astype(np.float32)
    np.savez(
        path,
        webp=np.concatenate(blobs),
        offsets=np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64),
        votes=votes,
        rows=np.arange(n, dtype=np.int64),
        fer2013=votes.argmax(1).astype(np.int64),
        shape=np.array(images.shape),
        digest=np.array(pixel_digest(images)),
    )


@pytest.mark.slow
def test_a_smoke_sweep_on_the_cpu_runs_one_epoch_a_stage(sweep, tmp_path: Path) -> None:
    """The wide job's own ``epochs`` outran the smoke run's one epoch (24 + 22 epochs), and
    two-stage smoke jobs failed on their warm-up of 1.1 epochs (round 29's range check)."""
    pack = tmp_path / "pack.npz"
    _fake_pack(sweep, pack)
    out = tmp_path / "out"
    argv = ["--pack", str(pack), "--jobs", "w78-s0", "ctrl-m0", "--parallel", "2"]
    argv += ["--device", "cpu", "--smoke", "--out", str(out), "--work", str(tmp_path / "w")]
    assert sweep.main(argv) == 0
    doc = json.loads((out / "summary.json").read_text())
    assert doc["w78-s0"]["stage1"]["epoch"] == 1 and doc["w78-s0"]["stage2"]["epoch"] == 1
    assert doc["ctrl-m0"]["stage2"]["epoch"] == 1 and doc["w78-s0"]["seed"] == 0
    got = _members(out)
    assert "w78-s0/stage2/model.safetensors" in got and "ctrl-m0/stage2/model.safetensors" in got
    assert len(list(out.iterdir())) <= sweep.OUT_FILES


# Round 34: `--park DIR --pack FILE` with no pack at FILE counted it as 0 MiB carried, said
# all would fit and parked: the call would then have run without its data.


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_park_refuses_a_pack_that_is_not_there(
    sweep, checkout: Path, tmp_path: Path, capsys: pytest.CaptureFixture, kind: str
) -> None:
    pack = tmp_path / ".gpu" / "ferplus-train.pack.npz"
    if kind == "folder":
        pack.mkdir(parents=True)
    parked = tmp_path / "parked"
    rc = sweep.main(["--park", str(parked), "--pack", str(pack), "--jobs", "ctrl-m0"])
    cap = capsys.readouterr()
    assert rc != 0 and cap.out == ""  # was 0 with "+ 0.0 MiB carried"
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and str(pack) in lines[0] and "--make-pack" in lines[0], cap.err
    assert ("no such file" if kind == "missing" else "not a file") in lines[0]
    assert (checkout / "runs/other/state.pt").is_file()  # nothing parked
    assert not (parked / "parked.txt").exists()


def test_park_counts_a_pack_that_is_there(
    sweep, checkout: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pack = tmp_path / "pack.npz"
    _file(pack, 3 * MiB)
    parked = tmp_path / "parked"
    assert sweep.park(parked, ["ctrl-m0"], None, pack) == 0
    assert "+ 3.0 MiB carried" in capsys.readouterr().out
    assert not (checkout / "runs/other/state.pt").exists()
    assert sweep.unpark(parked) == 0
    assert _git(checkout, "status", "--porcelain") == ""  # everything back
