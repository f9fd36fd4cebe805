"""Download the FEC images: concurrent, polite, resumable, validated, interrupt-safe.

This is the one place in exprsim that downloads anything, and only when a user runs
``exprsim fec fetch`` (or calls :func:`fetch_fec`) to rebuild the FEC dataset from the URLs
in its CSV files. No model or other data is ever downloaded.

**Layout** of the output folder::

    OUT/manifest.sqlite     url -> status, sha256, path, size, error (table ``images``)
    OUT/images/ab/<sha1(url)>.<jpg|png|...>   the downloaded files, as served
    OUT/fetch_report.json   the availability report of the last run

**Behaviour**

* URLs are deduplicated across rows and files (FEC faces share images).
* A bounded thread pool (``workers``) downloads; at most ``per_host`` requests run at once
  per host, optionally spaced ``host_delay`` seconds apart.
* Transient failures (timeouts, connection errors, truncated transfers, HTTP 408/429/5xx)
  are retried ``retries`` times with exponential backoff (``backoff * 2**attempt`` seconds,
  capped at ``backoff_max``, honouring ``Retry-After``). Permanent failures (other HTTP
  errors, redirect loops, HTML or other non-image content, undecodable or truncated images,
  images smaller than ``min_bytes`` / ``min_side``, Flickr's ``photo_unavailable``
  placeholder) are recorded and not retried by later runs unless ``retry_failed``.
* Content is validated by decoding it with :func:`exprsim.io.decode_image`.
* Each file is written to a temporary name and renamed into place, then its manifest row
  is committed; killing the process (Ctrl-C, SIGTERM, SIGKILL) at any moment loses nothing
  already fetched. A re-run skips URLs marked ``ok`` whose file is present, adopts files
  that were renamed into place but not yet recorded (validating them), removes stale
  temporary files, and fetches only what is missing.
* Only ``http`` and ``https`` URLs are fetched (also after redirects).
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import hashlib
import io
import json
import logging
import os
import re
import socket
import sqlite3
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from http.client import HTTPConnection, HTTPException, HTTPSConnection, IncompleteRead, InvalidURL
from pathlib import Path
from typing import Any

from exprsim import __version__
from exprsim.errors import DataError, ImageError, printable
from exprsim.io import folder_lock, write_atomically, write_json
from exprsim.wording import count
from exprsim.workers import refuse_in_starting_worker

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.sqlite"
IMAGES_DIR = "images"
REPORT_NAME = "fetch_report.json"
_PART = ".part"
_FORMAT_EXT = {
    "JPEG": "jpg",
    "PNG": "png",
    "GIF": "gif",
    "WEBP": "webp",
    "BMP": "bmp",
    "TIFF": "tif",
}
#: longest delay or timeout :class:`FetchConfig` accepts, in seconds (one day)
MAX_SECONDS = 86400.0
#: error kinds that a later run retries (network trouble, not the content); ``tls``: the
#: TLS handshake failed (a certificate not trusted here, say), ``proxy``: the proxy refused
#: the tunnel (``Tunnel connection failed: 407``)
TRANSIENT_KINDS = frozenset(
    {
        "timeout", "connection", "incomplete", "http_408", "http_429", "http_5xx",
        "interrupted", "tls", "proxy",
    }
)  # fmt: skip


@dataclass(frozen=True)
class FetchConfig:
    """How :func:`fetch_fec` downloads.

    Attributes:
        workers: download threads.
        per_host: simultaneous requests per host (politeness).
        host_delay: minimum seconds between request starts on one host.
        timeout: seconds for connecting and for each socket read.
        total_timeout: seconds for one whole attempt, enforced wherever it blocks (a server
            that drips its headers or body a byte at a time is cut off then).
        retries: extra attempts after a transient failure.
        backoff: first retry delay in seconds (doubled each attempt, plus up to 10% jitter).
        backoff_max: longest retry delay.
        min_bytes: smaller responses are rejected.
        min_side: images whose shorter side is smaller are rejected.
        max_bytes: larger responses are rejected.
        max_redirects: redirects followed per request (more: ``redirect_loop``).
        retry_failed: also retry URLs that failed permanently in earlier runs.
        use_env_proxy: honour ``http_proxy`` / ``https_proxy`` from the environment.
        user_agent: the User-Agent header.
        placeholder_patterns: a final URL containing one of these is a "photo removed"
            placeholder (Flickr redirects deleted photos to ``.../photo_unavailable.png``).
        max_connect_failures: stop the run when this many URLs could not even connect
            (refused, DNS, unreachable, connect timeout), on as many hosts or on every host
            of the run, while no connection at all has succeeded yet: there is likely no
            network (0: never stop). One dead host does not stop a run; what was fetched
            is kept.

    Raises:
        ValueError: a count below its minimum, or a delay or timeout that is not a finite
            number of seconds in ``[0, MAX_SECONDS]`` (timeouts: above 0); NaN included.
    """

    workers: int = 16
    per_host: int = 4
    host_delay: float = 0.0
    timeout: float = 20.0
    total_timeout: float = 120.0
    retries: int = 3
    backoff: float = 1.0
    backoff_max: float = 60.0
    min_bytes: int = 1024
    min_side: int = 32
    max_bytes: int = 50 * 1024 * 1024
    max_redirects: int = 5
    retry_failed: bool = False
    use_env_proxy: bool = True
    user_agent: str = f"exprsim-fec-fetch/{__version__} (research dataset rebuild; python-urllib)"
    placeholder_patterns: tuple[str, ...] = ("photo_unavailable",)
    max_connect_failures: int = 50

    def __post_init__(self) -> None:
        from exprsim.errors import ArgumentError, require_int

        # counts as whole numbers (2.5 workers, True retries, a NaN byte limit that let
        # every download through: NaN compares false), each naming itself
        for name in (
            "workers", "per_host", "retries", "min_bytes", "min_side", "max_bytes",
            "max_redirects", "max_connect_failures",
        ):  # fmt: skip
            require_int(getattr(self, name), name, 0, ArgumentError)
        if self.workers > MAX_WORKERS or self.retries > MAX_RETRIES:
            raise ArgumentError(
                f"workers must be at most {MAX_WORKERS} and retries at most {MAX_RETRIES}, "
                f"got {self.workers} and {self.retries}"
            )
        if not isinstance(self.user_agent, str) or not self.user_agent.strip():
            raise ArgumentError(f"user_agent must be a non-empty string, got {self.user_agent!r}")
        if self.workers < 1 or self.per_host < 1:
            raise ArgumentError("workers and per_host must be >= 1")
        # `not lo <= x <= hi` also refuses NaN (every comparison with NaN is false); an
        # infinite or huge number of seconds overflows the clock (OverflowError)
        for name in ("host_delay", "timeout", "total_timeout", "backoff", "backoff_max"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_SECONDS:
                raise ArgumentError(f"{name} must be in [0, {MAX_SECONDS:g}] seconds, got {value}")
        if self.timeout == 0 or self.total_timeout == 0:
            raise ArgumentError("timeouts must be positive")
        if self.retries < 0 or self.max_connect_failures < 0:
            raise ArgumentError("retries and max_connect_failures must be >= 0")
        if self.min_bytes < 0 or self.min_side < 0 or self.max_redirects < 0:
            raise ArgumentError("min_bytes, min_side and max_redirects must be >= 0")
        if self.max_bytes < 1:
            raise ArgumentError("max_bytes must be >= 1")


#: most download threads and retries a :class:`FetchConfig` takes (a typo of 10**6
#: workers would start that many threads)
MAX_WORKERS = 256
MAX_RETRIES = 100


@dataclass(frozen=True)
class FetchResult:
    """Outcome of one URL (one manifest row)."""

    url: str
    status: str  # "ok" | "failed"
    path: str | None = None
    sha256: str | None = None
    bytes: int = 0
    width: int = 0
    height: int = 0
    format: str | None = None
    error_kind: str | None = None
    error: str | None = None
    http_status: int | None = None
    attempts: int = 0
    final_url: str | None = None
    downloaded: bool = False  # False: adopted from disk
    no_connection: bool = False  # failed before any server answered (refused, DNS, ...)

    @property
    def transient(self) -> bool:
        return self.error_kind in TRANSIENT_KINDS


# --------------------------------------------------------------------------- manifest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    url TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    path TEXT,
    sha256 TEXT,
    bytes INTEGER,
    width INTEGER,
    height INTEGER,
    format TEXT,
    error_kind TEXT,
    error TEXT,
    transient INTEGER,
    http_status INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    final_url TEXT,
    updated REAL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""
_COLUMNS = (
    "url", "status", "path", "sha256", "bytes", "width", "height", "format",
    "error_kind", "error", "transient", "http_status", "attempts", "final_url", "updated",
)  # fmt: skip


#: what a damaged manifest's error line suggests
_MANIFEST_HINT = (
    "a damaged manifest can be deleted: the next `exprsim fec fetch` into this folder "
    "recovers the images already on disk"
)


@contextlib.contextmanager
def database_errors(path: str | Path, what: str, hint: str) -> Iterator[None]:
    """Turn an SQLite error on the database file ``path`` into one :class:`DataError` line
    that names the file and what it should be (``what``), with ``hint`` when the file
    looks damaged or foreign (random bytes, a malformed image, another program's tables)
    rather than busy or on a full disk.

    Raises:
        DataError: for any ``sqlite3.DatabaseError`` raised inside the block.
    """
    try:
        yield
    except sqlite3.DatabaseError as exc:
        from exprsim.index.backends import is_disk_error

        text = str(exc) or type(exc).__name__
        damaged = not isinstance(exc, sqlite3.OperationalError) or text.startswith("no such")
        if is_disk_error(exc):  # the file is whole: the disk refused (full, or failing)
            hint, damaged = "is its disk full or failing? free some space and run it again", True
        raise DataError(
            f"{path}: cannot use this {what}: {text}" + (f" ({hint})" if damaged else "")
        ) from exc


def require_folder(path: str | Path, what: str) -> Path:
    """``path`` as a :class:`~pathlib.Path`, unless it exists and is not a folder.

    Raises:
        DataError: ``path`` is a file (``what`` says which folder was expected).
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise DataError(f"{p}: is a file, expected {what}")
    return p


class Manifest:
    """SQLite manifest ``url -> status / sha256 / path / error`` (WAL; one commit per file).

    Use from one thread (the fetcher's main thread writes; readers may open their own).

    Raises:
        DataError: the file is not a readable manifest (damaged, or another database),
            named in one line, here or from a method.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(self.path), timeout=30.0)
        try:
            with self._errors():
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
                self.conn.executescript(_SCHEMA)
                self.conn.commit()
        except DataError:
            self.conn.close()
            raise

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        """:func:`database_errors` for this manifest."""
        return database_errors(self.path, "FEC image manifest", _MANIFEST_HINT)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rows(self) -> dict[str, dict[str, Any]]:
        """Every row as ``{url: {column: value}}``."""
        with self._errors():
            cur = self.conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM images")
            return {r[0]: dict(zip(_COLUMNS, r, strict=True)) for r in cur}

    def record(self, res: FetchResult, previous_attempts: int = 0) -> None:
        """Upsert one result and commit."""
        with self._errors():
            self._record(res, previous_attempts)

    def _record(self, res: FetchResult, previous_attempts: int) -> None:
        self.conn.execute(
            f"INSERT OR REPLACE INTO images ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
            (
                res.url,
                res.status,
                res.path,
                res.sha256,
                res.bytes,
                res.width,
                res.height,
                res.format,
                res.error_kind,
                res.error,
                int(res.transient),
                res.http_status,
                previous_attempts + res.attempts,
                res.final_url,
                time.time(),
            ),
        )
        self.conn.commit()

    def ok_paths(self) -> dict[str, str]:
        """``{url: path relative to the manifest's folder}`` of every fetched image."""
        with self._errors():
            cur = self.conn.execute("SELECT url, path FROM images WHERE status = 'ok'")
            return {u: p for u, p in cur}

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.read_sql_query(f"SELECT {', '.join(_COLUMNS)} FROM images", self.conn)


def open_manifest(out_dir: str | Path) -> Manifest:
    """The manifest of a fetch folder (created if absent)."""
    return Manifest(Path(out_dir) / MANIFEST_NAME)


def image_relpath(url: str, ext: str) -> str:
    """Where a URL's file lives, relative to the fetch folder (deterministic per URL)."""
    h = hashlib.sha1(url.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{IMAGES_DIR}/{h[:2]}/{h}.{ext}"


def _url_stem(url: str) -> tuple[str, str]:
    h = hashlib.sha1(url.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{IMAGES_DIR}/{h[:2]}", h


# --------------------------------------------------------------------------- HTTP


class _HostLimiter:
    """At most ``per_host`` concurrent requests per host, starts ``delay`` seconds apart."""

    def __init__(self, per_host: int, delay: float, stop: threading.Event) -> None:
        self.per_host = per_host
        self.delay = delay
        self.stop = stop
        self._lock = threading.Lock()
        self._sems: dict[str, threading.BoundedSemaphore] = {}
        self._next: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def slot(self, host: str) -> Iterator[None]:
        with self._lock:
            sem = self._sems.setdefault(host, threading.BoundedSemaphore(self.per_host))
        while not sem.acquire(timeout=0.2):
            if self.stop.is_set():
                raise _Stopped
        try:
            if self.delay > 0:
                with self._lock:
                    now = time.monotonic()
                    start = max(now, self._next[host])
                    self._next[host] = start + self.delay
                if start > now and self.stop.wait(start - now):
                    raise _Stopped
            yield
        finally:
            sem.release()


class _Stopped(Exception):
    pass


class _Failure(Exception):
    def __init__(
        self,
        kind: str,
        message: str,
        http_status: int | None = None,
        retry_after: float | None = None,
        connect: bool = False,
    ):
        super().__init__(message)
        self.kind = kind
        self.http_status = http_status
        self.retry_after = retry_after
        self.connect = connect  # no server answered: refused, DNS, unreachable


class _Watchdog:
    """Ends one download attempt by shutting its sockets down: at its deadline, or when
    the run stops. A socket timeout bounds each read only, so a server that drips a byte
    now and then (headers or body) kept a worker, and Ctrl-C, waiting for hours.

    An attempt whose transfer is complete (:meth:`finish`) is no longer cut: a deadline
    that fired between the last byte and the timer's cancel recorded a whole image as a
    timeout."""

    def __init__(self, run: _Stop | None = None) -> None:
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self.why: str | None = None  # "deadline" | "stopped"
        self.done = False  # the transfer completed before any cut
        self.run = run

    def connected(self) -> None:
        """A connection of this attempt succeeded: tell the run (the network works)."""
        if self.run is not None:
            self.run.connected.set()

    def finish(self) -> bool:
        """Mark the transfer complete, unless it was cut first (its data may then be
        short); whether it was complete."""
        with self._lock:
            self.done = self.why is None
            return self.done

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)
            late = self.why is not None
        if late:  # connected after the end: cut at once
            _shut(sock)

    def expire(self, why: str = "deadline") -> None:
        with self._lock:
            if self.done:  # too late: the transfer is complete
                return
            if self.why is None:
                self.why = why
            socks = list(self._socks)
        for sock in socks:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    """Shut ``sock`` down: a recv() blocked on it returns at once (EOF or an error).

    The socket itself, not its connection: urllib drops ``conn.sock`` once the headers are
    in (the response reads through its own reference). The plain socket's method, also
    for TLS: SSLSocket's own shutdown() unwraps it under the reading thread's feet."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


#: the watchdog of the attempt running on this thread (its connections register with it)
_ATTEMPT = threading.local()


class _Stop(threading.Event):
    """The stop signal of one run (set: no new attempt starts), which can also cut the
    downloads in flight (:meth:`cut`), so that the worker threads end within moments
    (Ctrl-C, SIGTERM, the no-network stop)."""

    def __init__(self) -> None:
        super().__init__()
        self.connected = threading.Event()  # a connection of this run succeeded
        self._live_lock = threading.Lock()
        self._live: set[_Watchdog] = set()
        self._cut = False

    @contextlib.contextmanager
    def watching(self, wd: _Watchdog) -> Iterator[None]:
        with self._live_lock:
            self._live.add(wd)
            cut = self._cut
        try:
            if cut:
                wd.expire("stopped")
            yield
        finally:
            with self._live_lock:
                self._live.discard(wd)

    def cut(self) -> None:
        """Set, and cut every download in flight (and any that starts after)."""
        self.set()
        with self._live_lock:
            self._cut = True
            live = list(self._live)
        for wd in live:
            wd.expire("stopped")


def _track(conn: HTTPConnection) -> None:
    """Let the watchdog of this thread's attempt cut ``conn``'s socket (just connected)."""
    wd = getattr(_ATTEMPT, "watchdog", None)
    if wd is not None and conn.sock is not None:
        wd.track(conn.sock)


def _create_connection(*args: Any, **kwargs: Any) -> socket.socket:
    """:func:`socket.create_connection`, telling this thread's attempt that it connected:
    as soon as one TCP connection succeeds (before TLS, a proxy's tunnel or the answer of
    a slow server) the run knows that the network works."""
    sock = socket.create_connection(*args, **kwargs)
    wd = getattr(_ATTEMPT, "watchdog", None)
    if wd is not None:
        wd.connected()
    return sock


class _Tracked:
    """A connection whose socket this thread's attempt watches (:func:`_track`) and whose
    TCP connect tells the run that the network works (:func:`_create_connection`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _create_connection

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _track(self)  # type: ignore[arg-type]


class _TrackedHTTP(_Tracked, HTTPConnection):
    pass


class _TrackedHTTPS(_Tracked, HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: Any) -> Any:
        return self.do_open(_TrackedHTTP, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: Any) -> Any:
        return self.do_open(_TrackedHTTPS, req, context=self._context)  # type: ignore[attr-defined]


def _make_opener(cfg: FetchConfig) -> urllib.request.OpenerDirector:
    class Redirect(urllib.request.HTTPRedirectHandler):
        max_redirections = cfg.max_redirects
        max_repeats = 2

        def redirect_request(
            self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
        ) -> Any:
            try:
                scheme = urllib.parse.urlsplit(newurl).scheme.lower()
                newurl = request_url(newurl)
            except ValueError as exc:  # a malformed Location header
                raise _Failure(
                    "bad_redirect", f"redirect to a malformed URL {newurl[:100]!r} ({exc})", code
                ) from None
            if scheme not in ("http", "https"):
                raise _Failure("bad_redirect", f"redirect to a non-HTTP URL {newurl[:100]!r}", code)
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    opener = urllib.request.OpenerDirector()
    proxies: dict[str, str] | None = None if cfg.use_env_proxy else {}
    handlers: list[Any] = [
        urllib.request.ProxyHandler(proxies),
        urllib.request.UnknownHandler(),
        _HTTPHandler(),
        _HTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        Redirect(),
        urllib.request.HTTPErrorProcessor(),
    ]
    for h in handlers:
        opener.add_handler(h)
    return opener


def _retry_after(headers: Any) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait: a number of seconds, or an HTTP
    date (UTC: one ending in ``-0000`` parses to a naive datetime, which ``timestamp``
    took as local time, off by the machine's offset from UTC); ``None`` when absent or
    unreadable."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        with contextlib.suppress(TypeError, ValueError):
            when = email.utils.parsedate_to_datetime(value)
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.UTC)
            return max(0.0, when.timestamp() - time.time())
    return None


#: characters left as they are when a URL is percent-encoded for the request line
_URL_SAFE = "/%:@!$&'()*+,;=?~"
#: what cannot go on an HTTP request line as it is (non-ASCII is tested apart)
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


def request_url(url: str) -> str:
    """``url`` as it can be requested: an IRI's non-ASCII host IDNA-encoded and its other
    non-ASCII characters, spaces and control characters percent-encoded (UTF-8); an
    ASCII URL without those is returned unchanged.

    Raises:
        ValueError: the URL cannot be split or encoded (``http://[::1/x``, an empty host
            label, undecodable bytes).
    """
    parts = urllib.parse.urlsplit(url)
    if url.isascii() and not _URL_UNSAFE.search(url):
        return url
    user, at, hostport = parts.netloc.rpartition("@")
    netloc = urllib.parse.quote(user, safe=_URL_SAFE) + at + hostport.encode("idna").decode()
    path, query, fragment = (
        urllib.parse.quote(v, safe=_URL_SAFE) for v in (parts.path, parts.query, parts.fragment)
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, query, fragment))


def _download(
    opener: urllib.request.OpenerDirector,
    url: str,
    cfg: FetchConfig,
    stop: threading.Event | None = None,
) -> tuple[bytes, str, int]:
    """One attempt: ``(body, final_url, http_status)`` or :class:`_Failure`; ends by
    ``cfg.total_timeout`` whatever the server does (a :class:`_Watchdog` cuts the sockets).

    Raises:
        _Failure: the attempt failed (kind ``timeout`` when the deadline cut it).
        _Stopped: ``stop`` (a :class:`_Stop`) was set while it ran.
    """
    wd = _Watchdog(stop if isinstance(stop, _Stop) else None)
    timer = threading.Timer(cfg.total_timeout, wd.expire)
    timer.daemon = True
    watching = stop.watching(wd) if isinstance(stop, _Stop) else contextlib.nullcontext()
    with watching:
        _ATTEMPT.watchdog = wd
        timer.start()
        try:
            result = _transfer(opener, url, cfg)
        except (_Failure, OSError, HTTPException, ValueError):
            if wd.why is None:
                raise
            result = None  # cut by the watchdog: whatever it looked like, say why
        finally:
            timer.cancel()
            _ATTEMPT.watchdog = None
    if result is not None and wd.done:  # complete before any cut (one may come just after)
        return result
    if wd.why == "stopped":
        raise _Stopped
    if wd.why is not None or result is None:  # a cut can also look like a clean EOF
        raise _Failure("timeout", f"transfer exceeded total_timeout {cfg.total_timeout} s")
    return result


def _transfer(
    opener: urllib.request.OpenerDirector, url: str, cfg: FetchConfig
) -> tuple[bytes, str, int]:
    """The request and the transfer of :func:`_download`, each socket read bounded by
    ``cfg.timeout``; failures as :class:`_Failure`."""
    req = urllib.request.Request(
        url, headers={"User-Agent": cfg.user_agent, "Accept": "image/*,*/*;q=0.5"}
    )
    deadline = time.monotonic() + cfg.total_timeout
    try:
        with opener.open(req, timeout=cfg.timeout) as resp:
            status = int(getattr(resp, "status", 200) or 200)
            final = resp.geturl()
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > cfg.max_bytes:
                raise _Failure("too_large", f"{length} bytes > max_bytes {cfg.max_bytes}", status)
            buf = io.BytesIO()
            while True:
                if time.monotonic() > deadline:
                    raise _Failure(
                        "timeout", f"transfer exceeded total_timeout {cfg.total_timeout} s", status
                    )
                # read1: what one socket read brings (read(n) waited for all n bytes,
                # however slowly they came)
                chunk = resp.read1(64 * 1024)
                if not chunk:
                    break
                buf.write(chunk)
                if buf.tell() > cfg.max_bytes:
                    raise _Failure("too_large", f"more than max_bytes {cfg.max_bytes}", status)
            if resp.length:  # read1 does not raise IncompleteRead as read did
                raise IncompleteRead(buf.getvalue(), resp.length)
            wd = getattr(_ATTEMPT, "watchdog", None)
            if wd is not None:  # from now on the deadline or a stop no longer cuts it
                wd.finish()
            return buf.getvalue(), final, status
    except _Failure:
        raise
    except urllib.error.HTTPError as exc:
        code = int(exc.code)
        if 300 <= code < 400:
            raise _Failure(
                "redirect_loop", f"HTTP {code}: redirect loop or too many redirects", code
            ) from None
        if code in (408, 429):
            kind = f"http_{code}"
        elif code >= 500:
            kind = "http_5xx"
        else:
            kind = f"http_{code}"
        raise _Failure(kind, f"HTTP {code} {exc.reason}", code, _retry_after(exc.headers)) from None
    except TimeoutError as exc:
        raise _Failure("timeout", f"timed out after {cfg.timeout} s ({exc})") from None
    except IncompleteRead as exc:
        raise _Failure(
            "incomplete", f"connection closed early ({len(exc.partial)} bytes received)"
        ) from None
    except urllib.error.URLError as exc:  # raised while connecting and sending the request
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise _Failure("timeout", f"timed out after {cfg.timeout} s", connect=True) from None
        if isinstance(reason, _Failure):
            raise reason from None
        if isinstance(reason, ssl.SSLError):  # CertificateError too: a server answered
            raise _Failure("tls", f"TLS: {reason}") from None
        if isinstance(reason, OSError) and str(reason).startswith("Tunnel connection failed"):
            raise _Failure("proxy", f"proxy: {reason}") from None  # the proxy answered
        raise _Failure("connection", f"{reason}", connect=isinstance(reason, OSError)) from None
    except InvalidURL as exc:  # before HTTPException, its base: not worth retrying
        raise _Failure("bad_url", f"malformed URL ({exc})") from None
    except (ConnectionError, HTTPException, OSError) as exc:
        raise _Failure("connection", f"{type(exc).__name__}: {exc}") from None
    except ValueError as exc:  # a URL http.client cannot put on the request line
        raise _Failure("bad_url", f"malformed URL ({type(exc).__name__}: {exc})") from None


def _validate(data: bytes, url: str, final_url: str, cfg: FetchConfig) -> tuple[str, int, int]:
    """``(format, width, height)`` of a valid image, else :class:`_Failure`."""
    from PIL import Image

    from exprsim.io import decode_image

    low_final = final_url.lower()
    for pat in cfg.placeholder_patterns:
        if pat and pat.lower() in low_final and pat.lower() not in url.lower():
            raise _Failure("placeholder", f"redirected to a placeholder ({final_url[:120]})")
    if len(data) < cfg.min_bytes:
        raise _Failure("too_small", f"{len(data)} bytes < min_bytes {cfg.min_bytes}")
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")):
        raise _Failure("html", "HTML page instead of an image")
    try:
        arr = decode_image(data, name=url)
    except ImageError as exc:
        kind = "truncated" if "truncated" in exc.reason or "corrupt" in exc.reason else "not_image"
        raise _Failure(kind, exc.reason) from None
    h, w = arr.shape[:2]
    if min(h, w) < cfg.min_side:
        raise _Failure("too_small", f"{w}x{h} pixels < min_side {cfg.min_side}")
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format or "IMG"
    except Exception:  # decode_image succeeded, so this is only for the name
        fmt = "IMG"
    return fmt, w, h


def _write_atomic(out_dir: Path, rel: str, data: bytes) -> None:
    dest = out_dir / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(dest, lambda fh: fh.write(data), suffix=_PART)


def _fetch_one(
    url: str,
    cfg: FetchConfig,
    out_dir: Path,
    limiter: _HostLimiter,
    stop: threading.Event,
    local: threading.local,
) -> FetchResult:
    try:
        target = request_url(url)
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:  # "http://[::1/x": a bad URL, the same on every run
        return FetchResult(url, "failed", error_kind="bad_url", error=f"malformed URL ({exc})")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return FetchResult(
            url, "failed", error_kind="bad_url", error="only http(s) URLs are fetched"
        )
    opener = getattr(local, "opener", None)
    if opener is None:
        opener = local.opener = _make_opener(cfg)
    host = parts.hostname.lower()
    attempts = 0
    fail: _Failure | None = None
    for attempt in range(cfg.retries + 1):
        if stop.is_set():
            return FetchResult(
                url, "failed", error_kind="interrupted", error="stopped", attempts=attempts
            )
        attempts += 1
        try:
            with limiter.slot(host):
                data, final, status = _download(opener, target, cfg, stop)
            fmt, w, h = _validate(data, url, final, cfg)
        except _Stopped:
            return FetchResult(
                url, "failed", error_kind="interrupted", error="stopped", attempts=attempts - 1
            )
        except _Failure as f:
            fail = f
            if f.kind not in TRANSIENT_KINDS or attempt == cfg.retries:
                break
            delay = min(cfg.backoff * 2**attempt, cfg.backoff_max)
            if f.retry_after is not None:
                delay = min(max(delay, f.retry_after), cfg.backoff_max)
            delay *= 1.0 + 0.1 * (hash((url, attempt)) % 1000) / 1000.0
            log.debug("%s: %s; retry %d in %.2f s", url, f, attempt + 1, delay)
            if stop.wait(delay):
                break
            continue
        ext = _FORMAT_EXT.get(fmt, "img")
        rel = image_relpath(url, ext)
        _write_atomic(out_dir, rel, data)
        return FetchResult(
            url,
            "ok",
            path=rel,
            sha256=hashlib.sha256(data).hexdigest(),
            bytes=len(data),
            width=w,
            height=h,
            format=fmt,
            http_status=status,
            attempts=attempts,
            final_url=final if final not in (url, target) else None,
            downloaded=True,
        )
    assert fail is not None
    return FetchResult(
        url,
        "failed",
        error_kind=fail.kind,
        error=str(fail)[:500],
        http_status=fail.http_status,
        attempts=attempts,
        no_connection=fail.connect,
    )


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class FetchReport:
    """Availability after a fetch run (written as ``fetch_report.json``).

    Attributes:
        out_dir: the fetch folder.
        n_urls: unique image URLs in the CSVs.
        n_ok: of those, available on disk (from any run).
        n_failed: recorded as failed.
        n_missing: never attempted (e.g. the run was interrupted).
        n_downloaded: downloaded by this run.
        n_adopted: found complete on disk and recorded by this run (no download).
        n_skipped: already available before this run (not fetched again).
        n_attempted: URLs this run tried to download.
        errors: failure kinds -> count, over the CSVs' failed URLs.
        triplets: per CSV ``{"rows", "available", "strong", "strong_available"}``
            (a triplet is available when all three images are), keyed by the CSV's file
            name, or by the path given where two CSVs share a file name.
        seconds: wall time of this run.
        interrupted: the run was stopped before finishing.
        stopped: why the run stopped on its own before finishing (no network), else ``None``.
    """

    out_dir: str
    n_urls: int
    n_ok: int
    n_failed: int
    n_missing: int
    n_downloaded: int
    n_adopted: int
    n_skipped: int
    n_attempted: int
    errors: dict[str, int]
    triplets: dict[str, dict[str, int]]
    seconds: float
    interrupted: bool = False
    stopped: str | None = None

    @property
    def availability(self) -> float:
        return self.n_ok / self.n_urls if self.n_urls else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["availability"] = self.availability
        return d

    def to_frame(self) -> Any:
        """Triplet availability per CSV as a DataFrame."""
        import pandas as pd

        return pd.DataFrame([{"csv": k, **v} for k, v in self.triplets.items()])

    def to_text(self) -> str:
        lines = [
            f"images: {self.n_ok}/{self.n_urls} available ({_share(self.n_ok, self.n_urls)}); "
            f"{self.n_failed} failed, {self.n_missing} not attempted",
            f"this run: {self.n_downloaded} downloaded, {self.n_adopted} recovered from disk, "
            f"{self.n_skipped} already present, {self.n_attempted} attempted in {self.seconds:.1f} s"
            + (" (stopped)" if self.stopped else " (interrupted)" if self.interrupted else ""),
        ]
        if self.errors:
            lines.append(
                "failures: " + ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items()))
            )
        for name, t in self.triplets.items():
            lines.append(
                f"{printable(name)}: {t['available']}/{t['rows']} triplets complete "
                f"({_share(t['available'], t['rows'])}); strong agreement "
                f"{t['strong_available']}/{t['strong']} ({_share(t['strong_available'], t['strong'])})"
            )
        if self.stopped:
            lines.append(f"stopped: {self.stopped}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def nothing_fetched(self) -> str | None:
        """Why not one image of the CSVs is available, in one line (``None`` when one is,
        or when the CSVs name none). When every failure is a connection failure or a
        timeout, the line says so and asks whether there is a network."""
        if self.n_ok or not self.n_urls:
            return None
        net = [(self.errors.get("connection", 0), "connection failure")]
        net.append((self.errors.get("timeout", 0), "timeout"))
        n_net = sum(n for n, _ in net)
        if n_net and n_net == self.n_failed:
            said = ", ".join(f"{n} {what}{'s' if n != 1 else ''}" for n, what in net if n)
            return f"no file could be downloaded: {said} (no network?)"
        if self.n_failed:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items()))
            return f"no file could be downloaded: {self.n_failed} failed ({kinds})"
        return f"no file could be downloaded: {self.n_missing} not attempted"


def _share(part: int, whole: int) -> str:
    """``part / whole`` as a percentage, ``n/a`` of nothing (was ``nan%``)."""
    return f"{part / whole:.1%}" if whole else "n/a"


# --------------------------------------------------------------------------- main


#: what :func:`read_fec_csv` calls a path that is not a regular file, by ``stat`` test
_NOT_REGULAR = (
    ("S_ISCHR", "a character device"),
    ("S_ISBLK", "a block device"),
    ("S_ISFIFO", "a pipe"),
    ("S_ISSOCK", "a socket"),
)


def check_fec_csv(path: str | Path) -> None:
    """Refuse a path that exists but is not a regular file (``/dev/null``, a pipe) by
    saying what it is: :func:`~exprsim.data.fec.parse_fec_csv` called it "no such FEC CSV
    file".

    Raises:
        DataError: one line naming the path and what it is.
    """
    import stat

    p = Path(path)
    try:
        mode = p.stat().st_mode
    except OSError:  # missing, a dangling link, unreadable: parse_fec_csv says which
        return
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    what = next((w for f, w in _NOT_REGULAR if getattr(stat, f)(mode)), "a special file")
    hint = " (save it to a file first: it is read twice)" if stat.S_ISFIFO(mode) else ""
    raise DataError(f"{printable(str(p))}: not a regular file ({what}); give a FEC CSV file{hint}")


def read_fec_csv(path: str | Path) -> Any:
    """:func:`~exprsim.data.fec.parse_fec_csv` of ``path``, a path that is not a regular
    file named as what it is (:func:`check_fec_csv`).

    Raises:
        DataError: the path is not a readable FEC CSV file.
    """
    from exprsim.data.fec import parse_fec_csv

    check_fec_csv(path)
    return parse_fec_csv(path)


def collect_urls(csv_paths: Sequence[str | Path]) -> tuple[list[str], dict[str, Any]]:
    """Unique URLs (first-appearance order) of FEC CSVs, and the parsed tables by path."""
    tables: dict[str, Any] = {}
    seen: dict[str, None] = {}
    for p in csv_paths:
        t = read_fec_csv(p)
        tables[str(p)] = t
        for u in t.urls:
            seen.setdefault(u, None)
    return list(seen), tables


def _files_on_disk(out_dir: Path) -> dict[str, list[str]]:
    """``{sha1(url) stem: [relative paths]}`` of every finished file under ``images/``."""
    found: dict[str, list[str]] = {}
    img = out_dir / IMAGES_DIR
    if not img.is_dir():
        return found
    for sub in os.scandir(img):
        if not sub.is_dir():
            continue
        for entry in os.scandir(sub.path):
            if entry.name.startswith(".") or not entry.is_file():
                continue
            stem = entry.name.split(".", 1)[0]
            found.setdefault(stem, []).append(f"{IMAGES_DIR}/{sub.name}/{entry.name}")
    return found


def _adopt(
    out_dir: Path, url: str, cfg: FetchConfig, on_disk: dict[str, list[str]]
) -> FetchResult | None:
    """A complete file already renamed into place for ``url`` (killed before its commit)."""
    _, stem = _url_stem(url)
    for rel in sorted(on_disk.get(stem, ())):
        cand = out_dir / rel
        data = cand.read_bytes()
        try:
            fmt, w, h = _validate(data, url, url, cfg)
        except _Failure:
            cand.unlink(missing_ok=True)
            continue
        return FetchResult(
            url,
            "ok",
            path=rel,
            sha256=hashlib.sha256(data).hexdigest(),
            bytes=len(data),
            width=w,
            height=h,
            format=fmt,
        )
    return None


def _clean_parts(out_dir: Path) -> int:
    n = 0
    img = out_dir / IMAGES_DIR
    if img.is_dir():
        for p in img.glob(f"*/.*{_PART}"):
            p.unlink(missing_ok=True)
            n += 1
    return n


def _needs_fetch(row: dict[str, Any] | None, out_dir: Path, cfg: FetchConfig) -> bool:
    if row is None:
        return True
    if row["status"] == "ok":
        p = out_dir / (row["path"] or "")
        return not (row["path"] and p.is_file() and p.stat().st_size == row["bytes"])
    return bool(row["transient"]) or cfg.retry_failed


def fetch_fec(
    csv_paths: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    config: FetchConfig | None = None,
    progress: bool = True,
    on_result: Callable[[FetchResult], None] | None = None,
) -> FetchReport:
    """Download (or resume downloading) every image referenced by FEC CSV files.

    Args:
        csv_paths: one or more FEC CSVs (train and/or test); URLs are deduplicated.
        out_dir: the fetch folder (layout in the module docstring).
        config: download settings.
        progress: show a tqdm bar.
        on_result: called in the main thread after each URL's result is committed.

    Returns:
        The :class:`FetchReport` (also written to ``OUT/fetch_report.json``).

    Raises:
        DataError: a CSV is missing or unreadable, ``out_dir`` is a file, or its manifest
            is damaged.
        ExprsimError: called by a worker process that is still starting (a script without
            an ``if __name__ == "__main__":`` guard would download everything again there).
        KeyboardInterrupt: re-raised after committing everything finished so far.
    """
    refuse_in_starting_worker("fetch_fec")
    cfg = config or FetchConfig()
    paths = [csv_paths] if isinstance(csv_paths, str | Path) else list(csv_paths)
    if not paths:
        raise DataError("no FEC CSV given")
    out = require_folder(out_dir, "a fetch folder")
    t0 = time.perf_counter()
    urls, tables = collect_urls(paths)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, lambda held: _busy(out, held), "fetch folder"):
        return _fetch_locked(out, urls, tables, cfg, progress, on_result, t0)


def _busy(out: Path, holder: str = "") -> DataError:
    return DataError(
        f"{printable(str(out))}: another `exprsim fec fetch`{holder} is downloading into "
        "this folder; wait for it to end (a second one removed its unfinished files)"
    )


def _fetch_locked(
    out: Path,
    urls: list[str],
    tables: dict[str, Any],
    cfg: FetchConfig,
    progress: bool,
    on_result: Callable[[FetchResult], None] | None,
    t0: float,
) -> FetchReport:
    """:func:`fetch_fec` once the fetch folder ``out`` is made and locked."""
    n_parts = _clean_parts(out)
    if n_parts:
        log.info("removed %d unfinished temporary file(s) from an interrupted run", n_parts)
    manifest = open_manifest(out)
    counts = _Counts(proxy=_env_proxy(cfg))
    try:
        rows = manifest.rows()
        todo = _plan(urls, rows, out, cfg, manifest, counts)
        log.info(
            "%d unique URLs: %d already present, %d recovered, %d to fetch",
            len(urls), counts.skipped, counts.adopted, len(todo),
        )  # fmt: skip
        _fetch_all(todo, rows, out, cfg, manifest, counts, progress, on_result)
    finally:
        report = _report(
            manifest, out, urls, tables, counts.downloaded, counts.adopted, counts.skipped,
            counts.attempted, time.perf_counter() - t0, counts.interrupted, counts.stopped,
        )  # fmt: skip
        manifest.close()
        # strict JSON: the availability of no URL at all is NaN, written as null
        write_json(out / REPORT_NAME, report.to_dict(), suffix=_PART)
    log.debug("%s", report.to_text())
    return report


@dataclass
class _Counts:
    """What :func:`fetch_fec` did so far (reported even when interrupted)."""

    downloaded: int = 0
    adopted: int = 0
    skipped: int = 0
    attempted: int = 0
    interrupted: bool = False
    unreachable: int = 0  # results that never reached a server (refused, DNS, ...)
    reached: int = 0  # results for which a server answered (any status)
    stopped: str | None = None  # why the run stopped on its own (no network)
    n_hosts: int = 0  # hosts of the URLs this run fetches
    dead_hosts: set[str] = field(default_factory=set)  # hosts that refused a connection
    proxy: str | None = None  # the environment's proxy, named in the no-network line

    def count(
        self, res: FetchResult, cfg: FetchConfig, connected: bool = False, more: bool = True
    ) -> None:
        """Count a committed result; stop the run (:attr:`stopped`) when work remains
        (``more``), no connection of the run has succeeded (``connected``) nor has a server
        answered, and ``cfg.max_connect_failures`` results failed to connect, to as many
        hosts or to every host of the run. (Counting results alone stopped a run whose
        first URLs were on one dead host, and every re-run again, since those are retried;
        or one whose working servers were slow to answer.)"""
        self.attempted += 1
        self.downloaded += res.status == "ok"
        if res.no_connection:
            self.unreachable += 1
            self.dead_hosts.add(_host(res.url))
        elif res.error_kind not in ("interrupted", "bad_url"):
            self.reached += 1
        n, n_dead = cfg.max_connect_failures, len(self.dead_hosts)
        if not n or connected or self.reached or not more or self.stopped is not None:
            return
        if self.unreachable >= n and (n_dead >= n or n_dead >= self.n_hosts):
            self.stopped = self.stop_text()

    def stop_text(self) -> str:
        """Why the run stopped on its own, with the counts as they are now (the downloads
        in flight when it stopped are counted too: said again once they are in)."""
        n_dead = len(self.dead_hosts)
        via = f" (through the proxy {self.proxy}: is it up?)" if self.proxy else ""
        failed = count(self.unreachable, "download")
        if n_dead == 1 == self.n_hosts:  # e.g. a re-run whose URLs left are on one server
            host = next(iter(self.dead_hosts)) or "the server"
            lead = (
                f"no network, or {host} is down? {failed} in a row failed to connect to it, "
                f"the one server of the URLs left{via}"
            )
        else:
            lead = (
                f"no network? {failed} in a row failed to connect, to "
                f"{count(n_dead, 'host')}, and no server answered{via}"
            )
        return (
            f"{lead}; stopped, what was fetched is kept (run again to go on; "
            "--max-connect-failures 0, max_connect_failures=0 in Python: never stop)"
        )


def _host(url: str) -> str:
    """The server of ``url``: its host, lower case, and port (``""`` when it has none)."""
    try:
        parts = urllib.parse.urlsplit(url)
        return f"{(parts.hostname or '').lower()}:{parts.port or ''}"
    except ValueError:
        return ""


def _env_proxy(cfg: FetchConfig) -> str | None:
    """The HTTP(S) proxies of the environment that the run goes through, without their
    passwords (``None`` when none)."""
    if not cfg.use_env_proxy:
        return None
    proxies = urllib.request.getproxies()
    if proxies.get("no", "").strip() == "*":
        return None
    names: dict[str, None] = {}
    for scheme in ("http", "https"):
        value = proxies.get(scheme)
        if not value:
            continue
        try:
            parts = urllib.parse.urlsplit(value)
            netloc = parts.netloc.rpartition("@")[2]  # never print user:password
            names[urllib.parse.urlunsplit(parts._replace(netloc=netloc))] = None
        except ValueError:
            names["(unreadable)"] = None
    return ", ".join(printable(n) for n in names) or None


def _plan(
    urls: list[str],
    rows: dict[str, Any],
    out: Path,
    cfg: FetchConfig,
    manifest: Manifest,
    counts: _Counts,
) -> list[str]:
    """The URLs still to download; present files are skipped, files found on disk adopted."""
    on_disk = _files_on_disk(out)
    todo: list[str] = []
    for u in urls:
        row = rows.get(u)
        if not _needs_fetch(row, out, cfg):
            counts.skipped += row is not None and row["status"] == "ok"
            continue
        adopted = _adopt(out, u, cfg, on_disk) if row is None or row["status"] != "ok" else None
        if adopted is not None:
            manifest.record(adopted, (row or {}).get("attempts", 0) or 0)
            counts.adopted += 1
            continue
        todo.append(u)
    return todo


def _fetch_all(
    todo: list[str],
    rows: dict[str, Any],
    out: Path,
    cfg: FetchConfig,
    manifest: Manifest,
    counts: _Counts,
    progress: bool,
    on_result: Callable[[FetchResult], None] | None,
) -> None:
    """Fetch ``todo`` on ``cfg.workers`` threads, committing each result in this thread.

    On any exception (Ctrl-C included), or when :meth:`_Counts.count` stops the run, the
    downloads in flight are cut, queued ones cancelled, results already finished
    committed, and the exception re-raised.
    """
    from exprsim.progress import progress_bar

    stop = _Stop()
    counts.n_hosts = len({_host(u) for u in todo})
    limiter = _HostLimiter(cfg.per_host, cfg.host_delay, stop)
    local = threading.local()
    bar = progress_bar(total=len(todo), desc="fetch", unit="img", enabled=progress and bool(todo))
    ex = ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="fec-fetch")
    pending: set[Future[FetchResult]] = set()
    it = iter(todo)
    finished = [0]  # results handed in, committed or not

    def top_up() -> None:
        while len(pending) < 4 * cfg.workers and counts.stopped is None:
            u = next(it, None)
            if u is None:
                return
            pending.add(ex.submit(_fetch_one, u, cfg, out, limiter, stop, local))

    def commit(fut: Future[FetchResult]) -> None:
        res = fut.result()
        finished[0] += 1
        if res.error_kind == "interrupted" and res.attempts == 0:
            return  # never tried: stays missing
        prev = (rows.get(res.url) or {}).get("attempts", 0) or 0
        manifest.record(res, prev)
        # the last result does not stop the run: it ended (it was reported interrupted)
        counts.count(res, cfg, stop.connected.is_set(), more=finished[0] < len(todo))
        bar.update(1)
        if on_result is not None:
            on_result(res)

    try:
        top_up()
        while pending and counts.stopped is None:
            done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                pending.discard(fut)
                commit(fut)
            top_up()
    except BaseException:
        counts.interrupted = True
        _wind_down(ex, stop, pending, commit)
        raise
    finally:
        bar.close()
    if counts.stopped is not None:
        counts.interrupted = True
        _wind_down(ex, stop, pending, commit)
        counts.stopped = counts.stop_text()  # with the downloads that were in flight
        log.info("%s", counts.stopped)  # the report says it (the CLI on stderr)
    ex.shutdown(wait=True)


#: seconds a stopped run lets the downloads in flight finish before it cuts them
_GRACE_S = 1.0
#: seconds it then waits for its workers to hand in what they finished
_WIND_DOWN_S = 5.0


def _wind_down(
    ex: ThreadPoolExecutor,
    stop: _Stop,
    pending: set[Future[FetchResult]],
    commit: Callable[[Future[FetchResult]], None],
) -> None:
    """Stop a run promptly: cancel the queued downloads without waiting for the threads,
    give those in flight :data:`_GRACE_S` to finish (not to download them again next
    time), then cut them (:meth:`_Stop.cut`), and commit what finishes within a few
    seconds (a worker can still be stuck in a DNS lookup, which nothing can cut)."""
    stop.set()
    ex.shutdown(wait=False, cancel_futures=True)
    # wait() never counts a future cancelled this way as done: only the running ones
    running = {fut for fut in pending if not fut.cancel()}
    done, left = wait(running, timeout=_GRACE_S)
    if left:
        stop.cut()
        done |= wait(left, timeout=_WIND_DOWN_S)[0]
    for fut in done:
        with contextlib.suppress(BaseException):
            commit(fut)


def _report(
    manifest: Manifest,
    out: Path,
    urls: list[str],
    tables: dict[str, Any],
    n_downloaded: int,
    n_adopted: int,
    n_skipped: int,
    n_attempted: int,
    seconds: float,
    interrupted: bool,
    stopped: str | None = None,
) -> FetchReport:
    import numpy as np

    rows = manifest.rows()
    ok = {u for u in urls if (r := rows.get(u)) is not None and r["status"] == "ok"}
    failed = [rows[u] for u in urls if u in rows and rows[u]["status"] != "ok"]
    errors = Counter(r["error_kind"] or "unknown" for r in failed)
    trip: dict[str, dict[str, int]] = {}
    # by file name, unless two CSVs share one (a/test.csv, b/test.csv were merged)
    base = Counter(Path(name).name for name in tables)
    for name, t in tables.items():
        avail_url = np.array([u in ok for u in t.urls], dtype=bool)
        complete = avail_url[t.url_index].all(axis=1) if len(t) else np.zeros(0, bool)
        strong = t.agreement() == 2 if len(t) else np.zeros(0, bool)
        trip[Path(name).name if base[Path(name).name] == 1 else name] = {
            "rows": len(t),
            "available": int(complete.sum()),
            "strong": int(strong.sum()),
            "strong_available": int((complete & strong).sum()),
        }
    return FetchReport(
        out_dir=str(out),
        n_urls=len(urls),
        n_ok=len(ok),
        n_failed=len(failed),
        n_missing=len(urls) - len(ok) - len(failed),
        n_downloaded=n_downloaded,
        n_adopted=n_adopted,
        n_skipped=n_skipped,
        n_attempted=n_attempted,
        errors=dict(sorted(errors.items())),
        triplets=trip,
        seconds=round(seconds, 3),
        interrupted=interrupted,
        stopped=stopped,
    )


def count_fetched(out_dir: str | Path) -> int | None:
    """Images recorded as fetched in a fetch folder's manifest (what an interrupted run
    kept), read without changing anything; ``None`` when there is no manifest or it
    cannot be read."""
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30.0)
        try:
            row = conn.execute("SELECT COUNT(*) FROM images WHERE status = 'ok'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return int(row[0])


def load_fetch_report(out_dir: str | Path) -> dict[str, Any]:
    """The last run's report of a fetch folder, as a dict."""
    p = Path(out_dir) / REPORT_NAME
    if not p.is_file():
        raise DataError(f"{out_dir}: no {REPORT_NAME} (run `exprsim fec fetch` first)")
    return json.loads(p.read_text())


__all__ = [
    "FetchConfig",
    "FetchReport",
    "FetchResult",
    "Manifest",
    "check_fec_csv",
    "collect_urls",
    "count_fetched",
    "database_errors",
    "fetch_fec",
    "image_relpath",
    "load_fetch_report",
    "open_manifest",
    "read_fec_csv",
    "request_url",
    "require_folder",
]
