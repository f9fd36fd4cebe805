"""Commands that must refuse, or say they produced nothing, instead of overwriting or
ignoring (the fourth robustness round, docs/robustness.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from exprsim.cli import main


def test_build_reference_needs_an_explicit_npz_target(tmp_path, capsys):
    from exprsim.apps.classify import reference_path

    before = reference_path().stat().st_mtime_ns
    assert main(["classify", "--build-reference"]) == 2  # was: overwrote the shipped set
    err = capsys.readouterr().err
    assert "--ref-out" in err and len(err.strip().splitlines()) == 1
    assert main(["classify", "--build-reference", "--ref-out", str(tmp_path / "r")]) == 2
    assert ".npz" in capsys.readouterr().err
    missing = tmp_path / "no" / "such" / "r.npz"
    assert main(["classify", "--build-reference", "--ref-out", str(missing)]) == 2
    assert reference_path().stat().st_mtime_ns == before


def test_ensemble_refuses_to_overwrite_a_member_or_a_run(tmp_path, capsys):
    run = tmp_path / "a"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "train_config.json").write_text("{}")
    assert main(["ensemble", str(run), str(run), "--out", str(run)]) == 2
    assert "one of the members" in capsys.readouterr().err
    other = tmp_path / "b"
    other.mkdir()
    (other / "train_config.json").write_text("{}")
    assert main(["ensemble", str(run), "--out", str(other)]) == 2
    assert "training run folder" in capsys.readouterr().err


def test_fec_evaluation_writes_json_and_fails_when_nothing_was_scored(
    tmp_path, capsys, monkeypatch
):
    import exprsim.fec.evaluate as fe

    result = SimpleNamespace(n_triplets=0, to_dict=lambda: {"n_triplets": 0})
    monkeypatch.setattr(fe, "evaluate_fec", lambda *a, **k: result)
    args = ["evaluate", "--fec-test", "t.csv", "--fec-crops", str(tmp_path)]
    assert main([*args, "--also", "x"]) == 2  # was silently ignored
    capsys.readouterr()
    out = tmp_path / "fec.json"
    assert main([*args, "--json", str(out)]) == 1  # was 0 with "0/2 triplets"
    assert out.read_text().strip() == '{\n  "n_triplets": 0\n}'
    assert "no triplet" in capsys.readouterr().err


def test_fec_crop_with_nothing_cropped_is_a_failure(tmp_path, capsys, monkeypatch):
    import exprsim.fec.crops as crops

    report = SimpleNamespace(n_indexed=0, n_faces=4, to_text=lambda: "crops: 0/4 faces")
    monkeypatch.setattr(crops, "build_crops", lambda *a, **k: report)
    assert main(["fec", "crop", "x.csv", "--data", str(tmp_path)]) == 1
    assert "no face could be cropped" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(tmp_path):
    code = (
        "import exprsim.cli.model_cmd as m\n"
        "def flood(args):\n"
        "    for _ in range(100000):\n"
        "        print('x' * 70)\n"
        "    return 0\n"
        "m.cmd_models = flood\n"
        "from exprsim.cli import main\n"
        "raise SystemExit(main(['models']))\n"
    )
    proc = subprocess.run(
        f"'{sys.executable}' -c \"{code}\" | head -c 10",
        shell=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
        timeout=120,
    )
    assert proc.stdout == "x" * 10
    assert "error" not in proc.stderr.lower() and "Traceback" not in proc.stderr


def test_index_commands_say_when_they_did_nothing(tmp_path, capsys):
    db = str(tmp_path / "x.db")
    assert main(["index", "add", "--db", db, "photos", "--from-parquet", str(tmp_path)]) == 2
    assert "PATH unused" in capsys.readouterr().err  # was silently ignored
    import numpy as np
    import pandas as pd

    from exprsim.index.store import FaceIndex

    row = {"source": str(tmp_path / "a.jpg"), **{f"e{i}": float(i == 0) for i in range(16)}}
    with FaceIndex(db) as ix:
        ix.add_table(pd.DataFrame([row]), model="stub@1")
        assert len(ix) == 1 and np.isfinite(ix.embeddings()[1]).all()
    assert main(["index", "remove", "--db", db, str(tmp_path / "typo")]) == 1
    assert "no indexed file" in capsys.readouterr().err  # was "removed 0 files", exit 0


def test_a_postgresql_failure_is_one_line(capsys, monkeypatch):
    import exprsim.cli.model_cmd as m

    AdminShutdown = type("AdminShutdown", (Exception,), {"__module__": "psycopg.errors"})

    def boom(args):
        raise AdminShutdown(
            "terminating connection due to administrator command\nDETAIL: password=s3cret"
        )

    monkeypatch.setattr(m, "cmd_models", boom)
    assert main(["models"]) == 2  # was a traceback, exit 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "PostgreSQL: terminating connection" in err
