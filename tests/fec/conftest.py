"""Loopback HTTP server and FEC-format fixture CSVs (no outside network).

The server (``http.server`` on 127.0.0.1, port 0, in a thread) serves the bundled sample
photos and a set of broken responses:

* ``/img/NAME``        the sample photo NAME (JPEG)
* ``/missing/X``       404
* ``/slow/NAME``       sleeps ``slow_seconds`` (2 s) before answering (client timeout 0.5 s)
* ``/truncated/NAME``  the first 60% of the JPEG, with a matching Content-Length
* ``/html/X``          an HTML page (2 KB) with status 200
* ``/loop/X``          302 to itself (redirect loop)
* ``/flaky/NAME``      503 on the first request, the photo afterwards (retry with backoff)
* ``/gone/X``          302 to ``/static/photo_unavailable.png`` (Flickr's removed-photo image)
* ``/tiny/X``          a valid 16x16 JPEG (below ``min_side``)
* ``/redirect/NAME``   302 to ``/img/NAME`` (a good image behind one redirect)

``server.hits[path]`` counts requests; ``server.delay`` slows every ``/img`` answer.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from exprsim.data.fec import Annotation, FaceBox, FecFace, FecTriplet, TripletType, write_fec_csv
from exprsim.fec.fetch import FetchResult, image_relpath, open_manifest
from exprsim.samples import sample_images, sample_path

#: Face boxes of the bundled photos as FEC fractions (left, right, top, bottom), measured once
#: with exprsim's MediaPipe detector (``create_detector("mediapipe").detect``), rounded.
SAMPLE_BOXES: dict[str, tuple[float, float, float, float]] = {
    "astronaut_eileen_collins.jpg": (0.345, 0.533, 0.161, 0.349),
    "grace_hopper.jpg": (0.335, 0.715, 0.245, 0.569),
    "pexels_langer_frame000.jpg": (0.51, 0.872, 0.329, 0.973),
    "pexels_langer_frame072.jpg": (0.484, 0.841, 0.356, 0.99),
    "pexels_langer_frame144.jpg": (0.524, 0.895, 0.285, 0.943),
    "pexels_langer_frame216.jpg": (0.512, 0.878, 0.233, 0.883),
    "pexels_langer_frame288.jpg": (0.519, 0.894, 0.239, 0.906),
    "pexels_langer_frame360.jpg": (0.56, 0.932, 0.259, 0.921),
    "pexels_langer_frame432.jpg": (0.492, 0.821, 0.34, 0.924),
}
NAMES = sorted(SAMPLE_BOXES)
#: Broken routes used by the fixture CSV, with the failure kind each must produce.
BROKEN = {
    "missing/a.jpg": "http_404",
    "slow/grace_hopper.jpg": "timeout",
    "truncated/grace_hopper.jpg": "truncated",
    "html/page.jpg": "html",
    "loop/x.jpg": "redirect_loop",
    "gone/y.jpg": "placeholder",
    "tiny/t.jpg": "too_small",
}
#: Vote patterns (labels of the six raters) -> agreement, used to build fixture rows.
VOTES = {
    "strong1": (1, 1, 1, 1, 2, 3),
    "strong2": (2, 2, 2, 2, 2, 1),
    "strong3": (3, 3, 3, 3, 1, 1),
    "strong1b": (1, 1, 1, 1, 1, 1),
    "weak": (1, 1, 1, 2, 2, 3),
    "none": (1, 1, 2, 2, 3, 3),
}
RATERS = ("1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008")


def _jpeg(arr: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


class FecServer:
    """The app behind the loopback server (routes in the module docstring)."""

    def __init__(self) -> None:
        self.images = {p.name: p.read_bytes() for p in sample_images()}
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.slow_seconds = 2.0
        self.delay = 0.0
        png = io.BytesIO()
        Image.new("RGB", (500, 374), (220, 220, 220)).save(png, format="PNG")
        self.placeholder = png.getvalue()
        self.tiny = _jpeg(np.full((16, 16, 3), 128, np.uint8))
        self.base = ""

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def image_hits(self) -> int:
        with self.lock:
            return sum(v for k, v in self.hits.items() if k.startswith("/img/"))

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        with self.lock:
            self.hits[path] += 1
            n = self.hits[path]
        parts = path.strip("/").split("/", 1)
        route, rest = parts[0], (parts[1] if len(parts) > 1 else "")

        def send(
            code: int,
            body: bytes = b"",
            ctype: str = "image/jpeg",
            headers: dict[str, str] | None = None,
        ) -> None:
            h.send_response(code)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            if body:
                h.wfile.write(body)

        if route == "img" and rest in self.images:
            if self.delay:
                time.sleep(self.delay)
            send(200, self.images[rest])
        elif route == "redirect" and rest in self.images:
            send(302, ctype="text/plain", headers={"Location": f"/img/{rest}"})
        elif route == "slow":
            time.sleep(self.slow_seconds)
            send(200, self.images.get(rest, b""))
        elif route == "truncated" and rest in self.images:
            data = self.images[rest]
            send(200, data[: int(len(data) * 0.6)])
        elif route == "html":
            page = (
                b"<!DOCTYPE html><html><head><title>Moved</title></head><body>"
                + b"x" * 2000
                + b"</body></html>"
            )
            send(200, page, ctype="text/html; charset=utf-8")
        elif route == "loop":
            send(302, ctype="text/plain", headers={"Location": path})
        elif route == "flaky" and rest in self.images:
            if n == 1:
                send(503, b"busy", ctype="text/plain", headers={"Retry-After": "0"})
            else:
                send(200, self.images[rest])
        elif route == "gone":
            send(302, ctype="text/plain", headers={"Location": "/static/photo_unavailable.png"})
        elif path == "/static/photo_unavailable.png":
            send(200, self.placeholder, ctype="image/png")
        elif route == "tiny":
            send(200, self.tiny)
        else:
            send(404, b"not found", ctype="text/plain")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.server.app.handle(self)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@pytest.fixture()
def fec_server() -> Iterator[FecServer]:
    app = FecServer()
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.app = app  # type: ignore[attr-defined]
    app.base = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield app
    finally:
        srv.shutdown()
        srv.server_close()


def face(server: FecServer, name: str, route: str = "img") -> FecFace:
    box = SAMPLE_BOXES.get(name, (0.3, 0.7, 0.2, 0.8))
    return FecFace(server.url(f"{route}/{name}"), FaceBox(*box))


def row(
    line: int,
    faces: tuple[FecFace, FecFace, FecFace],
    ttype: TripletType,
    votes: str,
    shift: int = 0,
) -> FecTriplet:
    labels = VOTES[votes]
    ann = tuple(Annotation(RATERS[(shift + a) % len(RATERS)], lab) for a, lab in enumerate(labels))
    return FecTriplet(line, faces, ttype, ann)


def train_rows(server: FecServer) -> list[FecTriplet]:
    """18 triplets over the 9 photos (all types, strong/weak/none), 7 with a broken URL, 1 flaky/redirected."""
    rows: list[FecTriplet] = []
    pats = ["strong1", "strong2", "strong3", "strong1b", "weak", "none"]
    for i in range(18):
        a, b, c = NAMES[i % 9], NAMES[(i + 2) % 9], NAMES[(i + 5) % 9]
        rows.append(
            row(
                i + 1,
                (face(server, a), face(server, b), face(server, c)),
                TripletType(i % 3),
                pats[i % 6],
                shift=i,
            )
        )
    for j, route in enumerate(BROKEN):
        bad = FecFace(server.url(route), FaceBox(0.3, 0.7, 0.2, 0.8))
        rows.append(
            row(
                100 + j,
                (face(server, NAMES[j]), bad, face(server, NAMES[j + 1])),
                TripletType(j % 3),
                "strong1",
            )
        )
    # good images behind a 503-then-200 and behind a redirect (new URLs, same photos)
    flaky, redir = face(server, NAMES[0], "flaky"), face(server, NAMES[1], "redirect")
    rows.append(row(200, (flaky, redir, face(server, NAMES[2])), TripletType.TWO, "strong2"))
    return rows


def heldout_rows(server: FecServer) -> list[FecTriplet]:
    """9 strong triplets (3 per type) over the photos, in other combinations."""
    rows = []
    for i in range(9):
        a, b, c = NAMES[i], NAMES[(i + 4) % 9], NAMES[(i + 7) % 9]
        pat = ("strong1", "strong2", "strong3")[i % 3]
        rows.append(
            row(
                i + 1,
                (face(server, a), face(server, b), face(server, c)),
                TripletType(i // 3),
                pat,
                shift=i,
            )
        )
    return rows


@pytest.fixture()
def fec_csvs(fec_server: FecServer, tmp_path: Path) -> tuple[Path, Path]:
    """``(train_csv, test_csv)`` in the official layout, pointing at the loopback server."""
    train = write_fec_csv(train_rows(fec_server), tmp_path / "fec-train.csv")
    test = write_fec_csv(heldout_rows(fec_server), tmp_path / "fec-test.csv")
    return train, test


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback requests must never go through a proxy configured in the environment."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def fetched_photos(tmp_path: Path, box: FaceBox | None = None) -> tuple[Path, Path]:
    """``(csv, fetch folder)``: 2 triplets over 6 bundled photos recorded as fetched (no
    server), each face in its measured box or in ``box``."""
    faces = [
        FecFace(f"http://photos.invalid/{n}", box or FaceBox(*SAMPLE_BOXES[n])) for n in NAMES[:6]
    ]
    rows = [
        row(1, (faces[0], faces[1], faces[2]), TripletType.ONE, "strong1"),
        row(2, (faces[3], faces[4], faces[5]), TripletType.TWO, "strong2"),
    ]
    csv = write_fec_csv(rows, tmp_path / "fec.csv")
    data = tmp_path / "fecout"
    with open_manifest(data) as man:
        for f, name in zip(faces, NAMES, strict=False):
            rel = image_relpath(f.url, "jpg")
            (data / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(sample_path(name), data / rel)
            man.record(FetchResult(f.url, "ok", path=rel, bytes=(data / rel).stat().st_size))
    return csv, data


@contextlib.contextmanager
def held_lock(path: Path) -> Iterator[None]:
    """``flock`` on ``path`` as another process's run would hold it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
