"""``unfinished_export`` judges a run stopped on its ``max_seconds`` budget by the steps
its files record (round 35): the last row of ``history.json`` (written at the end of the
call, after the model) against the checkpoint's step. It compared the modification times
of ``result.json`` and ``state.pt``, so a clock set back between the two writes gave
``exprsim evaluate`` a false "was extended to 200 iterations but stopped after 5", and a
clock set back before the checkpoint hid a run killed after it. A folder without a
history (an older or another recipe's) is still judged by the times."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from exprsim.training.run import RunFolder, unfinished_export

HOUR_NS = 3600 * 10**9


def _pvae(**kw: Any) -> dict[str, Any]:
    return {
        "kind": "pvae", "model": "pvae-vae", "data": "synthetic", "latent_dim": 4,
        "iterations": 200, "batch_size": 20, "eval_every": 5, "anneal_iterations": 10,
        "max_train": 100, "max_seconds": 0, **kw,
    }  # fmt: skip


def _shift(path: Path, ns: int) -> None:
    """Move ``path``'s modification time by ``ns`` nanoseconds (a clock set off)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + ns))


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pvae run of 200 iterations stopped on its time budget at the first checkpoint."""
    from exprsim.training import train_from_dict

    out = tmp_path_factory.mktemp("budget")
    res = train_from_dict(_pvae(), out, progress=False)
    assert res.iterations_run == 5
    rows = json.loads((out / "history.json").read_text())
    assert rows[-1]["iteration"] == 5  # what the check reads: the step the call ended at
    return out


def _copy(run: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(run, to, copy_function=shutil.copy2)  # modification times kept
    return to


def test_a_clock_set_back_after_the_checkpoint_is_no_false_warning(
    budget_run: Path, tmp_path: Path
) -> None:
    run = _copy(budget_run, tmp_path / "run")
    for name in ("history.json", "result.json"):  # written an hour "before" state.pt
        _shift(run / name, -HOUR_NS)
    assert unfinished_export(run) is None  # was "was extended to 200 ... stopped after 5"


def test_a_call_killed_after_its_checkpoint_is_found_whatever_the_clock(
    budget_run: Path, tmp_path: Path
) -> None:
    """A later call checkpointed step 10 and was killed before the end (no new history,
    result or model); its clock was an hour behind: state.pt is the oldest file."""
    run = _copy(budget_run, tmp_path / "run")
    RunFolder(run).save_state({"iteration": 10})
    _shift(run / "state.pt", -2 * HOUR_NS)
    words = unfinished_export(run) or ""  # was None: result.json looked newer
    assert "was extended to 200 iterations but stopped after 10" in words


def test_a_run_without_a_history_is_judged_by_the_times(budget_run: Path, tmp_path: Path) -> None:
    """Guard (as before): no history.json, so result.json's time against state.pt's."""
    run = _copy(budget_run, tmp_path / "run")
    (run / "history.json").unlink()
    assert unfinished_export(run) is None
    _shift(run / "result.json", -HOUR_NS)
    assert "stopped after 5" in (unfinished_export(run) or "")


@pytest.mark.parametrize("text", ["[]", "{}", "not json", '[{"val_loss": 1.0}]', "[true]"])
def test_an_unreadable_history_falls_back_to_the_times(
    budget_run: Path, tmp_path: Path, text: str
) -> None:
    run = _copy(budget_run, tmp_path / "run")
    (run / "history.json").write_text(text)
    _shift(run / "result.json", HOUR_NS)  # newer: finished by the times
    assert unfinished_export(run) is None
    _shift(run / "result.json", -2 * HOUR_NS)
    assert "stopped after 5" in (unfinished_export(run) or "")


def test_a_lock_file_that_is_a_link_is_followed_as_run_lock_does(tmp_path) -> None:
    """Review: `_lock_held` refused to follow a linked .lock (O_NOFOLLOW) while run_lock
    locks its target: "nobody trains here" during a training."""
    from exprsim.training.run import LOCK_NAME, _lock_held, run_lock

    out = tmp_path / "run"
    out.mkdir()
    target = tmp_path / "elsewhere.lock"
    target.write_bytes(b"")
    (out / LOCK_NAME).symlink_to(target)
    with run_lock(out):
        assert _lock_held(out / LOCK_NAME)
