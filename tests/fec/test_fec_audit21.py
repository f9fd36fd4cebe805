"""Audit 21: a server that drips bytes, Ctrl-C during such a download, no network, two
crop runs into one store, the crop workers and Ctrl-C, option checks of ``fec fetch``,
the report of CSVs sharing a file name or naming no image, undecodable file names, and
scripts without an ``if __name__ == "__main__":`` guard. Each test failed before its fix
(those named ``guard`` pin behaviour that did not change).

Servers are raw sockets on 127.0.0.1 (no outside network); timeouts are tiny.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exprsim.cli import main
from exprsim.data.fec import FaceBox, FecFace, TripletType, write_fec_csv
from exprsim.errors import DataError, ExprsimError
from exprsim.fec import crops as crops_mod
from exprsim.fec.crops import CropConfig, CropStore, _init_worker, build_crops
from exprsim.fec.fetch import (
    MANIFEST_NAME,
    REPORT_NAME,
    FetchConfig,
    FetchReport,
    fetch_fec,
    open_manifest,
)

from .conftest import NAMES, FecServer, face, fetched_photos, held_lock, row


class DripServer:
    """Answers every request with a 200, a 20,000-byte Content-Length, then one byte every
    ``every`` seconds (``headers=False``: drips the status line itself)."""

    def __init__(self, every: float = 0.05, headers: bool = True) -> None:
        self.every, self.headers = every, headers
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = threading.Event()
        self.done = threading.Event()
        self.clients: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.done.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.clients.append(c)
            self.accepted.set()
            threading.Thread(target=self._drip, args=(c,), daemon=True).start()

    def _drip(self, c: socket.socket) -> None:
        with contextlib.suppress(OSError):
            c.recv(4096)
            if self.headers:
                c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\n")
                c.sendall(b"Content-Length: 20000\r\n\r\n")
            while not self.done.is_set():
                c.sendall(b"\xff" if self.headers else b"H")
                time.sleep(self.every)

    def close(self) -> None:
        """Stop, and close every connection (so that a client still reading ends too)."""
        self.done.set()
        for c in self.clients:
            with contextlib.suppress(OSError):
                c.close()
        self.sock.close()


@pytest.fixture()
def drip() -> Iterator[DripServer]:
    srv = DripServer()
    try:
        yield srv
    finally:
        srv.close()


def _csv(path: Path, urls: list[str]) -> Path:
    """One triplet per three URLs (repeating the last to fill up)."""
    urls = urls + [urls[-1]] * (-len(urls) % 3)
    rows = []
    for i in range(0, len(urls), 3):
        faces = tuple(FecFace(u, FaceBox(0.3, 0.7, 0.2, 0.8)) for u in urls[i : i + 3])
        rows.append(row(i + 1, faces, TripletType.ONE, "strong1"))  # type: ignore[arg-type]
    return write_fec_csv(rows, path)


def _in_thread(fn, limit: float) -> tuple[bool, object]:  # type: ignore[no-untyped-def]
    """Run ``fn()`` in a thread: ``(finished within limit, result or exception)``."""
    box: list[object] = [None]

    def target() -> None:
        try:
            box[0] = fn()
        except BaseException as exc:
            box[0] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(limit)
    return not t.is_alive(), box[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- 1. drip


@pytest.mark.parametrize("headers", [True, False], ids=["body", "status-line"])
def test_a_dripping_server_is_cut_at_total_timeout(tmp_path: Path, headers: bool) -> None:
    srv = DripServer(headers=headers)
    try:
        csv = _csv(tmp_path / "d.csv", [f"{srv.url}/a.jpg"])
        cfg = FetchConfig(workers=1, timeout=0.5, total_timeout=1.0, retries=0)
        t0 = time.monotonic()
        finished, rep = _in_thread(lambda: fetch_fec(csv, tmp_path / "o", cfg, progress=False), 8)
        took = time.monotonic() - t0
    finally:
        srv.close()  # the old code, still reading, ends here
    assert finished, "fetch_fec still running 8 s after a 1 s total_timeout"
    assert isinstance(rep, FetchReport), rep
    assert rep.errors == {"timeout": 1} and took < 5


def test_ctrl_c_while_a_server_drips_returns_promptly(
    fec_server: FecServer, drip: DripServer, tmp_path: Path
) -> None:
    good = fec_server.url(f"img/{NAMES[0]}")
    csv = _csv(tmp_path / "d.csv", [f"{drip.url}/slow.jpg", good])
    seen: list[str] = []

    def interrupt_after_the_good_one(res) -> None:  # type: ignore[no-untyped-def]
        seen.append(res.url)
        raise KeyboardInterrupt

    cfg = FetchConfig(workers=2, timeout=5.0, retries=0)  # total_timeout: the default 120 s
    out = tmp_path / "o"
    t0 = time.monotonic()
    finished, exc = _in_thread(
        lambda: fetch_fec(csv, out, cfg, progress=False, on_result=interrupt_after_the_good_one),
        8,
    )
    assert finished, "Ctrl-C waited for the dripping download"
    assert isinstance(exc, KeyboardInterrupt) and time.monotonic() - t0 < 6
    assert seen == [good]
    for _ in range(30):  # the dripping download was cut, not left running in its thread
        if not any(t.name.startswith("fec-fetch") for t in threading.enumerate()):
            break
        time.sleep(0.1)
    else:
        pytest.fail("a fetch thread still runs after Ctrl-C")
    with open_manifest(out) as m:
        rows = m.rows()
    assert rows[good]["status"] == "ok"  # kept
    assert f"{drip.url}/slow.jpg" not in rows  # cut, not recorded as a failure: retried later


_CLI = "import sys; from exprsim.cli import main; sys.exit(main())"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_a_server_drips_ends_the_command(
    drip: DripServer, tmp_path: Path, sig: signal.Signals
) -> None:
    csv = _csv(tmp_path / "d.csv", [f"{drip.url}/a.jpg", f"{drip.url}/b.jpg"])
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    argv = [sys.executable, "-c", _CLI, "-q", "fec", "fetch", str(csv), "--out"]
    proc = subprocess.Popen(
        [*argv, str(tmp_path / "o"), "--timeout", "5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert drip.accepted.wait(20), "the fetch never connected"
        time.sleep(0.3)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=8)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), err
    assert "Traceback" not in err
    word = "interrupted" if sig == signal.SIGINT else "terminated"
    assert err.strip().splitlines()[-1] == (  # round 33: what is kept, and how to go on
        f"exprsim fec fetch: {word}: 0 images fetched in {tmp_path / 'o'} kept; run the same "
        "command again to go on (done work is not done again)"
    )
    assert (tmp_path / "o" / REPORT_NAME).is_file()


# --------------------------------------------------------------------------- 3. no network


def test_no_network_stops_after_n_connection_failures(tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{_closed_port()}"
    csv = _csv(tmp_path / "n.csv", [f"{base}/{i}.jpg" for i in range(30)])
    cfg = FetchConfig(workers=2, timeout=1.0, retries=1, backoff=0.01, max_connect_failures=4)
    rep = fetch_fec(csv, tmp_path / "o", cfg, progress=False)
    assert rep.stopped is not None and rep.stopped.startswith("no network, or 127.0.0.1:")
    # every URL is on one server: it is named (was: "no network?" alone)
    assert base.removeprefix("http://") + " is down? " in rep.stopped
    assert "in a row failed to connect to it, the one server of the URLs left" in rep.stopped
    assert 4 <= rep.n_attempted < 10 and rep.n_missing >= 20 and rep.interrupted
    assert f"stopped: {rep.stopped}" in rep.to_text()


def test_no_network_line_from_the_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{_closed_port()}"
    csv = _csv(tmp_path / "n.csv", [f"{base}/{i}.jpg" for i in range(120)])
    out = tmp_path / "o"
    rc = main(["-q", "fec", "fetch", str(csv), "--out", str(out), "--retries", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    host = base.removeprefix("http://")
    assert len(err) == 1
    lead = f"exprsim fec fetch: no network, or {host} is down? "
    assert err[0].startswith(lead)
    # round 27: the downloads that failed, those in flight at the stop (16 threads) too
    n = int(err[0].removeprefix(lead).split(" ", 1)[0])
    failed = json.loads((out / "fetch_report.json").read_text())["n_failed"]
    assert n >= 50 and n == failed


def test_guard_a_404_means_the_network_works(fec_server: FecServer, tmp_path: Path) -> None:
    """Connection failures after a server answered do not stop the run."""
    refused = f"http://127.0.0.1:{_closed_port()}"
    urls = [fec_server.url("missing/x.jpg")] + [f"{refused}/{i}.jpg" for i in range(8)]
    cfg = FetchConfig(workers=1, timeout=1.0, retries=0, max_connect_failures=3)
    rep = fetch_fec(_csv(tmp_path / "n.csv", urls), tmp_path / "o", cfg, progress=False)
    assert rep.stopped is None and rep.n_missing == 0
    assert rep.errors == {"http_404": 1, "connection": 8}


# --------------------------------------------------------------------------- 7. report


def test_csvs_sharing_a_file_name_are_reported_apart(fec_server: FecServer, tmp_path: Path) -> None:
    faces = tuple(face(fec_server, n) for n in NAMES[:3])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write_fec_csv([row(1, faces, TripletType.ONE, "strong1")], tmp_path / "a" / "t.csv")
    rows = [row(i, faces, TripletType.ONE, "strong1") for i in range(1, 4)]
    b = write_fec_csv(rows, tmp_path / "b" / "t.csv")
    cfg = FetchConfig(workers=2, timeout=2.0, retries=0)
    rep = fetch_fec([a, b], tmp_path / "o", cfg, progress=False)
    assert rep.triplets[str(a)]["rows"] == 1 and rep.triplets[str(b)]["rows"] == 3


def test_a_csv_without_images_says_so(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    csv = tmp_path / "empty.csv"
    csv.write_text("")
    rc = main(["-q", "fec", "fetch", str(csv), "--out", str(tmp_path / "o")])
    cap = capsys.readouterr()
    assert rc == 1
    assert "nan" not in cap.out and "images: 0/0 available (n/a)" in cap.out
    assert cap.err.strip() == (
        f"exprsim fec fetch: {csv} names no image (no valid triplet: see `exprsim fec stats`)"
    )


def test_undecodable_csv_names_are_escaped(
    capsys: pytest.CaptureFixture[str], fec_server: FecServer, tmp_path: Path
) -> None:
    faces = tuple(face(fec_server, n) for n in NAMES[:3])
    name = os.fsdecode(b"x\xe9.csv")
    csv = write_fec_csv([row(1, faces, TripletType.ONE, "strong1")], tmp_path / name)
    assert main(["-q", "fec", "stats", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "x\\xe9.csv" in out and "\udce9" not in out
    rep = fetch_fec(csv, tmp_path / "o", FetchConfig(workers=2, retries=0), progress=False)
    assert "x\\xe9.csv: 1/1 triplets complete" in rep.to_text()
    assert (tmp_path / "o" / MANIFEST_NAME).is_file()


# --------------------------------------------------------------------------- crops

BOX_ONLY = CropConfig(detector="none", shard_size=4)


def test_a_second_crop_run_into_one_store_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    csv, data = fetched_photos(tmp_path)
    crops = data / "crops"
    with held_lock(crops / ".lock"):
        with pytest.raises(DataError, match="another `exprsim fec crop` is writing"):
            build_crops(csv, data, config=BOX_ONLY, progress=False)
        argv = ["-q", "fec", "crop", str(csv), "--data", str(data), "--detector", "none"]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "another `exprsim fec crop` is writing to this" in err[0]
    assert not list(crops.glob("shard-*"))
    rep = build_crops(csv, data, config=BOX_ONLY, progress=False)  # free again
    assert rep.n_new == 6 and len(CropStore(data)) == 6


def test_crop_workers_ignore_ctrl_c() -> None:
    """The parent stops the pool on Ctrl-C; a worker killed by it printed a traceback."""
    before = signal.getsignal(signal.SIGINT)
    try:
        _init_worker("none")
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize("size", [8, 15, 513, 1024])
def test_crop_size_is_bounded(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, size: int
) -> None:
    with pytest.raises(ValueError, match=r"size must be in \[16, 512\]"):
        CropConfig(size=size)
    with pytest.raises(SystemExit) as exc:
        main(["-q", "fec", "crop", "x.csv", "--data", str(tmp_path), "--size", str(size)])
    assert exc.value.code == 2
    assert "argument --size: must be" in capsys.readouterr().err


def test_cli_and_config_size_limits_agree() -> None:
    from exprsim.cli import fec_cmd

    assert (fec_cmd.MIN_SIZE, fec_cmd.MAX_SIZE) == (crops_mod.MIN_SIZE, crops_mod.MAX_SIZE)


def test_big_crops_are_written_in_smaller_shards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv, data = fetched_photos(tmp_path)
    monkeypatch.setattr(crops_mod, "MAX_SHARD_BYTES", 2 * 64 * 64 * 3)  # 2 crops of 64 px
    rep = build_crops(csv, data, config=CropConfig(size=64, detector="none"), progress=False)
    assert rep.n_new == 6 and len(list((data / "crops").glob("shard-*.npy"))) == 3
    assert CropStore(data).get(range(6)).shape == (6, 64, 64, 3)


@pytest.mark.parametrize(
    "opt", [["--size", "64"], ["--margin", "0.2"], ["--detector", "none"], ["--crop-workers", "2"]]
)
def test_fetch_refuses_crop_options_without_crop(
    capsys: pytest.CaptureFixture[str], fec_server: FecServer, tmp_path: Path, opt: list[str]
) -> None:
    csv = _csv(tmp_path / "f.csv", [fec_server.url(f"img/{NAMES[0]}")])
    out = tmp_path / "o"
    assert main(["-q", "fec", "fetch", str(csv), "--out", str(out), *opt]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"exprsim fec fetch: error: {opt[0]} only applies with --crop (or later to " + (
        "`exprsim fec crop`)"
    )
    assert not out.exists() and fec_server.image_hits() == 0


def test_fetch_refuses_an_unknown_detector_before_downloading(
    capsys: pytest.CaptureFixture[str], fec_server: FecServer, tmp_path: Path
) -> None:
    csv = _csv(tmp_path / "f.csv", [fec_server.url(f"img/{NAMES[0]}")])
    out = tmp_path / "o"
    argv = ["-q", "fec", "fetch", str(csv), "--out", str(out), "--crop", "--detector", "bogus"]
    assert main(argv) == 2
    assert "unknown detector 'bogus'" in capsys.readouterr().err
    assert not out.exists() and fec_server.image_hits() == 0


def test_fetch_crop_and_crop_agree_when_no_face_can_be_cropped(
    capsys: pytest.CaptureFixture[str], fec_server: FecServer, tmp_path: Path
) -> None:
    speck = FaceBox(0.5, 0.50001, 0.5, 0.50001)  # less than a pixel: cannot be cropped
    faces = tuple(FecFace(fec_server.url(f"img/{n}"), speck) for n in NAMES[:3])
    csv = write_fec_csv([row(1, faces, TripletType.ONE, "strong1")], tmp_path / "s.csv")
    out = tmp_path / "o"
    common = ["--detector", "none"]
    rc_fetch = main(["-q", "fec", "fetch", str(csv), "--out", str(out), "--crop", *common])
    err_fetch = capsys.readouterr().err.strip().splitlines()
    rc_crop = main(["-q", "fec", "crop", str(csv), "--data", str(out), *common])
    err_crop = capsys.readouterr().err.strip().splitlines()
    assert rc_fetch == rc_crop == 1
    assert err_fetch == ["exprsim fec fetch: no face could be cropped"]
    assert err_crop == ["exprsim fec crop: no face could be cropped"]


# --------------------------------------------------------------------------- 8. spawn


def test_starting_workers_refuse_to_fetch_or_spawn_crop_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing as mp

    csv, data = fetched_photos(tmp_path)
    monkeypatch.setattr(mp.current_process(), "_inheriting", True, raising=False)
    with pytest.raises(ExprsimError, match='under `if __name__ == "__main__":`'):
        fetch_fec(csv, tmp_path / "o", FetchConfig(), progress=False)
    two = CropConfig(detector="none", workers=2)
    with pytest.raises(ExprsimError, match=r"build_crops\(workers=2\) was called while a worker"):
        build_crops(csv, data, config=two, progress=False)
    assert not (tmp_path / "o").exists() and not (data / "crops").exists()


_UNGUARDED = """
from exprsim.fec.crops import CropConfig, build_crops
build_crops({csv!r}, {data!r}, config=CropConfig(detector="none", workers=2), progress=False)
print("done")
"""


def test_an_unguarded_script_with_crop_workers_gets_one_clear_line(tmp_path: Path) -> None:
    csv, data = fetched_photos(tmp_path)
    script = tmp_path / "unguarded.py"
    script.write_text(_UNGUARDED.format(csv=str(csv), data=str(data)))
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 1 and "done" not in proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    # round 27: the guard named as such (was "a crop worker process died ... out of
    # memory?"), and one traceback, the script's own (each worker printed one too)
    assert last.startswith(
        "exprsim.errors.ExprsimError: build_crops(workers=2) was called while a worker"
    ), last
    assert 'under `if __name__ == "__main__":`' in last
    assert proc.stderr.count("Traceback") == 1 and "spawn.py" not in proc.stderr


def test_docs_python_snippet_is_guarded() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "fec.md").read_text()
    snippet = doc.split("```python", 1)[1].split("```", 1)[0]
    assert 'if __name__ == "__main__":' in snippet
    code = snippet.split('if __name__ == "__main__":', 1)[1]
    assert "fetch_fec(" in code and "build_crops(" in code
