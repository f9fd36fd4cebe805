"""A full disk for tests: Python code run in a child process whose files cannot grow past a
limit (``RLIMIT_FSIZE`` with ``SIGXFSZ`` ignored: a write past it fails with ``EFBIG``, as
one on a full disk fails with ``ENOSPC``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

TESTS = str(Path(__file__).resolve().parent)


def cache_env(folder: Path) -> dict[str, str]:
    """The environment with the libraries' own caches (matplotlib's font list, XDG caches)
    under ``folder/.caches``: a limited child must not cut the user's cache files."""
    caches = Path(folder) / ".caches"
    return {**os.environ, "MPLCONFIGDIR": str(caches / "mpl"), "XDG_CACHE_HOME": str(caches)}


def run_with_file_limit(
    code: str,
    limit: int,
    cwd: Path,
    *,
    args: Sequence[str] = (),
    before: str = "",
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (dedented; ``sys.argv[1:]`` is ``args``, the tests folder is on
    ``sys.path``) in a Python child in ``cwd`` whose files cannot grow past ``limit``
    bytes; ``before`` runs first, without the limit (e.g. imports that fill a cache)."""
    full = (
        f"import sys; sys.path.insert(0, {TESTS!r})\n"
        + textwrap.dedent(before)
        + "import resource, signal\n"
        + "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        + f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
        + textwrap.dedent(code)
    )
    return subprocess.run(
        [sys.executable, "-c", full, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cache_env(cwd),
    )
