"""Round 34: ``exprsim ensemble --out`` holds the run folder's lock while it composes, as
``exprsim train`` does (:func:`exprsim.training.run.run_lock`): two compositions exporting
into one folder within milliseconds paired one's config with the other's weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cli_run import one_line, run

from exprsim.training.run import LOCK_NAME, _lock_held, run_lock


def _runs(tmp_path: Path) -> list[str]:
    """Two folders that pass the CLI's check of finished runs (``config.json``)."""
    out = []
    for name in "ab":
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
        out.append(str(tmp_path / name))
    return out


@pytest.fixture
def compositions(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """``compose_ensemble`` replaced by a stub; the list says, for each composition, whether
    the ``--out`` folder's lock was held while it ran (what a second one would see)."""
    import exprsim.training.ensemble as ensemble

    seen: list[bool] = []

    def compose(runs: Any, out: Any, **kw: Any) -> dict[str, Any]:
        seen.append(_lock_held(Path(out) / LOCK_NAME))
        return {"chosen": {"e_block": "all", "angle": 0.0, "score": 0.5}}

    monkeypatch.setattr(ensemble, "compose_ensemble", compose)
    return seen


def test_ensemble_composes_holding_the_out_folders_lock(
    tmp_path: Path, compositions: list[bool], capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "ens"
    rc, stdout, err = run(capsys, "ensemble", *_runs(tmp_path), "--out", str(out))
    assert rc == 0, err
    assert compositions == [True]  # was False: nothing kept a second composition out
    assert "ensemble of 2" in stdout
    assert not (out / LOCK_NAME).exists()  # the lock file goes with the lock


def test_ensemble_refuses_an_out_another_composition_holds(
    tmp_path: Path, compositions: list[bool], capsys: pytest.CaptureFixture
) -> None:
    out, runs = tmp_path / "ens", _runs(tmp_path)
    with run_lock(out):  # another composition (or training) is writing there now
        rc, _, err = run(capsys, "ensemble", *runs, "--out", str(out))
    line = one_line(err)
    assert rc != 0 and compositions == []  # was 0: composed into the folder the other wrote
    assert "another" in line and str(out) in line and "--out" in line
