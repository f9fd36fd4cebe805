"""Round 33 (the process's limits audit): ``--html /dev/stdout > out.html`` wrote the page
through a second opening of the file, which left stdout's offset behind: the next line
printed overwrote the page's first bytes (``<!doctype html>`` gone, exit 0)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import sys
from pathlib import Path
from exprsim.io import install
print("before", flush=True)
tmp = Path(sys.argv[1])
tmp.write_bytes(b"<!doctype html><p>page</p>\\n")
install(tmp, Path("/dev/stdout"))
print("after")
"""


@pytest.mark.skipif(not Path("/dev/stdout").exists(), reason="no /dev/stdout here")
def test_a_page_written_to_stdout_redirected_to_a_file_is_whole(tmp_path: Path) -> None:
    out = tmp_path / "out.html"
    with open(out, "wb") as fh:  # the shell's `>`: not an append
        proc = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(tmp_path / "page.tmp")],
            stdout=fh, stderr=subprocess.PIPE, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == b"before\n<!doctype html><p>page</p>\nafter\n"
