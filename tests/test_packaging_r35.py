"""Round 35 (a packaging audit): the source distribution holds the whole test suite, the
docs, configs and scripts (it held 43 top-level test files and no conftest.py, so its tests
did not even collect), never runs/; the version has one source, exprsim.__version__."""

from __future__ import annotations

import email
import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import exprsim

ROOT = Path(__file__).resolve().parents[1]
#: folders of the repository whose every file the sdist must hold
SHIPPED = ("tests", "docs", "configs", "scripts", "src")
#: files of runs/ copied for the build (the large checkpoints are left out: copying them
#: only slows the test; a runs/ that got in would show with the small files alone)
RUNS_COPIED_UNDER = 1 << 20


def _repository_files() -> list[str]:
    """The files git has, or would have once added (tracked, and untracked but not
    ignored: a file just written by this round); skips when there is no git checkout."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the list of the repository's files is unknown")
    if not (ROOT / ".git").exists():
        pytest.skip(f"{ROOT} is not a git checkout: the list of its files is unknown")
    done = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"git ls-files failed: {done.stderr.decode(errors='replace').strip()}")
    names = [n for n in done.stdout.decode().split("\0") if n]
    return [n for n in names if (ROOT / n).is_file()]  # a tracked file deleted meanwhile


def _copy(names: list[str], dest: Path) -> None:
    for name in names:
        src = ROOT / name
        if name.startswith("runs/") and src.stat().st_size >= RUNS_COPIED_UNDER:
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / name)


def _build(backend_call: str, tree: Path, out: Path) -> str:
    """Run ``setuptools.build_meta.<backend_call>(out)`` in a child process working in
    ``tree`` (nothing is written into the real checkout); returns what it returned."""
    out.mkdir()
    code = f"import sys, setuptools.build_meta as b\nprint(b.{backend_call}(sys.argv[1]))\n"
    done = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_the_sdist_holds_tests_docs_configs_scripts_and_no_runs(tmp_path: Path) -> None:
    names = _repository_files()
    tree = tmp_path / "tree"
    _copy(names, tree)
    sdist = tmp_path / "dist" / _build("build_sdist", tree, tmp_path / "dist")
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]  # exprsim-<version>/
        held = {m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile() and "/" in m.name}
    assert top.startswith("exprsim-")
    wanted = {n for n in names if n.split("/")[0] in SHIPPED and "__pycache__" not in n}
    missing = sorted(wanted - held)
    assert not missing, f"{len(missing)} files not in the sdist, such as {missing[:10]}"
    assert not [n for n in held if n.startswith("runs/")], "runs/ went into the sdist"
    copied_runs = [n for n in names if n.startswith("runs/") and (tree / n).is_file()]
    assert copied_runs or not any(n.startswith("runs/") for n in names)  # the check means it
    for name in ("Makefile", "README.md", "LICENSE", "NOTICE", "MANIFEST.in", "pyproject.toml"):
        assert name in held, name
    assert "tests/conftest.py" in held and not [n for n in held if n.endswith(".pyc")]


def _version_tree(dest: Path, version: str) -> None:
    """The files the package's metadata is made from, with ``__version__`` set to
    ``version`` in the copy."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "NOTICE", "MANIFEST.in"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, dest / name)
    package = dest / "src" / "exprsim"
    (package / "samples").mkdir(parents=True)
    shutil.copy2(ROOT / "src/exprsim/samples/LICENSES.md", package / "samples" / "LICENSES.md")
    init = (ROOT / "src/exprsim/__init__.py").read_text()
    line = f'__version__ = "{exprsim.__version__}"'
    assert line in init
    (package / "__init__.py").write_text(init.replace(line, f'__version__ = "{version}"'))


def test_the_version_is_exprsims_own(tmp_path: Path) -> None:
    """pyproject said version = "0.1.0" beside __version__ = "0.1.0": tied by nothing."""
    tree = tmp_path / "tree"
    _version_tree(tree, "9.8.7")
    info = _build("prepare_metadata_for_build_wheel", tree, tmp_path / "meta")
    meta = email.message_from_string((tmp_path / "meta" / info / "METADATA").read_text())
    assert meta["Version"] == "9.8.7"  # was 0.1.0, whatever __version__ said
    files = meta.get_all("License-File") or []
    assert {"LICENSE", "NOTICE", "src/exprsim/samples/LICENSES.md"} <= set(files), files
    assert meta["License-Expression"] == "MIT"
    classifiers = meta.get_all("Classifier") or []
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert "Programming Language :: Python :: 3.12" in classifiers


def test_the_installed_version_is_exprsims() -> None:
    assert importlib.metadata.version("exprsim") == exprsim.__version__


def test_the_notice_names_what_is_not_mit() -> None:
    notice = (ROOT / "NOTICE").read_text()
    for part in ("src/exprsim/samples/LICENSES.md", "Pexels License", "FER2013", "FER+"):
        assert part in notice, part
    for name in ("src/exprsim/models/weights", "src/exprsim/apps/reference/ferplus.npz"):
        assert name in notice, name
