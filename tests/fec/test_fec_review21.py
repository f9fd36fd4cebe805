"""Review of audit 21: the no-network stop on a working network (one dead host first, slow
servers), TLS and proxy failures taken for no network, crop workers left running after
Ctrl-C or their parent's death, the crops lock of ``fetch --crop`` and on file systems
without locks, a finished run reported as interrupted, and a complete download recorded as
a timeout when the deadline fired just after it. Each test failed before its fix (those
named ``guard`` pin behaviour that did not change).

Servers are on 127.0.0.0/8 (no outside network); timeouts are tiny.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import multiprocessing as mp
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exprsim import workers as workers_mod
from exprsim.cli import main
from exprsim.data.fec import FaceBox, FecFace, TripletType, write_fec_csv
from exprsim.errors import ExprsimError
from exprsim.fec import crops as crops_mod
from exprsim.fec import fetch as fetch_mod
from exprsim.fec.crops import CropConfig, CropStore, build_crops
from exprsim.fec.fetch import FetchConfig, fetch_fec, open_manifest

from .conftest import NAMES, FecServer, face, fetched_photos, held_lock, row


def _csv(path: Path, urls: list[str]) -> Path:
    """One triplet per three URLs (repeating the last to fill up)."""
    urls = urls + [urls[-1]] * (-len(urls) % 3)
    rows = []
    for i in range(0, len(urls), 3):
        faces = tuple(FecFace(u, FaceBox(0.3, 0.7, 0.2, 0.8)) for u in urls[i : i + 3])
        rows.append(row(i + 1, faces, TripletType.ONE, "strong1"))  # type: ignore[arg-type]
    return write_fec_csv(rows, path)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dead(n: int, path: str = "x.jpg") -> list[str]:
    """URLs on ``n`` distinct loopback hosts where nothing listens (refused at once)."""
    port = _closed_port()
    return [f"http://127.0.0.{k + 2}:{port}/{path}" for k in range(n)]


class RawServer:
    """Accepts connections on 127.0.0.1 and answers each one ``answer`` once it read it."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.done.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            with contextlib.suppress(OSError), c:
                c.settimeout(2.0)
                c.recv(4096)
                c.sendall(self.answer)

    def close(self) -> None:
        self.done.set()
        self.sock.close()


@contextlib.contextmanager
def _raw(answer: bytes) -> Iterator[RawServer]:
    srv = RawServer(answer)
    try:
        yield srv
    finally:
        srv.close()


QUICK = {"workers": 2, "timeout": 1.0, "retries": 0, "backoff": 0.01}


# --------------------------------------------------------------------------- 1. no network


def test_one_dead_host_first_does_not_stop_a_run(fec_server: FecServer, tmp_path: Path) -> None:
    """12 URLs of a dead server before 3 of a working one: the run stopped after 4
    failures and never fetched the good ones (nor did any re-run: it tried the dead ones
    first again)."""
    dead = f"http://127.0.0.1:{_closed_port()}"
    urls = [f"{dead}/{i}.jpg" for i in range(12)] + [fec_server.url(f"img/{n}") for n in NAMES[:3]]
    csv = _csv(tmp_path / "d.csv", urls)
    cfg = FetchConfig(**QUICK, max_connect_failures=4)  # type: ignore[arg-type]
    rep = fetch_fec(csv, tmp_path / "o", cfg, progress=False)
    assert rep.stopped is None and not rep.interrupted
    assert rep.n_ok == 3 and rep.errors == {"connection": 12} and rep.n_missing == 0


def test_slow_working_servers_keep_a_run_going(fec_server: FecServer, tmp_path: Path) -> None:
    """Two slow downloads (connected, no answer yet) and refusals from 8 hosts: the stop
    fired after the fourth refusal and cut the working downloads."""
    fec_server.slow_seconds = 1.5
    urls = [fec_server.url(f"slow/{n}") for n in NAMES[:2]] + _dead(8)
    cfg = FetchConfig(workers=3, timeout=3.0, retries=0, max_connect_failures=4)
    rep = fetch_fec(_csv(tmp_path / "s.csv", urls), tmp_path / "o", cfg, progress=False)
    assert rep.stopped is None and not rep.interrupted
    assert rep.n_ok == 2 and rep.errors == {"connection": 8}


def test_no_network_on_many_hosts_still_stops(tmp_path: Path) -> None:
    rep = fetch_fec(
        _csv(tmp_path / "n.csv", _dead(20)),
        tmp_path / "o",
        FetchConfig(**QUICK, max_connect_failures=4),  # type: ignore[arg-type]
        progress=False,
    )
    assert rep.stopped is not None and rep.stopped.startswith("no network? ")
    assert (
        "failed to connect, to " in rep.stopped and " hosts, and no server answered" in rep.stopped
    )
    assert rep.interrupted and rep.n_missing > 0


def test_a_finished_run_is_not_reported_interrupted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """As many refusals as --max-connect-failures, and nothing left: the run ended."""
    dead = f"http://127.0.0.1:{_closed_port()}"
    csv = _csv(tmp_path / "f.csv", [f"{dead}/{i}.jpg" for i in range(6)])
    out = tmp_path / "o"
    argv = ["-q", "fec", "fetch", str(csv), "--out", str(out), "--retries", "0"]
    assert main([*argv, "--max-connect-failures", "6"]) == 1
    cap = capsys.readouterr()
    assert "(interrupted)" not in cap.out and "stopped:" not in cap.out
    err = cap.err.strip().splitlines()
    assert err == [
        "exprsim fec fetch: no file could be downloaded: 6 connection failures (no network?)"
    ]
    rep = fetch_mod.load_fetch_report(out)
    assert rep["interrupted"] is False and rep["stopped"] is None and rep["n_missing"] == 0


# --------------------------------------------------------------------------- 2. TLS, proxy


def test_a_tls_failure_means_a_server_answered(tmp_path: Path) -> None:
    """A server that does not speak TLS: a server answered; not a connection failure."""
    with _raw(b"HTTP/1.0 400 Bad Request\r\n\r\n") as srv:
        urls = [f"https://127.0.0.1:{srv.port}/{i}.jpg" for i in range(4)]
        cfg = FetchConfig(**QUICK, max_connect_failures=2)  # type: ignore[arg-type]
        rep = fetch_fec(_csv(tmp_path / "t.csv", urls), tmp_path / "o", cfg, progress=False)
    assert rep.stopped is None and rep.errors == {"tls": 4}
    assert rep.nothing_fetched() == "no file could be downloaded: 4 failed (tls 4)"


def test_a_certificate_failure_is_not_no_network(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def refuse(self: object) -> None:
        raise ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] self-signed")

    monkeypatch.setattr(fetch_mod._TrackedHTTPS, "connect", refuse)
    urls = [u.replace("http://", "https://") for u in _dead(6)]
    cfg = FetchConfig(**QUICK, max_connect_failures=3)  # type: ignore[arg-type]
    rep = fetch_fec(_csv(tmp_path / "c.csv", urls), tmp_path / "o", cfg, progress=False)
    assert rep.stopped is None and rep.errors == {"tls": 6}
    with open_manifest(tmp_path / "o") as man:
        row0 = next(iter(man.rows().values()))
    assert row0["transient"] == 1 and "CERTIFICATE_VERIFY_FAILED" in row0["error"]


def _proxy_env(monkeypatch: pytest.MonkeyPatch, proxy: str) -> None:
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("https_proxy", proxy)
    monkeypatch.setenv("http_proxy", proxy)


def test_a_proxy_refusing_the_tunnel_is_not_no_network(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with _raw(b"HTTP/1.0 407 Proxy Authentication Required\r\n\r\n") as srv:
        _proxy_env(monkeypatch, f"http://127.0.0.1:{srv.port}")
        urls = [u.replace("http://", "https://") for u in _dead(6)]
        cfg = FetchConfig(**QUICK, max_connect_failures=3)  # type: ignore[arg-type]
        rep = fetch_fec(_csv(tmp_path / "p.csv", urls), tmp_path / "o", cfg, progress=False)
    assert rep.stopped is None and rep.errors == {"proxy": 6}


def test_the_no_network_line_names_a_dead_proxy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    proxy = f"127.0.0.1:{_closed_port()}"
    _proxy_env(monkeypatch, f"http://someone:s3cret@{proxy}")
    urls = [u.replace("http://", "https://") for u in _dead(12)]
    cfg = FetchConfig(**QUICK, max_connect_failures=3)  # type: ignore[arg-type]
    rep = fetch_fec(_csv(tmp_path / "p.csv", urls), tmp_path / "o", cfg, progress=False)
    assert rep.stopped is not None and f"through the proxy http://{proxy}: is it up?" in rep.stopped
    assert "s3cret" not in rep.stopped


# --------------------------------------------------------------------------- 8. deadline race


def test_a_complete_download_is_kept_when_the_deadline_fires_just_after(
    fec_server: FecServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = fetch_mod._transfer

    def late(*args: object) -> tuple[bytes, str, int]:
        result = real(*args)  # type: ignore[arg-type]
        time.sleep(0.5)  # the timer fires here, before _download cancels it
        return result

    monkeypatch.setattr(fetch_mod, "_transfer", late)
    cfg = FetchConfig(workers=1, timeout=1.0, total_timeout=0.2, retries=0)
    csv = _csv(tmp_path / "r.csv", [fec_server.url(f"img/{NAMES[0]}")])
    rep = fetch_fec(csv, tmp_path / "o", cfg, progress=False)
    assert rep.n_ok == 1 and rep.errors == {}


# --------------------------------------------------------------------------- crops

BOX_ONLY = CropConfig(detector="none", shard_size=4)


def test_fetch_crop_checks_the_crops_lock_before_downloading(
    capsys: pytest.CaptureFixture[str], fec_server: FecServer, tmp_path: Path
) -> None:
    csv = write_fec_csv(
        [row(1, tuple(face(fec_server, n) for n in NAMES[:3]), TripletType.ONE, "strong1")],
        tmp_path / "f.csv",
    )
    out = tmp_path / "o"
    with held_lock(out / "crops" / ".lock"):
        argv = ["-q", "fec", "fetch", str(csv), "--out", str(out), "--crop", "--detector", "none"]
        assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert fec_server.image_hits() == 0
    assert len(err) == 1 and "another `exprsim fec crop` is writing" in err[0]
    assert "fetch without --crop" in err[0] and "another --out" not in err[0]


def test_fetch_crop_words_a_lock_taken_during_the_download(
    capsys: pytest.CaptureFixture[str],
    fec_server: FecServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    csv = write_fec_csv(
        [row(1, tuple(face(fec_server, n) for n in NAMES[:3]), TripletType.ONE, "strong1")],
        tmp_path / "f.csv",
    )
    monkeypatch.setattr(crops_mod, "check_store_free", lambda *a, **k: None)  # free then
    out = tmp_path / "o"
    with held_lock(out / "crops" / ".lock"):
        argv = ["-q", "fec", "fetch", str(csv), "--out", str(out), "--crop", "--detector", "none"]
        assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fetch without --crop" in err[0]


def test_guard_fec_crop_keeps_its_lock_advice(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    csv, data = fetched_photos(tmp_path)
    with held_lock(data / "crops" / ".lock"):
        argv = ["-q", "fec", "crop", str(csv), "--data", str(data), "--detector", "none"]
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert "wait for it to end, or crop into another --out" in err


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EOPNOTSUPP])
def test_a_file_system_without_locks_crops_unlocked(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, code: int
) -> None:
    csv, data = fetched_photos(tmp_path)

    def no_locks(fd: object, op: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with caplog.at_level(logging.WARNING, logger="exprsim.fec.crops"):
        rep = build_crops(csv, data, config=BOX_ONLY, progress=False)
    assert rep.n_new == 6 and len(CropStore(data)) == 6
    assert "cannot lock this crops folder" in caplog.text


def _gone(pid: int) -> bool:
    """``pid`` ended (a zombie left to a non-reaping init counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _ended(pid: int | None, within: float = 5.0) -> bool:
    """Whether ``pid`` ends within ``within`` seconds."""
    deadline = time.monotonic() + within
    while pid is not None and not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pid is not None and _gone(pid)


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc")


class _Sleeps:
    """Unpickled in a worker, it sleeps there: a job that runs for long."""

    def __reduce__(self) -> tuple[object, tuple[float]]:
        return (time.sleep, (20.0,))


class _Dies:
    """Unpickled in a worker, it ends the worker (as the OOM killer would)."""

    def __reduce__(self) -> tuple[object, tuple[int]]:
        return (os._exit, (3,))


@needs_proc
def test_closing_the_crop_pool_stops_its_workers_at_once(tmp_path: Path) -> None:
    """Ctrl-C (here: closing the job stream) waited for the running and queued jobs."""
    box = (0.3, 0.7, 0.2, 0.8)
    by_image = {str(tmp_path / "gone.jpg"): [("u0", box)], _Sleeps(): [("u1", box)]}
    by_image[_Sleeps()] = [("u2", box)]  # type: ignore[index]
    before = set(mp.active_children())
    jobs = crops_mod._run_jobs(by_image, CropConfig(detector="none", workers=2))  # type: ignore[arg-type]
    first = next(jobs)
    assert first[1] == "u0" and first[3] is None  # the missing image: a failed face
    workers = set(mp.active_children()) - before
    t0 = time.monotonic()
    done = threading.Thread(target=jobs.close, daemon=True)
    done.start()
    done.join(8.0)
    assert not done.is_alive() and time.monotonic() - t0 < 8.0
    assert len(workers) == 2 and all(_ended(p.pid) for p in workers)


def test_a_dead_crop_worker_names_the_cli_option(tmp_path: Path) -> None:
    box = (0.3, 0.7, 0.2, 0.8)
    by_image = {_Dies(): [("u0", box)], _Dies(): [("u1", box)]}
    jobs = crops_mod._run_jobs(by_image, CropConfig(detector="none", workers=2))  # type: ignore[arg-type]
    with pytest.raises(ExprsimError, match="a crop worker process died") as info:
        list(jobs)
    assert "--crop-workers 1" in str(info.value)


def test_crop_workers_watch_their_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    calls: list[bool] = []
    monkeypatch.setattr(workers_mod, "exit_with_parent", lambda: calls.append(True))
    monkeypatch.setattr(mp, "parent_process", lambda: object())
    before = signal.getsignal(signal.SIGINT)
    try:
        crops_mod._init_worker("none")
    finally:
        signal.signal(signal.SIGINT, before)
    assert calls == [True]


_CHILD = "from exprsim.workers import exit_with_parent; import time; " + (
    "exit_with_parent(0.05); print('ready', flush=True); time.sleep(30)"
)
_PARENT = textwrap.dedent(
    """
    import subprocess, sys
    c = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.PIPE, text=True)
    print(c.pid, c.stdout.readline().strip(), flush=True)
    """
)


@needs_proc
def test_a_worker_ends_when_its_parent_dies() -> None:
    """A worker ignoring Ctrl-C outlived a parent that left with os._exit, for ever."""
    out = subprocess.run(
        [sys.executable, "-c", _PARENT, _CHILD], capture_output=True, text=True, timeout=30
    ).stdout.split()
    assert len(out) == 2 and out[1] == "ready", out
    pid = int(out[0])
    alive = not _ended(pid)
    if alive:
        with contextlib.suppress(OSError):
            os.kill(pid, 9)
    assert not alive
