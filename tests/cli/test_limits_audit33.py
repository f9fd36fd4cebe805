"""Round 33 (the process's limits audit): a command a resource limit stopped said so in one
line naming the limit, not a raw traceback or a damaged-looking file; the soft limits of
open files and stack are raised where the hard ones allow."""

from __future__ import annotations

import errno
import resource
import subprocess
import sys

import pytest
from cli_run import one_line, run

from exprsim.cli import limits


def _fail_with(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    from exprsim.cli import model_cmd

    def boom(args):  # the `models` command, stopped by the limit
        raise exc

    monkeypatch.setattr(model_cmd, "cmd_models", boom)


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (OSError(errno.EMFILE, "Too many open files", "/x/cv2/__init__.py"), "ulimit -n"),
        (OSError(errno.EFBIG, "File too large", "x.db-wal"), "file too large"),
        (MemoryError(), "not enough memory"),
        (ImportError("libtorch_cpu.so: failed to map segment from shared object"), "memory"),
        (RuntimeError("can't start new thread"), "cannot start a thread"),
    ],
)
def test_a_limit_is_one_line(monkeypatch, capsys, exc, words) -> None:
    _fail_with(monkeypatch, exc)
    rc, _, err = run(capsys, "models")
    assert rc == 2 and words in one_line(err), err
    assert "cv2/__init__.py" not in err  # a random module's file is not the cause


def test_another_runtime_error_is_not_hidden(monkeypatch, capsys) -> None:
    _fail_with(monkeypatch, RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        run(capsys, "models")


def test_soft_limits_are_raised_where_the_hard_ones_allow() -> None:
    """Soft limits of 20 open files and 512 KB of stack (what the audit's shell set): the
    CLI raises them to the hard open-file limit and 8 MB of stack."""
    code = (
        "import resource as r, exprsim.cli.limits as l; l.raise_soft_limits();"
        "print(*r.getrlimit(r.RLIMIT_NOFILE), *r.getrlimit(r.RLIMIT_STACK))"
    )
    cmd = f"ulimit -Sn 20; ulimit -Ss 512; {sys.executable} -c '{code}'"
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    soft_n, hard_n, soft_s, hard_s = map(int, out.stdout.split())
    assert soft_n == (hard_n if hard_n != resource.RLIM_INFINITY else 65536)  # was 20
    want = (
        limits.STACK_BYTES if hard_s == resource.RLIM_INFINITY else min(hard_s, limits.STACK_BYTES)
    )
    assert soft_s == want  # was 512 KB


def test_a_file_size_limit_and_no_descriptors_left_are_named() -> None:
    code = (
        "import resource as r, os, sqlite3;"
        "from exprsim.index.backends import size_limit_note, _open_failure;"
        "from pathlib import Path;"
        "print(size_limit_note());"
        "r.setrlimit(r.RLIMIT_NOFILE, (12, r.getrlimit(r.RLIMIT_NOFILE)[1]));"
        "fds = []\n"
        "try:\n"
        "    while True: fds.append(os.open(os.devnull, os.O_RDONLY))\n"
        "except OSError: pass\n"
        "print(_open_failure(Path('x.db'), sqlite3.OperationalError('unable to open database file')))"
    )
    cmd = f'ulimit -Sf 100; {sys.executable} -c "{code}"'
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    lines = out.stdout.splitlines()
    assert "file-size limit (ulimit -f: 102,400 bytes)" in lines[0], out
    assert "too many open files" in lines[1] and "not a usable" not in lines[1], out
