"""The README's Python and shell examples run, as written, on the bundled samples.

Each fenced ``python`` / ``bash`` block runs in a fresh temporary folder (never in the
repository), holding a copy of the bundled samples at ``src/exprsim/samples``, so the
shell tour's ``S=src/exprsim/samples`` works unchanged. A block preceded by
``<!-- readme-test: skip (why) -->`` is reported as skipped with that reason (it needs
``../shared/data``, the internet, or hours).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from exprsim.samples import sample_dir

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s*\((.+)\)\s*-->")
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True)
class Block:
    lang: str
    line: int
    code: str
    skip: str | None


def readme_blocks(text: str) -> list[Block]:
    """The fenced ``python`` and ``bash`` blocks, with the skip reason of each (or None)."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or not m.group(1):
            i += 1
            continue
        start = i
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        before = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        skip = SKIP.search(before)
        if m.group(1) in ("python", "bash"):
            blocks.append(
                Block(m.group(1), start + 1, "\n".join(body) + "\n", skip and skip.group(1))
            )
    return blocks


BLOCKS = readme_blocks(README.read_text())


def test_the_readme_has_runnable_examples() -> None:
    assert {b.lang for b in BLOCKS if b.skip is None} == {"python", "bash"}
    assert all(b.skip for b in BLOCKS if "make " in b.code)  # never recurse into make test


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty folder holding a copy of the bundled samples at ``src/exprsim/samples``."""
    shutil.copytree(
        sample_dir(),
        tmp_path / "src" / "exprsim" / "samples",
        ignore=shutil.ignore_patterns("*.py", "__pycache__"),
    )
    return tmp_path


def _run(block: Block, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # `exprsim` from this interpreter's environment; no writes into the repository
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    if block.lang == "python":
        cmd = [sys.executable, "-c", block.code]
    else:
        cmd = ["bash", "-euo", "pipefail", "-c", block.code]
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False
    )


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.lang}-line{b.line}" for b in BLOCKS])
def test_readme_block_runs(block: Block, workdir: Path) -> None:
    if block.skip:
        pytest.skip(f"README line {block.line}: {block.skip}")
    res = _run(block, workdir)
    assert res.returncode == 0, (
        f"README line {block.line} ({block.lang}) failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    )
    if block.lang == "bash":  # what the tour says it writes
        for name in ("faces.csv", "faces.parquet", "faces.db", "search.html", "emotions.html"):
            assert (workdir / name).is_file(), name
        assert (workdir / "video-report" / "report.html").is_file()
    else:
        assert (workdir / "faces.db").is_file()
