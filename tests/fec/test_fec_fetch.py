"""The FEC fetcher against a loopback server: broken responses, retries, resume, interruption."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from exprsim.data.fec import FaceBox, FecFace, TripletType, write_fec_csv
from exprsim.fec.fetch import (
    MANIFEST_NAME,
    REPORT_NAME,
    FetchConfig,
    _HostLimiter,
    fetch_fec,
    open_manifest,
)

from .conftest import BROKEN, NAMES, FecServer, heldout_rows, row

FAST = FetchConfig(workers=4, per_host=4, timeout=0.5, retries=1, backoff=0.05, use_env_proxy=False)


def _ok_rows(out: Path) -> dict[str, dict]:
    with open_manifest(out) as m:
        return {u: r for u, r in m.rows().items() if r["status"] == "ok"}


def _check_files(out: Path, rows: dict[str, dict]) -> None:
    for r in rows.values():
        data = (out / r["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r["sha256"] and len(data) == r["bytes"]


def test_fetch_broken_responses_then_resume(
    fec_server: FecServer, fec_csvs: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "fec"
    rep = fetch_fec(list(fec_csvs), out, FAST, progress=False)
    # 9 photos + 7 broken + 1 flaky + 1 redirected URL, deduplicated over both CSVs
    assert rep.n_urls == 18
    assert rep.n_ok == 11 and rep.n_failed == 7 and rep.n_missing == 0
    assert rep.errors == {kind: 1 for kind in BROKEN.values()}
    with open_manifest(out) as m:
        rows = m.rows()
    for route, kind in BROKEN.items():
        r = rows[fec_server.url(route)]
        assert r["status"] == "failed" and r["error_kind"] == kind and r["path"] is None, (route, r)
    assert rows[fec_server.url("missing/a.jpg")]["http_status"] == 404
    ok = _ok_rows(out)
    _check_files(out, ok)
    assert rows[fec_server.url(f"flaky/{NAMES[0]}")]["attempts"] == 2  # 503, then retried
    assert rows[fec_server.url(f"redirect/{NAMES[1]}")]["final_url"] == fec_server.url(
        f"img/{NAMES[1]}"
    )
    assert fec_server.hits[f"/slow/{'grace_hopper.jpg'}"] == 2  # 1 + 1 retry, each timed out
    assert fec_server.hits["/missing/a.jpg"] == 1  # permanent: not retried
    # every photo fetched once although it appears in many triplets and both CSVs
    # (NAMES[1] twice: its own URL and the /redirect/ URL that lands on it)
    assert [fec_server.hits[f"/img/{n}"] for n in NAMES] == [1, 2] + [1] * 7
    assert rep.triplets["fec-train.csv"]["rows"] == 26
    assert rep.triplets["fec-train.csv"]["available"] == 19  # 18 + the flaky/redirect one
    assert rep.triplets["fec-test.csv"] == {
        "rows": 9,
        "available": 9,
        "strong": 9,
        "strong_available": 9,
    }
    assert json.loads((out / REPORT_NAME).read_text())["n_ok"] == 11
    assert "11/18 available" in rep.to_text()

    hits_before = sum(fec_server.hits.values())
    rep2 = fetch_fec(list(fec_csvs), out, FAST, progress=False)
    assert rep2.n_downloaded == 0 and rep2.n_skipped == 11 and rep2.n_ok == 11
    # only the transient failure (the timeout) is tried again: 2 more requests to /slow
    assert rep2.n_attempted == 1
    assert sum(fec_server.hits.values()) - hits_before == 2
    rep3 = fetch_fec(
        list(fec_csvs),
        out,
        FetchConfig(**{**FAST.__dict__, "retry_failed": True, "retries": 0}),
        progress=False,
    )
    assert rep3.n_attempted == 7 and rep3.n_downloaded == 0


def test_non_http_urls_are_never_opened(fec_server: FecServer, tmp_path: Path) -> None:
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"local file")
    faces = (
        FecFace(secret.as_uri(), FaceBox(0.1, 0.9, 0.1, 0.9)),
        FecFace("ftp://127.0.0.1/x.jpg", FaceBox(0.1, 0.9, 0.1, 0.9)),
        FecFace(fec_server.url(f"img/{NAMES[0]}"), FaceBox(0.1, 0.9, 0.1, 0.9)),
    )
    csv = write_fec_csv([row(1, faces, TripletType.ONE, "strong1")], tmp_path / "x.csv")
    rep = fetch_fec(csv, tmp_path / "out", FAST, progress=False)
    assert rep.n_ok == 1 and rep.errors == {"bad_url": 2}


def test_interrupt_keeps_everything_committed(fec_server: FecServer, tmp_path: Path) -> None:
    csv = write_fec_csv(heldout_rows(fec_server), tmp_path / "t.csv")
    out = tmp_path / "fec"
    seen = []

    def stop_after_two(res) -> None:
        seen.append(res.url)
        if len(seen) == 2:
            raise KeyboardInterrupt

    cfg = FetchConfig(workers=1, timeout=2.0, use_env_proxy=False)
    with pytest.raises(KeyboardInterrupt):
        fetch_fec(csv, out, cfg, progress=False, on_result=stop_after_two)
    ok = _ok_rows(out)
    assert set(seen) <= set(ok) and len(ok) >= 2
    _check_files(out, ok)
    assert json.loads((out / REPORT_NAME).read_text())["interrupted"] is True
    rep = fetch_fec(csv, out, cfg, progress=False)
    assert rep.n_ok == 9 and rep.n_skipped == len(ok) and rep.n_downloaded == 9 - len(ok)
    assert all(fec_server.hits[f"/img/{n}"] == 1 for n in NAMES)


_CHILD = """
import sys
from exprsim.fec.fetch import FetchConfig, fetch_fec
fetch_fec(sys.argv[1], sys.argv[2], FetchConfig(workers=1, timeout=5.0, use_env_proxy=False), progress=False)
"""


def test_killed_process_loses_nothing(fec_server: FecServer, tmp_path: Path) -> None:
    csv = write_fec_csv(heldout_rows(fec_server), tmp_path / "t.csv")
    out = tmp_path / "fec"
    fec_server.delay = 0.3  # 9 photos, one at a time: ~3 s in all
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(csv), str(out)], env=env)
    try:
        deadline = time.monotonic() + 30
        n_ok = 0
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / MANIFEST_NAME).exists():
                with (
                    contextlib.closing(sqlite3.connect(out / MANIFEST_NAME, timeout=5)) as c,
                    contextlib.suppress(sqlite3.OperationalError),  # schema not created yet
                ):
                    n_ok = c.execute("SELECT COUNT(*) FROM images WHERE status = 'ok'").fetchone()[
                        0
                    ]
                if n_ok >= 2:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, "the fetch finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    fec_server.delay = 0.0
    ok = _ok_rows(out)
    assert 2 <= len(ok) < 9
    _check_files(out, ok)
    hits_killed = fec_server.image_hits()
    # a kill between the rename and the manifest commit, and a kill mid-write:
    some_url = next(iter(ok))
    with open_manifest(out) as m:
        m.conn.execute("DELETE FROM images WHERE url = ?", (some_url,))
        m.conn.commit()
    part = out / ok[some_url]["path"]
    stale = part.with_name(f".{part.name}.999.1.part")
    stale.write_bytes(b"half a file")
    rep = fetch_fec(csv, out, FAST, progress=False)
    assert not stale.exists()
    assert rep.n_adopted == 1 and rep.n_ok == 9
    # nothing fetched before the kill (adopted one included) was downloaded again
    assert all(fec_server.hits[u[len(fec_server.base) :]] == 1 for u in ok)
    assert fec_server.image_hits() - hits_killed <= 9 - len(ok)
    _check_files(out, _ok_rows(out))


def test_host_limiter_bounds_concurrency_and_spacing() -> None:
    stop = threading.Event()
    lim = _HostLimiter(per_host=2, delay=0.0, stop=stop)
    active, peak, lock = [0], [0], threading.Lock()

    def work(host: str) -> None:
        with lim.slot(host):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.05)
            with lock:
                active[0] -= 1

    threads = [threading.Thread(target=work, args=("a",)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2
    spaced = _HostLimiter(per_host=4, delay=0.05, stop=stop)
    starts: list[float] = []

    def mark() -> None:
        with spaced.slot("b"):
            starts.append(time.monotonic())

    threads = [threading.Thread(target=mark) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    starts.sort()
    assert all(b - a >= 0.045 for a, b in itertools.pairwise(starts))
