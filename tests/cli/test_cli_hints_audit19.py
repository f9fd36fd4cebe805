"""Nineteenth audit round, hints: what `tag` and `classify` tell a new user is true and
runnable, options a mode does not read are refused, and the docs name real modules
(each test failed before its fix)."""

from __future__ import annotations

import logging
import re
import sys
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from cli_run import one_line, run, stub_cli_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
from stub_embedder import StubEmbedder, write_images

ROOT = Path(__file__).resolve().parents[2]
BUILD = "`exprsim classify --build-reference --ref-out FILE.npz`"


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> StubEmbedder:
    monkeypatch.chdir(tmp_path)  # a file written by mistake lands here, never in the checkout
    monkeypatch.setenv("EXPRSIM_FER_DIR", str(tmp_path / "no-fer"))  # calibrate reads nothing
    return stub_cli_model(monkeypatch, StubEmbedder())


@pytest.fixture
def tag_db(tmp_path: Path, stub: StubEmbedder, capsys: pytest.CaptureFixture) -> Path:
    """An index holding one reference face ("alpha") and, indexed, the same face."""
    img = write_images(tmp_path / "imgs", 1)[0]
    db = tmp_path / "t.db"
    assert run(capsys, "tag", "add", "alpha", str(img), "--db", str(db))[0] == 0
    assert run(capsys, "index", "add", str(img), "--db", str(db))[0] == 0
    return db


# ----------------------------------------------------------------------------- tag --index


def test_tag_index_without_db_says_db_is_required(stub, tmp_path, capsys) -> None:
    """Before: "None: no such database (create one with `... --db None`)"."""
    rc, _, err = run(capsys, "tag", "--index")
    assert rc == 2 and one_line(err).endswith("tag --index: --db FILE is required")
    assert "None" not in err and not list(Path.cwd().iterdir())


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--html", "ti.html"], "--html"),
        (["-o", "ti.csv"], "--out"),
        (["--face", "2"], "--face"),
        (["--data-dir", "/nonexistent"], "--data-dir"),
        (["--detector", "haar"], "--detector"),
        (["--html", "ti.html", "-o", "ti.csv"], "--out, --html"),
    ],
)
def test_tag_index_alone_refuses_options_it_does_not_read(
    flags: list[str], named: str, tag_db: Path, tmp_path: Path, capsys
) -> None:
    """Before: "tagged 1 indexed faces", exit 0, and no ti.html or ti.csv written."""
    rc, out, err = run(capsys, "tag", "--index", "--db", str(tag_db), *flags)
    assert rc == 2 and one_line(err).endswith(f"tag --index does not take {named}")
    assert "tagged" not in out
    assert not (tmp_path / "ti.html").exists() and not (tmp_path / "ti.csv").exists()


def test_tag_index_alone_still_retags(tag_db: Path, capsys) -> None:
    rc, out, _ = run(capsys, "tag", "--index", "--db", str(tag_db), "--threshold", "0.5")
    assert rc == 0 and out.startswith("tagged 1 indexed face")


def test_tag_calibrate_refuses_db(stub, tmp_path, capsys) -> None:
    """Before: --db was ignored without a word (calibrate never opens an index)."""
    rc, _, err = run(capsys, "tag", "calibrate", "--db", str(tmp_path / "nonexist.db"))
    assert rc == 2 and one_line(err).endswith("tag calibrate does not take --db")


# ----------------------------------------------------------------------------- missing --db


@pytest.mark.parametrize(
    "argv",
    [["tag", "IMG"], ["tag", "list"], ["tag", "remove", "alpha"]],
)
def test_tag_on_a_missing_db_suggests_tag_add(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Before: `exprsim index add PATH --db missing.db`, after which the same command said
    the database holds no reference faces. Now checked before the model loads."""
    import exprsim.cli.apps_cmd as apps_cmd

    def no_model(args):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(apps_cmd, "_embedder", no_model)
    img = write_images(tmp_path / "imgs", 1)[0]
    missing = tmp_path / "missing.db"
    argv = [str(img) if a == "IMG" else a for a in argv]
    rc, _, err = run(capsys, *argv, "--db", str(missing))
    line = one_line(err)
    assert rc == 2 and f"create one with `exprsim tag add NAME IMAGE --db {missing}`" in line
    assert "index add" not in line and not missing.exists()


def test_other_commands_keep_the_index_add_hint(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "missing.db"
    rc, _, err = run(capsys, "index", "info", "--db", str(missing))
    assert rc == 2 and f"`exprsim index add PATH --db {missing}`" in one_line(err)


# ----------------------------------------------------------------------------- classify


def test_classify_images_refuse_data_dir(stub, tmp_path, capsys) -> None:
    """Before: `classify IMAGE... --data-dir DIR` ignored --data-dir (FER+ is not read)."""
    img = write_images(tmp_path / "imgs", 1)[0]
    rc, _, err = run(capsys, "classify", str(img), "--data-dir", str(tmp_path / "nope"))
    assert rc == 2
    assert one_line(err).endswith("--data-dir is an option of --evaluate or --build-reference")


@pytest.mark.parametrize(
    ("argv", "refused"),
    [
        (["--build-reference", "--ref-out", "r.npz", "-k", "5"], "-k"),
        (["--build-reference", "--ref-out", "r.npz", "--reference", "x.npz"], "--reference"),
        (["--build-reference", "--ref-out", "r.npz", "--detector", "haar"], "--detector"),
        (["--build-reference", "--ref-out", "r.npz", "--html", "r.html"], "--html"),
        (["--build-reference", "--ref-out", "r.npz", "-o", "r.csv"], "-o"),
        (["--build-reference", "--ref-out", "r.npz", "--json", "r.json"], "--json"),
        (["--evaluate", "--detector", "haar"], "--detector"),
        (["--evaluate", "--html", "e.html"], "--html"),
    ],
)
def test_classify_modes_refuse_options_they_do_not_read(
    stub, tmp_path, capsys, monkeypatch, argv: list[str], refused: str
) -> None:
    """Before: accepted, ignored, exit 0 (no report written, no detector used)."""
    monkeypatch.chdir(tmp_path)
    rc, _, err = run(capsys, "classify", *argv)
    mode = argv[0]
    assert rc == 2 and one_line(err).endswith(f"classify {mode} does not take {refused}")
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("model", [None, "some/model-dir"])
@pytest.mark.parametrize("mode", ["IMAGE", "--evaluate"])
def test_classify_with_another_models_reference_names_the_cli_command(
    mode: str, model: str | None, stub, tmp_path, capsys
) -> None:
    """Before: "rebuild it with build_reference_set() for this model" (a Python name)."""
    img = write_images(tmp_path / "imgs", 1)[0]
    flags = ["--model", model] if model else []
    rc, _, err = run(capsys, "classify", str(img) if mode == "IMAGE" else mode, *flags)
    line = one_line(err)
    command = "--build-reference --ref-out FILE.npz" + (f" --model {model}" if model else "")
    assert rc == 2 and f"`exprsim classify {command}`" in line
    assert "--reference FILE.npz" in line and "build_reference_set" not in line
    assert "not stub@1" in line


def test_the_library_names_both_the_cli_command_and_the_function(tmp_path: Path) -> None:
    from exprsim.apps import classify as cl
    from exprsim.errors import ModelError

    img = write_images(tmp_path / "imgs", 1)[0]
    with pytest.raises(ModelError) as exc:
        cl.classify_images([img], StubEmbedder(), cl.load_reference_set())
    assert BUILD in str(exc.value) and "build_reference_set()" in str(exc.value)


def test_a_missing_reference_path_is_not_said_to_ship_with_the_model(
    stub, tmp_path, capsys
) -> None:
    """Before: "it ships with the trained default model; build one with `exprsim classify
    --build-reference`" (untrue of a typed path, and --ref-out is required)."""
    img = write_images(tmp_path / "imgs", 1)[0]
    missing = tmp_path / "missing.npz"
    rc, _, err = run(capsys, "classify", str(img), "--reference", str(missing))
    line = one_line(err)
    assert rc == 2 and f"no kNN reference set at {missing}: no such file" in line
    assert "ships with" not in line and BUILD in line


def test_a_missing_shipped_reference_names_a_runnable_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exprsim.apps import classify as cl
    from exprsim.errors import ModelError

    monkeypatch.setattr(cl, "reference_path", lambda: tmp_path / "ferplus.npz")
    with pytest.raises(ModelError) as exc:
        cl.load_reference_set()
    assert "it ships with the trained default model" in str(exc.value)
    assert BUILD in str(exc.value)


def test_a_reference_with_zero_rows_names_a_runnable_command(stub, tmp_path, capsys) -> None:
    from exprsim.data.fer import FERPLUS_CLASSES

    emb = np.eye(4, 16, dtype=np.float32)
    emb[3] = 0.0
    zero = tmp_path / "zero.npz"
    np.savez(
        zero,
        embeddings=emb,
        labels=np.arange(4),
        classes=np.array(FERPLUS_CLASSES),
        model=np.array("stub@1"),
        k=np.array(1),
        meta=np.array("{}"),
    )
    img = write_images(tmp_path / "imgs", 1)[0]
    rc, _, err = run(capsys, "classify", str(img), "--reference", str(zero))
    line = one_line(err)
    assert rc == 2 and "all zero, the first at row 3" in line and BUILD in line


# ----------------------------------------------------------------------------- summarize


def test_summarize_warns_in_the_singular_for_one_face(
    stub, tmp_path, capsys, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: "only 1 faces: 1 clusters instead of 3"."""
    img = write_images(tmp_path / "imgs", 1)[0]
    with caplog.at_level(logging.WARNING, logger="exprsim.apps.summarize"):
        rc, _, _ = run(capsys, "summarize", str(img), "-n", "3")
    assert rc == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "exprsim.apps.summarize"]
    assert "only 1 face: 1 cluster instead of 3" in warnings


# ----------------------------------------------------------------------------- docs


def _exists(name: str) -> bool:
    """``name`` is a module, or an attribute of one."""
    if find_spec(name) is not None:
        return True
    parent, _, attr = name.rpartition(".")
    return bool(parent) and _exists(parent) and hasattr(import_module(parent), attr)


def test_the_layering_rule_names_real_modules() -> None:
    """Before: it forbade `exprsim.train`, `exprsim.fec.train`, `exprsim.pvae.train`,
    none of which exists."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rule = text[text.index("## The rule") :]
    names = set(re.findall(r"`(exprsim(?:\.\w+)+)`", rule))
    assert {"exprsim.training", "exprsim.losses", "exprsim.cli"} <= names
    missing = sorted(n for n in names if not _exists(n))
    assert not missing, missing


def test_the_readme_says_odd_one_out_may_be_none() -> None:
    line = next(ln for ln in (ROOT / "README.md").read_text().splitlines() if ".odd_one_out" in ln)
    assert "None" in line.partition("#")[2]
