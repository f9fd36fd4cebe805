"""``exprsim serve``: a FastAPI app over the library (JSON API under ``/api`` + HTML pages).

Everything runs offline: the pages are server-rendered with a little inline JavaScript, no
CDN. The model is loaded once per process; each request opens its own connection to the
face index (SQLite connections are per thread).

Safety: uploads are size-capped while streaming (413), judged by their content, and stored
under the server's data folder with generated names; thumbnails are served by face id,
never by a client path; unexpected errors answer 500 with a JSON error and a log line, never
a stack trace; with a token, every request needs it (``Authorization: Bearer``), or the
cookie of a session opened by the login form (see :func:`_add_auth`).
"""

# no ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations
# at run time, and they name classes imported inside the ``_add_*`` functions
import functools
import hmac
import io
import ipaddress
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from exprsim.errors import (
    ExprsimError,
    ImageError,
    ImageTooLargeError,
    IndexDatabaseError,
    IndexUnavailableError,
)
from exprsim.io import sweep_temporaries
from exprsim.models.identity import embedder_digest
from exprsim.web.asgi import HttpMiddleware
from exprsim.web.forms import FILE_FIELD, FORM_MAX_BYTES, FORM_TOO_LARGE, FormCheck
from exprsim.web.memo import GenerationMemo
from exprsim.web.sessions import LoginLimiter, SessionStore
from exprsim.web.uploads import (
    PARTIAL_UPLOAD,
    UploadError,
    display_name,
    safe_name,
    size_text,
    storage_error,
    store_upload,
)
from exprsim.wording import count

log = logging.getLogger(__name__)

#: seconds a client refused by a full video queue is asked to wait (``Retry-After``)
QUEUE_RETRY_AFTER_S = 30

#: seconds a client is asked to wait when the face index is locked by another program
INDEX_RETRY_AFTER_S = 5
#: seconds an upload to the index waits at most for another writer (an ``exprsim index
#: add`` of an album holds the index for hours; each waiting upload holds one of the
#: server's threads, and 40 of them stopped every other page)
WRITER_WAIT_S = 5.0

#: the login cookie: it names a session (a random id), never the token itself
COOKIE = "exprsim_session"


#: minutes of video a web video job analyses at most (:attr:`ServeConfig.max_video_minutes`)
DEFAULT_VIDEO_MINUTES = 10.0


@dataclass(frozen=True)
class ServeConfig:
    """How the server runs.

    Attributes:
        db: the face index database (created when missing).
        data_dir: uploads and video reports (default: ``<db>.web/`` beside the database;
            ``exprsim-web/`` in the working folder for a ``postgresql://`` index).
        token: required on every request when set.
        max_upload_mb: upload size limit.
        max_pixels: largest image accepted (judged from the file's header, before its
            pixels are decoded).
        model: shipped model name or checkpoint folder.
        allowed_hosts: when set, requests whose ``Host`` header names another host are
            refused (403): a page on another site cannot reach a server on the loopback
            address through DNS rebinding. ``exprsim serve`` sets it when bound to loopback.
        max_queued_videos: video jobs waiting or running at once; more are refused (429).
        keep_videos_days: finished video jobs (report, tables) older than that many days
            are deleted (``None``: kept for good; :class:`exprsim.web.jobs.VideoJobs`).
        max_video_minutes: a video job analyses at most the sampled frames of this many
            minutes at the default rate (5 a second: 3,000 frames for 10 minutes; a source
            of fewer frames a second gets more minutes); the report says where it stopped
            (``None``: no limit). A 25 MB upload can hold hours of video: hours of CPU.
        secure_cookie: mark the session cookie ``Secure`` (browsers then send it over HTTPS
            only): for a server reached through HTTPS, a TLS proxy in front. A request that
            reaches the app itself over HTTPS gets a ``Secure`` cookie either way.
        public_urls: the addresses users' browsers reach the server by through a proxy in
            front (``https://faces.example.com``; scheme, host and port only): their host
            names are allowed hosts too (when ``allowed_hosts`` is set), and a page of
            theirs may post to the server though the proxy gives it another ``Host``.
            Normalised to origins (lower case, no default port).
    """

    db: str
    data_dir: str | None = None
    token: str | None = None
    max_upload_mb: float = 25.0
    max_pixels: int = 40_000_000
    model: str = "default"
    allowed_hosts: tuple[str, ...] = ()
    max_queued_videos: int = 8
    keep_videos_days: float | None = None
    max_video_minutes: float | None = DEFAULT_VIDEO_MINUTES
    secure_cookie: bool = False
    public_urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Refuse what would misbehave only once requests come (a 500 on each, every upload
        refused as the client's fault) or silently weaken the server: an empty token (no
        authentication at all), a single host name given as a string (it was matched
        letter by letter: ``Host: l`` passed ``"localhost"``). Host names are compared in
        lower case, as requests' are."""
        from exprsim.errors import ArgumentError, require_int, require_number

        if not isinstance(self.db, str) or not self.db.strip():
            raise ArgumentError(f"db must be a non-empty path or URL, got {self.db!r}")
        if self.token is not None and (not isinstance(self.token, str) or not self.token):
            raise ArgumentError(
                "token must be a non-empty string, or None to serve without one, got "
                f"{type(self.token).__name__}"
            )
        rule = "a finite number > 0"
        require_number(
            self.max_upload_mb, "max_upload_mb", rule, 0, low_open=True, error=ArgumentError
        )
        require_int(self.max_pixels, "max_pixels", 1, ArgumentError)
        require_int(self.max_queued_videos, "max_queued_videos", 1, ArgumentError)
        if self.max_video_minutes is not None:
            require_number(
                self.max_video_minutes,
                "max_video_minutes",
                "None or a number > 0",
                0,
                low_open=True,
                error=ArgumentError,
            )
        if self.keep_videos_days is not None:
            rule = "None or a number > 0"
            require_number(
                self.keep_videos_days,
                "keep_videos_days",
                rule,
                0,
                low_open=True,
                error=ArgumentError,
            )
        names = _as_tuple(self.allowed_hosts)
        if not all(isinstance(h, str) and h.strip() for h in names):
            raise ArgumentError(f"allowed_hosts must be host names, got {self.allowed_hosts!r}")
        origins = tuple(dict.fromkeys(public_origin(u) for u in _as_tuple(self.public_urls)))
        object.__setattr__(self, "public_urls", origins)
        allowed = [h.strip().lower() for h in names]
        if allowed:  # the public names too: a proxy may hand their Host on as it is
            allowed += [urlsplit(o).hostname or "" for o in origins]
        object.__setattr__(self, "allowed_hosts", tuple(dict.fromkeys(allowed)))


def _as_tuple(value: Any) -> tuple[Any, ...]:
    """A setting given as one string, or as any iterable of them, as a tuple (anything else
    as a tuple of itself, for the caller to refuse by its items)."""
    if isinstance(value, str):
        return (value,)
    try:
        return tuple(value)
    except TypeError:
        return (value,)


#: ports a browser leaves out of an ``Origin``
_DEFAULT_PORTS = {"http": 80, "https": 443}


def public_origin(url: object) -> str:
    """``url`` (``https://Faces.example.com:443/``) as a browser's ``Origin`` names it
    (``https://faces.example.com``).

    Raises:
        ArgumentError: not an http(s) URL of a host alone (a path, query, user name or
            another scheme).
    """
    from exprsim.errors import ArgumentError

    problem = f"public URL {url!r}: give scheme and host alone, as https://faces.example.com"
    if not isinstance(url, str):
        raise ArgumentError(problem)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ArgumentError(problem) from exc
    scheme = parts.scheme.lower()
    plain = not (parts.query or parts.fragment or parts.username or parts.password)
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        raise ArgumentError(problem)
    if not plain:
        raise ArgumentError(problem)
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    shown = "" if port is None or port == _DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{host}{shown}"


def default_data_dir(db: str) -> Path:
    """Where uploads and video reports go without ``data_dir``: ``<db>.web`` beside a SQLite
    file, ``exprsim-web`` in the working folder for a PostgreSQL index."""
    from exprsim.index.backends import is_postgres_url

    return Path("exprsim-web" if is_postgres_url(db) else f"{db}.web")


#: files of the FER+ folder (``--data-dir`` of ``evaluate``, ``train``, ``classify``...):
#: a server folder holding one is refused (:func:`check_web_dir`)
DATA_SET_FILES = ("fer2013new.csv", "fer2013new.csv.gz", "fer2013.csv", "fer2013.csv.gz")


def check_web_dir(data_dir: Path, what: str = "data_dir") -> None:
    """Refuse a server folder that is a data set's (the FER+ folder of ``evaluate`` and
    ``train``): uploads and reports would go among its files.

    Raises:
        ArgumentError: ``data_dir`` holds one of :data:`DATA_SET_FILES`.
    """
    from exprsim.errors import ArgumentError

    held = [n for n in DATA_SET_FILES if (data_dir / n).exists()]
    if held:
        raise ArgumentError(
            f"{what} {data_dir}: holds {held[0]}, a data set's folder (the FER+ folder of "
            "`evaluate` and `train`); the server writes uploads and reports there: give it a "
            "folder of its own"
        )


def _jpeg(crop: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(crop, np.uint8)).save(buf, format="JPEG", quality=88)
    return buf.getvalue()


class _State:
    """What the routes share: the config, the model, the face index, uploads, jobs, login
    sessions and the login rate limit (``clock``: theirs, monotonic seconds)."""

    def __init__(
        self,
        config: ServeConfig,
        embedder: Any,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from exprsim.web.jobs import VideoJobs

        if embedder is None:
            from exprsim.models.embedder import load_model

            embedder = load_model(config.model)
        self.config = config
        self.embedder = embedder
        self.sessions = SessionStore(clock=clock)
        self.logins = LoginLimiter(clock=clock)
        self.data_dir = Path(config.data_dir) if config.data_dir else default_data_dir(config.db)
        check_web_dir(self.data_dir)
        self.uploads = self.data_dir / "uploads"
        self.max_bytes = int(config.max_upload_mb * (1 << 20))
        self.model_lock = threading.Lock()  # one forward pass at a time: 2 cores, steady latency
        self.jobs = VideoJobs(
            embedder,
            self.data_dir / "videos",
            max_queued=config.max_queued_videos,
            keep_days=config.keep_videos_days,
            max_minutes=config.max_video_minutes,
            tags=self.tag_references,  # the tags the Tags page shows, as `video --tags DB`
        )
        # decoding a large photo takes a few hundred MB: two at a time (2 cores)
        self.decode_slots = threading.BoundedSemaphore(2)
        self.classifier = _classifier(embedder)
        #: the album summary and its map, kept while the index is unchanged
        self.memo = GenerationMemo()
        #: the clustering both are drawn from (every face's record: the latest two only)
        self.summaries = GenerationMemo(size=2)
        #: the map's 2-D projection of every face, the same whatever the clusters
        self.projections = GenerationMemo(size=2)
        #: every face's distance to a tag's references, while the index is unchanged: a
        #: threshold moved on the Tags page filters them (each move scanned the index: a
        #: slider dragged over 200,000 faces stalled the server for 15 s)
        self.tag_distances = GenerationMemo(size=4)
        # the uploads' own detector: video jobs run in another thread with the process-wide
        # one, and a detector must not be used by two threads at once
        self._detector: Any = None
        #: how the index's messages name the database (never shown to clients)
        self.db_names: tuple[str, ...] = (config.db, str(Path(config.db)))

    def set_up_index(self) -> None:
        """Create the database when missing (once, at start-up: a bad ``--db`` fails now,
        with one line naming it, not on the first request)."""
        from exprsim.index.store import FaceIndex

        with FaceIndex(self.config.db, embedder=self.embedder) as ix:
            self.db_names = (*self.db_names, str(ix.path))

    def index(self) -> Any:
        """The face index, opened as it is (``create=False``).

        Raises:
            UploadError: 503 when the SQLite file set up at start-up is gone or empty
                (moved, deleted or replaced under the running server): it is never
                re-created empty, which would hide the real index and split the data.
        """
        from exprsim.index.backends import is_postgres_url
        from exprsim.index.store import FaceIndex

        if not is_postgres_url(self.config.db):
            try:
                found = os.stat(self.config.db)
            except OSError:
                found = None
            if found is None or not stat.S_ISREG(found.st_mode) or found.st_size == 0:
                raise UploadError(
                    "the index database is gone (moved, deleted or emptied while the server "
                    "runs); it is not re-created: restore it, or restart the server (which starts a "
                    "new, empty index there)",
                    503,
                )
        return FaceIndex(self.config.db, embedder=self.embedder, create=False)

    def tag_references(self) -> tuple[np.ndarray, list[str]] | None:
        """The index's reference faces (``(R, 16)`` embeddings, ``R`` names), or ``None``."""
        from exprsim.video.pipeline import index_tag_references

        try:
            with self.index() as ix:
                return index_tag_references(ix, self.embedder)
        except Exception as exc:  # a fault of the index: said without the server's path
            fault = _index_fault(exc, self.db_names)
            if fault is None:
                raise
            raise UploadError(f"the tags could not be read: {fault[0]}", 503) from exc

    def detector(self) -> Any:
        """The uploads' detector (call with :attr:`model_lock` held)."""
        if self._detector is None:
            from exprsim.faces.detect import DEFAULT_DETECTOR, create_detector
            from exprsim.faces.litert import inference_threads

            # one upload at a time (model_lock): its inferences may use every core
            self._detector = create_detector(
                DEFAULT_DETECTOR, inference_threads=inference_threads()
            )
        return self._detector

    def _decode(self, path: Path, then: Any = None) -> tuple[np.ndarray, Any]:
        """The photo at ``path`` and ``then(image)`` (``None``: nothing), inside one of
        :attr:`decode_slots`: a decoded photo (100 MB and more) released its slot and then
        waited for :attr:`model_lock`, so 30 uploads at once held 3.7 GB."""
        from exprsim.io import load_image

        with self.decode_slots:
            image = load_image(path, max_pixels=self.config.max_pixels)
            return image, (None if then is None else then(image))

    async def image_upload(
        self, file: Any, keep: bool = False, then: Any = None
    ) -> tuple[np.ndarray, Any, Any]:
        """Store an uploaded photo and decode it: ``(H, W, 3)`` uint8, the stored file and
        ``then(image)`` (work on the image done before its decode slot is given back).

        ``keep``: the photo goes into the index, so it is stored by content (one copy per
        content, under the client's safe name); else under a random name, for the caller to
        delete.
        """
        from starlette.concurrency import run_in_threadpool

        stored = await store_upload(file, self.uploads, self.max_bytes, ("image",), by_content=keep)
        try:
            image, done = await run_in_threadpool(self._decode, stored.path, then)
        except ImageError as exc:
            if not stored.duplicate:
                stored.path.unlink(missing_ok=True)
            if isinstance(exc, ImageTooLargeError):
                raise UploadError(
                    f"image larger than {self.config.max_pixels} pixels", 413
                ) from exc
            raise
        except BaseException:  # ``then`` failed: an upload not kept is not left behind
            if not keep:
                stored.path.unlink(missing_ok=True)
            raise
        return image, stored, done

    def faces_of(self, image: np.ndarray) -> list[Any]:
        with self.model_lock:
            return list(self.embedder.embed_images([image], detector=self.detector()))

    def add_to_index(self, stored: Any) -> Any:
        """Index a stored upload (:meth:`image_upload` with ``keep``). When it cannot be
        added (the index is read-only, gone, locked...), the upload is deleted, unless it
        is a duplicate: that file was stored, and perhaps indexed, before."""
        added = False
        try:
            with self.model_lock:
                detector = self.detector()
            with self.index() as ix:  # the model is locked once the index is ours
                report = ix.add(
                    [stored.path],
                    detector=detector,
                    embedder_lock=self.model_lock,
                    wait=WRITER_WAIT_S,
                )
                added = True
                if len(ix) and not ix.info().ann_fresh:
                    ix.refresh_ann()  # catches up with the upload, as `index add` does
                    if not ix.info().ann_fresh:  # PostgreSQL without its HNSW index
                        ix.rebuild_ann()
        except BaseException:
            if not added and not stored.duplicate:
                stored.path.unlink(missing_ok=True)
            raise
        return report

    async def uploaded_faces(self, file: Any) -> tuple[np.ndarray, list[Any], str]:
        """Decode an uploaded photo (not kept) and find its faces: the image, its faces and
        the SHA-256 of its bytes (an indexed file of that content is the same photo)."""
        image, stored, faces = await self.image_upload(file, then=self.faces_of)
        stored.path.unlink(missing_ok=True)
        return image, faces, stored.sha256

    def face_json(self, fe: Any, proba: np.ndarray | None) -> dict[str, Any]:
        f, q = fe.aligned.face, fe.aligned.quality
        out: dict[str, Any] = {
            "box": [round(float(v), 2) for v in f.box],
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in f.landmarks],
            "score": round(float(f.score), 4),
            "quality": {
                "ok": bool(q.ok),
                "sharpness": round(float(q.sharpness), 3),
                "yaw": round(float(q.yaw), 2),
                "pitch": round(float(q.pitch), 2),
                "roll": round(float(q.roll), 2),
                "reasons": list(q.reasons),  # why it failed: [] when ok
            },
            # exact: the float32 values the CLI and the index hold (rounded to 6 places, a
            # vector differed from `exprsim embed`'s by up to 5e-7 and its norm was not 1)
            "embedding": [float(v) for v in fe.embedding],
        }
        if proba is not None and self.classifier is not None:
            classes = self.classifier.classes_
            out["emotion"] = {
                str(c): round(float(p), 4) for c, p in zip(classes, proba, strict=True)
            }
        return out


#: face ids are SQLite / PostgreSQL 64-bit integers: larger ones name no face
_MAX_ID = 1 << 63


def _face_number(found: list[Any], face: int | None) -> int:
    """The number of the face to use among an uploaded photo's ``found`` faces: ``face``,
    or when ``None`` the largest that passes the quality check, else the largest (422 when
    there is no such face)."""
    if not found:
        raise UploadError("no face found in the photo", 422)
    if face is None:
        from exprsim.faces.pipeline import usable_face

        face = usable_face(found)
    if not 0 <= face < len(found):
        raise UploadError(f"no face number {face} (found {len(found)})", 422)
    return face


def _nth_face(found: list[Any], face: int | None) -> Any:
    """Face number ``face`` of an uploaded photo's ``found`` faces (:func:`_face_number`)."""
    return found[_face_number(found, face)]


def _with_request(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``check`` as a FastAPI dependency taking the request (its parameter typed as
    Starlette's ``Request`` in a signature FastAPI reads: this module's annotations are
    text, and FastAPI is an optional extra, imported late)."""
    import inspect

    from starlette.requests import Request

    async def dependency(request: Any) -> None:
        await check(request)

    param = inspect.Parameter(
        "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request
    )
    dependency.__signature__ = inspect.Signature([param])  # type: ignore[attr-defined]
    return dependency


def _shown(name: str, limit: int = 80) -> str:
    """``name`` quoted for a message, cut to ``limit`` characters (a 404 repeated a tag
    name of 10,000 characters whole)."""
    return repr(name if len(name) <= limit else name[:limit] + "...")


async def _known_query(request: Any) -> None:
    """Refuse (422) a query parameter or a form field the route does not take: it was
    ignored without a word (``/api/search?top_k=1`` searched 12, ``/api/tags?face=2``
    tagged face 0, whose ``face`` is a form field)."""
    from fastapi import HTTPException

    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    taken = {p.alias for p in dependant.query_params}
    fields = {p.alias for p in dependant.body_params}
    unknown = sorted(set(request.query_params) - taken)
    if unknown:
        where = f"this route takes {', '.join(sorted(taken))}" if taken else "none is taken here"
        hint = " (a form field here)" if unknown[0] in fields else ""
        raise HTTPException(422, f"unknown query parameter `{unknown[0][:64]}`{hint}; {where}")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if fields and kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        sent = set((await request.form()).keys())  # parsed already: cached
        extra = sorted(sent - fields)
        # `face` in the form of /api/search (a query parameter) was ignored; a form without
        # its file is left to the route, whose answer says how to send one
        if extra and (FILE_FIELD in sent or FILE_FIELD not in fields):
            hint = " (a query parameter here)" if extra[0] in taken else ""
            raise HTTPException(
                422,
                f"unknown form field `{extra[0][:64]}`{hint}; this route's form takes "
                f"{', '.join(sorted(fields))}",
            )


def create_app(
    config: ServeConfig,
    embedder: Any = None,
    clock: Callable[[], float] = time.monotonic,
) -> Any:
    """Build the FastAPI application (see the module docstring).

    Each application has its own login sessions and login rate limit, in memory, timed by
    ``clock`` (monotonic seconds; tests pass a fake one).

    Raises:
        BackendUnavailableError: the ``web`` extra (FastAPI) is not installed.
    """
    try:
        from fastapi import FastAPI
    except ImportError as exc:
        from exprsim.errors import BackendUnavailableError

        raise BackendUnavailableError(
            "the web app needs its extra: pip install 'exprsim[web]'"
        ) from exc

    from fastapi import Depends

    from exprsim import __version__

    st = _State(config, embedder, clock)
    app = FastAPI(
        dependencies=[Depends(_with_request(_known_query))],
        title="exprsim",
        version=__version__,
        openapi_url="/api/openapi.json",
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN: see _add_api_docs
        redoc_url=None,
    )
    st.set_up_index()
    st.jobs.recover()  # jobs a stopped server left unfinished: failed, saying so
    st.jobs.prune()
    sweep_temporaries(st.uploads, PARTIAL_UPLOAD)  # uploads a killed server was storing
    _add_error_handlers(app, st)
    app.add_middleware(FormCheck)  # the innermost: forms are read after the token check
    _add_auth(app, st)
    _add_face_routes(app, st)
    _add_summary_routes(app, st)
    _add_tag_routes(app, st)
    _add_video_routes(app, st)
    _add_pages(app, st)
    _add_api_docs(app)
    app.add_middleware(HeadAsGet)  # the outermost: HEAD gets GET's headers, security ones too
    return app


def _wants_page(req: Any) -> bool:
    """Whether a request is a browser's for a page: not under ``/api``, HTML accepted."""
    accept = req.headers.get("accept", "")
    return not req.url.path.startswith("/api") and "text/html" in accept


def _add_error_handlers(app: Any, st: _State) -> None:
    """One-line JSON errors: 4xx for the request's faults, 5xx for the server's (the index
    gone, locked, read-only or unusable: 503, see :func:`_index_fault`), 500 without a
    trace for the unexpected."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    @app.exception_handler(UploadError)
    async def _upload_error(req: Request, exc: UploadError) -> Any:
        if exc.status >= 500:
            log.warning("%s %s: %s", req.method, req.url.path, exc)
        if req.method in ("GET", "HEAD") and not req.url.path.startswith("/api/"):
            from fastapi.responses import HTMLResponse

            from exprsim.web import pages

            # a page (the index gone under the server) answers with a page, not raw JSON
            page = pages.unavailable(str(exc))
            return HTMLResponse(page, status_code=exc.status, headers=exc.headers)
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(req: Request, exc: HTTPException) -> Any:
        # an upload spooled to the temp disk, refused there: FastAPI made it a 400
        full = _disk_full_response(req, exc, logged=exc.__cause__)
        if full is not None:
            return full
        headers = dict(exc.headers or {})  # a 405's ``Allow`` (RFC 9110), a 401's ...
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(req))
        if req.method == "POST" and req.url.path == "/login" and exc.status_code < 500:
            from fastapi.responses import HTMLResponse

            from exprsim.web import pages

            # the login form's own fault (text not UTF-8, a form too large): the form again
            page = pages.login(str(exc.detail))
            return HTMLResponse(page, status_code=exc.status_code, headers=headers)
        if exc.status_code == 404 and req.method in ("GET", "HEAD") and _wants_page(req):
            from fastapi.responses import HTMLResponse

            from exprsim.web import pages

            # a mistyped address in a browser: a page with the header's links, not raw JSON
            return HTMLResponse(pages.not_found(), status_code=404, headers=headers)
        return JSONResponse(
            {"error": str(exc.detail)}, status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _bad_request(req: Request, exc: RequestValidationError) -> JSONResponse:
        if any(tuple(e.get("loc", ())) == ("body", FILE_FIELD) for e in exc.errors()):
            # no file part (a string, another field name, a body that is not multipart)
            kind = req.headers.get("content-type", "").split(";")[0].strip().lower()
            status = 422 if kind == "multipart/form-data" else 415
            what = "video" if req.url.path.startswith("/api/videos") else "photo"
            return JSONResponse({"error": send_file(what)}, status_code=status)
        first = exc.errors()[0] if exc.errors() else {}
        # the parameter's own name ("n"), not the validator's path ("query.n")
        loc = [str(p) for p in first.get("loc", ())]
        where = ".".join(loc[1:] if len(loc) > 1 and loc[0] in _PARTS else loc)
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    @app.exception_handler(ExprsimError)
    async def _user_error(req: Request, exc: ExprsimError) -> JSONResponse:
        fault = _index_fault_response(req, exc, st.db_names)
        if fault is not None:
            return fault
        # an unreadable upload: say why, without the server-side file name
        message = exc.reason if isinstance(exc, ImageError) else str(exc)
        return JSONResponse({"error": message}, status_code=422)

    @app.exception_handler(Exception)
    async def _internal(req: Request, exc: Exception) -> JSONResponse:
        return _internal_error(req, exc, st.db_names)


def _allowed_methods(request: Any) -> list[str]:
    """The methods of every route whose path is the request's (Starlette's 405 names only
    the first such route's), with ``HEAD`` wherever ``GET`` is (:class:`HeadAsGet`)."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in request.app.router.routes:
        if route.matches(request.scope)[0] != Match.NONE:  # the path (PARTIAL: not the method)
            methods |= set(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    order = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
    return sorted(methods, key=lambda m: (order.index(m) if m in order else len(order), m))


def _internal_error(request: Any, exc: BaseException, db_names: tuple[str, ...]) -> Any:
    """The answer to an exception no route handled: 503 for a fault of the index
    (:func:`_index_fault`), else 500 naming only the exception's class (and a traceback
    in the log)."""
    from fastapi.responses import JSONResponse

    fault = _index_fault_response(request, exc, db_names)
    if fault is not None:
        return fault
    log.exception("internal error on %s %s", request.method, request.url.path)
    return JSONResponse({"error": f"internal error ({type(exc).__name__})"}, status_code=500)


def _index_fault_response(request: Any, exc: BaseException, db_names: tuple[str, ...]) -> Any:
    """507 with one line when ``exc`` says the disk is full, 503 (and ``Retry-After`` for a
    locked index) when it is a fault of the index (:func:`_index_fault`), either logged as a
    warning without a traceback; else ``None``."""
    from fastapi.responses import JSONResponse

    full = _disk_full_response(request, exc)  # nothing of the request was stored
    if full is not None:
        return full
    fault = _index_fault(exc, db_names)
    if fault is None:
        return None
    message, headers = fault
    log.warning("%s %s: %s (%s)", request.method, request.url.path, message, exc)
    return JSONResponse({"error": message}, status_code=503, headers=headers)


def _disk_full_response(request: Any, exc: BaseException, logged: object = None) -> Any:
    """507 with one line (and a warning without a traceback, naming ``logged``, default
    ``exc``) when ``exc``, or an error it was raised from, says the disk is full; else
    ``None``."""
    from fastapi.responses import JSONResponse

    if not _is_disk_full(exc):
        return None
    message = "the server's disk is full; nothing was stored"
    shown = exc if logged is None else logged
    log.warning("%s %s: %s (%s)", request.method, request.url.path, message, shown)
    return JSONResponse({"error": message}, status_code=507)


def send_file(what: str) -> str:
    """The answer to an upload of a ``what`` ("photo", "video") without its file part."""
    return (
        f"send the {what} as multipart/form-data in a field named `{FILE_FIELD}` "
        f"(curl: -F {FILE_FIELD}=@{'clip.mp4' if what == 'video' else 'photo.jpg'})"
    )


#: where a request's parameter came from, as the validator names it
_PARTS = frozenset({"query", "path", "body", "header", "cookie", "form"})

#: SQLSTATE of PostgreSQL's "lock not available" (a ``lock_timeout`` ran out)
_PG_LOCK_NOT_AVAILABLE = "55P03"

#: the answer to an index database that cannot be reached (its detail stays in the log)
_UNREACHABLE = "the index database is unreachable; try again"


#: PostgreSQL's SQLSTATE ``disk_full``
_PG_DISK_FULL = "53100"


def _causes(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc`` and the errors it was raised from (``__cause__``, else ``__context__``)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an error it was raised from, says the disk is full: SQLite's
    "database or disk is full", PostgreSQL's ``disk_full``, ``ENOSPC`` / ``EDQUOT``."""
    from exprsim.index.backends import is_disk_full
    from exprsim.web.uploads import DISK_FULL

    return any(
        is_disk_full(e)
        or getattr(e, "sqlstate", None) == _PG_DISK_FULL
        or (isinstance(e, OSError) and e.errno in DISK_FULL)
        for e in _causes(exc)
    )


def _is_busy(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an error it was raised from, says the database is locked: SQLite's
    "database is locked" / "database table is locked" / ``SQLITE_BUSY`` after its timeout,
    PostgreSQL's "lock not available", another writer past :data:`WRITER_WAIT_S`."""
    from exprsim.errors import IndexBusyError

    return any(
        (
            isinstance(e, sqlite3.OperationalError)
            and ("locked" in str(e).lower() or "busy" in str(e).lower())
        )
        or isinstance(e, IndexBusyError)  # another writer held it past WRITER_WAIT_S
        or getattr(e, "sqlstate", None) == _PG_LOCK_NOT_AVAILABLE
        for e in _causes(exc)
    )


def _index_fault(
    exc: BaseException, db_names: tuple[str, ...]
) -> tuple[str, dict[str, str]] | None:
    """``(message, headers)`` when ``exc`` is a fault of the server's index, not of the
    request: the database locked by another program (``Retry-After``), unreachable
    (:class:`~exprsim.errors.IndexUnavailableError`: a fixed sentence and ``Retry-After``,
    since its detail names hosts, sockets or users), an
    :class:`~exprsim.errors.IndexDatabaseError` (read-only, damaged, gone, not an exprsim
    index), or embeddings of another model than the server's. Told by the error's type,
    never by its text; the message never names the server's database or its folder
    (``db_names``); ``None`` for anything else. The detail goes to the server's log
    (:func:`_index_fault_response`).
    """
    from exprsim.index.backends import is_disk_error
    from exprsim.index.pgvector import is_driver_error
    from exprsim.index.store import ModelMismatchError

    if _is_busy(exc):
        busy = "the index is busy (locked by another program); try again"
        return busy, {"Retry-After": str(INDEX_RETRY_AFTER_S)}
    if isinstance(exc, ModelMismatchError):
        return f"the index holds embeddings of another model than this server's ({_REEMBED})", {}
    # a driver error that reached the app unwrapped (a safety net): as unreachable
    if isinstance(exc, IndexUnavailableError) or is_driver_error(exc):
        return _UNREACHABLE, {"Retry-After": str(INDEX_RETRY_AFTER_S)}
    if any(isinstance(e, sqlite3.DatabaseError) and is_disk_error(e) for e in _causes(exc)):
        # SQLite's I/O error unwrapped (a full disk is a 507 before this)
        return "the index's disk is failing (an I/O error); try again later", {}
    if not isinstance(exc, IndexDatabaseError):
        return None
    if exc.read_only:  # a write to a database the server cannot write
        return "the index is read-only on this server; nothing was changed", {}
    text = f"the index cannot be used: {exc.detail}"
    # other mentions of the database or its folder; a bare relative name shows nothing
    # of the server (and could be a common word of the message)
    names = {n for n in (*db_names, exc.db) if n}
    shown = {n: "the index" for n in names}
    shown |= {str(Path(n).parent): "its folder" for n in names if "://" not in n}
    for where in sorted(shown, key=len, reverse=True):
        if "/" in where or "\\" in where:
            text = text.replace(where, shown[where])
    return text, {}


def _add_auth(app: Any, st: _State) -> None:
    """The token check (middleware), the body-size limit, the headers every answer gets
    (:class:`SecurityHeaders`), login and logout.

    With a token, a request gets through when its ``Authorization: Bearer`` header holds
    the token, or its cookie names a live login session (a cookie holding the token itself
    does not count); ``/login`` and ``/logout`` are open to all. Other requests get 401
    (``/api``) or a redirect to the login form.
    """
    from fastapi import Request
    from fastapi.responses import JSONResponse

    config = st.config

    @app.middleware("http")
    async def _checked(request: Request, call_next: Any) -> Any:
        refused = _foreign_request(request, config.allowed_hosts, config.public_urls)
        if refused:
            return JSONResponse({"error": refused}, status_code=403)
        if config.token and request.url.path not in _OPEN_PATHS:
            refusal = _auth_refusal(request, config.token, st)
            if refusal is not None:
                return refusal
        try:
            return await call_next(request)
        except Exception as exc:  # errors raised outside the routes' handlers
            return _internal_error(request, exc, st.db_names)

    # + multipart framing; the message names the upload limit itself
    app.add_middleware(
        BodyLimit,
        max_bytes=st.max_bytes + (64 << 10),
        shown=st.max_bytes,
        small_paths=_OPEN_PATHS,
        small_max=FORM_MAX_BYTES,
        small_answer=_form_too_large,
    )
    # outside the limit: its 413 gets them too, as every answer does
    app.add_middleware(SecurityHeaders)
    _add_login_routes(app, st)


#: paths open without the token: the login form and logout
_OPEN_PATHS = ("/login", "/logout")


def _form_too_large() -> Any:
    """The answer to a body over :data:`FORM_MAX_BYTES` on :data:`_OPEN_PATHS`: the form."""
    from fastapi.responses import HTMLResponse

    from exprsim.web import pages

    return HTMLResponse(pages.login(FORM_TOO_LARGE), status_code=413)


#: sent with a 401 (RFC 9110 11.6.1): the token goes in ``Authorization: Bearer``
BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="exprsim"'}


def _add_login_routes(app: Any, st: _State) -> None:
    """``GET /login`` (the form), ``POST /login`` and ``POST /logout``.

    ``POST /login`` with the right token opens a session (:class:`SessionStore`: it ends
    after 12 hours idle, 7 days after the login, on logout, on a login again from the
    same browser, or when the server restarts) and sets a cookie naming
    it (HttpOnly, SameSite=Strict; Secure with ``ServeConfig.secure_cookie`` or over HTTPS).
    A client address may fail 5 times within 60 seconds
    (:class:`LoginLimiter`); past that, every attempt, right token or not, gets 429 with
    ``Retry-After`` until its oldest failure leaves the window. A success clears the
    client's failures. ``POST /logout`` ends the cookie's session, clears the cookie and
    redirects to the login form.
    """
    from fastapi import Form, Request
    from fastapi.responses import HTMLResponse, RedirectResponse

    from exprsim.web import pages

    config = st.config

    @app.get("/login", response_class=HTMLResponse)
    def login_form() -> str:
        return pages.login()

    @app.post("/login")
    def login(request: Request, token: str = Form("")) -> Any:  # empty: a wrong token, the page
        client = _client(request)
        ok = _token_matches(token, config.token)
        wait = st.logins.attempt(client, ok)
        if wait:
            log.debug("login from %s refused for %d s: too many failures", client, wait)
            page = pages.login(f"Too many failed attempts: try again in {wait} seconds.")
            return HTMLResponse(page, status_code=429, headers={"Retry-After": str(wait)})
        if not ok:
            log.warning("failed login from %s", client)
            return HTMLResponse(
                pages.login("wrong token"), status_code=401, headers=BEARER_CHALLENGE
            )
        resp = RedirectResponse("/", status_code=303)
        st.sessions.drop(request.cookies.get(COOKIE, ""))  # a login again: one session
        resp.set_cookie(
            COOKIE,
            st.sessions.create(),
            httponly=True,
            samesite="strict",
            secure=config.secure_cookie or request.url.scheme == "https",
        )
        return resp

    @app.post("/logout")
    def logout(request: Request) -> Any:
        st.sessions.drop(request.cookies.get(COOKIE, ""))
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(
            COOKIE,
            httponly=True,
            samesite="strict",
            secure=config.secure_cookie or request.url.scheme == "https",
        )
        return resp


def _header_text(value: str) -> str:
    """A header's value as the client meant it: Starlette decodes header bytes as
    Latin-1, clients (curl, requests) send UTF-8, so a non-ASCII token never matched."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _token_matches(given: str, token: str | None) -> bool:
    """Whether ``given`` is the server's token (constant-time; never without a token)."""
    if not token:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


#: prefix length under which IPv6 clients count as one for the login rate limit: a single
#: subscriber usually holds a whole /64 and could pick a fresh address for every guess
IPV6_CLIENT_PREFIX = 64


def _client(request: Any) -> str:
    """The client, as the login rate limit counts it: its IPv4 address (also when written
    as IPv4-mapped IPv6), or its IPv6 address's /64 network."""
    host = request.client.host if request.client else ""
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host or "unknown"
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{addr}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(addr)


def _auth_refusal(request: Any, token: str, st: _State) -> Any:
    """``None`` when a request may go on, else the answer that refuses it.

    A request with an ``Authorization: Bearer`` header is judged by it alone, and counts
    as a login attempt (:class:`LoginLimiter`: wrong tokens there are limited as on the
    form, and a client past the limit gets 429 with ``Retry-After`` even with the right
    one); without the header, its cookie must name a live session (which then counts as
    used). Refused: 401 for ``/api``, else a redirect to the login form.
    """
    from fastapi.responses import JSONResponse, RedirectResponse

    given = _bearer(_header_text(request.headers.get("authorization", "")))
    if given:
        ok = _token_matches(given, token)
        wait = st.logins.attempt(_client(request), ok)
        if wait:
            error = f"too many failed attempts: try again in {wait} seconds"
            return JSONResponse(
                {"error": error}, status_code=429, headers={"Retry-After": str(wait)}
            )
        if ok:
            return None
    elif st.sessions.touch(request.cookies.get(COOKIE, "")):
        return None
    if request.url.path.startswith("/api"):
        return JSONResponse({"error": "token required"}, status_code=401, headers=BEARER_CHALLENGE)
    return RedirectResponse("/login", status_code=303)


#: the way forward when the index holds another model's embeddings
_REEMBED = (
    "start the server with their model, --model, or re-embed them with the server's: "
    "`exprsim index reembed --db DB`, with the server's --model if it was given one"
)


def _health(st: _State, version: str) -> dict[str, Any]:
    """``/api/health``: ``degraded`` (with the problem) while the index holds another
    model's embeddings, since searches answer 503 then."""
    from exprsim.models.identity import index_mismatch

    with st.index() as ix:
        n, stored, differ = len(ix), ix.model, index_mismatch(ix, st.embedder)
    model = st.embedder.config.name_version
    doc: dict[str, Any] = {"status": "ok", "version": version, "model": model, "faces": n}
    if n and differ is not None:  # another name, or the same with other weights (digests)
        doc["status"] = "degraded"
        doc["index_model"] = stored
        doc["problem"] = (
            f"the index holds embeddings of {differ[0]}, not of this server's model "
            f"{differ[1]} ({_REEMBED})"
        )
    return doc


def _add_face_routes(app: Any, st: _State) -> None:
    """Health, faces of a photo, search, thumbnails, adding to the index."""
    from fastapi import File, Query, UploadFile
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool

    from exprsim import __version__

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return _health(st, __version__)

    @app.post("/api/faces")
    async def faces(file: UploadFile = File(...)) -> dict[str, Any]:
        image, found, _ = await st.uploaded_faces(file)
        proba = None
        if found and st.classifier is not None:
            proba = st.classifier.predict_proba(np.stack([f.embedding for f in found]))
        return {
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "faces": [
                st.face_json(f, None if proba is None else proba[i]) for i, f in enumerate(found)
            ],
        }

    @app.post("/api/search")
    async def search_upload(
        file: UploadFile = File(...),
        k: int = Query(12, ge=1, le=200),
        face: int | None = Query(None, ge=0),
    ) -> dict[str, Any]:
        from exprsim.apps.search import search

        _, found, digest = await st.uploaded_faces(file)
        number = _face_number(found, face)  # the page names no face on its first search
        query = found[number]

        def run() -> tuple[list[Any], dict[str, int]]:
            with st.index() as ix:
                if not len(ix):
                    return [], {}
                # as `exprsim search`: the indexed copies of the photo itself are left out
                res = search(query, ix, k=k, embedder=st.embedder, query_sha256=digest)
            return list(res.hits), dict(res.excluded)

        hits, excluded = await run_in_threadpool(run)
        # as `exprsim search` prints them: why a search of an indexed photo finds nothing
        return {"face": number, "hits": [_hit_json(h) for h in hits], "excluded": excluded}

    @app.get("/api/thumbs/{face_id}")
    def thumb(face_id: int) -> Response:
        if not 0 <= face_id < _MAX_ID:
            return JSONResponse({"error": f"no face {face_id}"}, status_code=404)
        with st.index() as ix:
            crop = ix.crop(face_id)
            known = crop is not None or bool(ix.get([face_id]))
        if crop is None:
            # a face loaded from a table (``index add --from-parquet``) has no stored crop
            error = (
                f"face {face_id} has no stored thumbnail (loaded from a table)"
                if known
                else f"no face {face_id}"
            )
            return JSONResponse({"error": error}, status_code=404)
        return Response(_jpeg(crop), media_type="image/jpeg")

    @app.post("/api/index")
    async def index_add(file: UploadFile = File(...)) -> dict[str, Any]:
        # checked (decoded), then let go: add_to_index decodes it again in its turn
        stored = (await st.image_upload(file, keep=True))[1]
        # the event loop keeps serving meanwhile
        report = await run_in_threadpool(st.add_to_index, stored)
        # the name it is stored and shown under (hits, tags), not the client's raw one
        return {"file": display_name(stored.path), **report.to_dict()}


def _add_summary_routes(app: Any, st: _State) -> None:
    from fastapi import Query
    from fastapi.responses import JSONResponse, Response

    @app.get("/api/summary")
    def summary(n: int = Query(6, ge=1, le=50)) -> dict[str, Any]:
        with st.index() as ix:
            state = _album_state(ix, n)
            return st.memo.get(("summary", *state), lambda: _summary_doc(_album(st, ix, state), n))

    @app.get("/api/summary/map.png")
    def summary_map(n: int = Query(6, ge=1, le=50)) -> Response:
        with st.index() as ix:
            state = _album_state(ix, n)
            png = st.memo.get(("map", *state), lambda: _summary_map(st, ix, state))
        if png is None:
            return JSONResponse({"error": "need at least two faces"}, status_code=404)
        return Response(png, media_type="image/png")


def _album_state(ix: Any, n: int) -> tuple[Any, ...]:
    """The index's state and the clusters asked for: ``(store_id, generation, token of
    the last write, faces, n)``, what the album's answers are kept under (a write, or
    another database, changes it; the token, a restored backup written again, which
    reached the same generation and face count and was shown the faces of before)."""
    return (*ix.state_key, len(ix), n)


def _album(st: _State, ix: Any, state: tuple[Any, ...]) -> tuple[list[Any], Any]:
    """Every indexed face's record and their summary in ``n`` (``state[-1]``) clusters
    (``None`` with no face), computed once for the summary and its map while the index is
    in that state (:func:`_album_state`)."""

    def compute() -> tuple[list[Any], Any]:
        from exprsim.apps.summarize import summarize

        records = ix.records()
        n = min(state[-1], len(records))
        # fewer distinct faces than asked: said in the answer's note, not logged per answer
        return records, summarize(records, n_clusters=n, warn=False) if records else None

    return st.summaries.get(state, compute)


def _summary_doc(album: tuple[list[Any], Any], n: int) -> dict[str, Any]:
    """The album summary's JSON: ``n`` clusters of every indexed face."""
    records, s = album
    if not records:
        return {"clusters": [], "faces": 0}
    notes = []
    k = len(s.clusters)
    if k < n:  # fewer distinct faces than clusters asked for: said, not only logged
        notes.append(
            f"{count(k, 'cluster')}, not {n}: the index holds only "
            f"{count(k, 'distinct face')} among {len(records)}"
        )
    if s.sampled is not None:  # summarize's bounded memory
        notes.append(
            f"the clusters were found on an even sample of {s.sampled[0]:,} of the "
            f"{s.sampled[1]:,} distinct faces; every other face joined the nearest cluster"
        )
    doc: dict[str, Any] = {"note": "; ".join(notes)} if notes else {}
    return doc | {
        "faces": len(records),
        "clusters": [
            {
                "cluster": c.rank + 1,
                "size": c.size,
                "representative": records[c.representative].id,
                "thumbnail": f"/api/thumbs/{records[c.representative].id}",
                "members": [records[m].id for m in c.members[:24]],
                # which photo each member is (the page's text for its thumbnail)
                "member_files": [display_name(records[m].source) for m in c.members[:24]],
            }
            for c in s.clusters
        ],
        "map": f"/api/summary/map.png?n={n}",
    }


def _summary_map(st: _State, ix: Any, state: tuple[Any, ...]) -> bytes | None:
    """The album summary's map (PNG) of every indexed face, coloured by its clusters;
    ``None`` with fewer than two faces. When every face is drawn (no sample: up to
    ``MAP_MAX_POINTS``), their 2-D projection does not depend on the number of clusters:
    it is computed once while the index is in that state, and only the colours change."""
    from exprsim.report.plots import embedding_map, map_size, project_2d

    records, s = _album(st, ix, state)
    if len(records) < 2:
        return None
    crops = [ix.crop(r.id) for r in records] if len(records) <= 300 else None
    emb = np.stack([r.embedding for r in records])
    projection = None
    if map_size(len(records)) == len(records):  # else a sample, chosen by the clusters
        projection = st.projections.get(state[:-1], lambda: project_2d(emb))
    labels = [str(v + 1) for v in s.labels]
    return embedding_map(emb, thumbnails=crops, labels=labels, projection=projection)


#: most faces ``GET /api/tags/{name}/faces`` lists (``count`` says how many there are)
TAG_FACES_SHOWN = 200


def _tag_faces(st: _State, name: str, threshold: float | None) -> Any:
    """``GET /api/tags/{name}/faces``: the faces within the tag's threshold, nearest first
    (the first :data:`TAG_FACES_SHOWN`, each with its photo's name: ``shown``), and how
    many there are (``count``)."""
    import hashlib

    from fastapi.responses import JSONResponse

    from exprsim.apps.tag import Tagger, nearest_reference

    with st.index() as ix:
        tagger = Tagger(ix, embedder=st.embedder, threshold=threshold)
        name = _stored_tag_name(name, tagger.names())
        refs = [r for r in tagger.references() if r.name == name]
        if not refs:
            return JSONResponse({"error": f"no tag {_shown(name)}"}, status_code=404)
        ref, limit = np.stack([r.embedding for r in refs]), tagger.index_threshold()

        def distances() -> tuple[np.ndarray, np.ndarray]:
            ids, emb = ix.embeddings()
            return ids, nearest_reference(emb, ref)  # a block of faces at a time

        key = (*ix.state_key, len(ix), name, hashlib.sha256(ref.tobytes()).hexdigest())
        ids, d = st.tag_distances.get(key, distances)
        keep = np.flatnonzero(d < limit)
        order = keep[np.argsort(d[keep])][:TAG_FACES_SHOWN]
        sources = {r.id: r.source for r in ix.get([int(ids[i]) for i in order])}
    return {
        "threshold": limit,
        "count": len(keep),
        "shown": len(order),
        "faces": [
            {"id": int(ids[i]), "distance": round(float(d[i]), 4),
             "thumbnail": f"/api/thumbs/{int(ids[i])}",
             "file": display_name(sources.get(int(ids[i]), ""))}
            for i in order
        ],
    }  # fmt: skip


def _add_tag_routes(app: Any, st: _State) -> None:
    from fastapi import File, Form, Query, UploadFile
    from fastapi.responses import JSONResponse

    from exprsim.apps.tag import Tagger

    @app.get("/api/tags")
    def tags_list() -> dict[str, Any]:
        with st.index() as ix:
            tagger = Tagger(ix, embedder=st.embedder)
            refs = tagger.references()
            threshold = tagger.threshold
        return {
            "threshold": threshold,
            "references": [
                {"id": r.id, "name": r.name, "source": display_name(r.source)} for r in refs
            ],
        }

    @app.post("/api/tags")
    async def tags_add(
        name: str = Form(...), file: UploadFile = File(...), face: int | None = Form(None)
    ) -> dict[str, Any]:
        name = _tag_name(name)
        _, found, _ = await st.uploaded_faces(file)
        # under the client's file name (it was "<array>", the decoded photo's placeholder)
        shown = safe_name(file.filename or "", default="upload")
        reference = replace(_nth_face(found, face), source=shown)
        with st.index() as ix:
            ref = Tagger(ix, embedder=st.embedder).add(name, reference)
        return {"id": ref.id, "name": ref.name}

    @app.post("/api/tags/from-face/{face_id}")
    def tags_add_indexed(face_id: int, name: str = Form(...)) -> Any:
        name = _tag_name(name)
        if not 0 <= face_id < _MAX_ID:
            return JSONResponse({"error": f"no face {face_id}"}, status_code=404)
        with st.index() as ix:
            recs = ix.get([face_id])
            if not recs:
                return JSONResponse({"error": f"no face {face_id}"}, status_code=404)
            rid = ix.add_tag_reference(
                name, recs[0].embedding, st.embedder.config.name_version,
                source=recs[0].source, face_index=recs[0].face_index, crop=ix.crop(face_id),
                model_digest=embedder_digest(st.embedder),
            )  # fmt: skip
        return {"id": rid, "name": name}

    # ``{name:path}``: a name with a ``/`` (possible from the CLI) still reaches its tag
    @app.get("/api/tags/{name:path}/faces")
    def tags_faces(name: str, threshold: float | None = Query(None, gt=0, le=2)) -> Any:
        return _tag_faces(st, name, threshold)

    @app.delete("/api/tags/{name:path}")
    def tags_delete(name: str) -> Any:
        with st.index() as ix:
            tagger = Tagger(ix, embedder=st.embedder)
            names = tagger.names()
            name = _stored_tag_name(name, names)
            if name not in set(names):  # as the GET route and `exprsim tag remove`
                return JSONResponse({"error": f"no tag {_shown(name)}"}, status_code=404)
            return {"removed": tagger.remove(name)}


#: what the video page and ``POST /api/videos`` say on a server without PyAV
NO_VIDEO_EXTRA = (
    "this server cannot read videos: its `video` extra is not installed "
    "(pip install 'exprsim[video]')"
)


@functools.cache
def _reads_video() -> bool:
    """Whether PyAV, which video jobs need, imports here (installed, and its libraries
    load: a broken install passed a look for the package)."""
    try:
        import av  # noqa: F401
    except Exception:  # ImportError, or a library that does not load (OSError)
        return False
    return True


def _add_video_routes(app: Any, st: _State) -> None:
    from fastapi import File, UploadFile
    from fastapi.responses import HTMLResponse, JSONResponse

    @app.post("/api/videos")
    async def videos(file: UploadFile = File(...)) -> dict[str, Any]:
        from exprsim.web.jobs import QueueFullError

        if not _reads_video():  # refused before the upload is stored, not as a failed job
            raise UploadError(NO_VIDEO_EXTRA, 501)
        stored = await store_upload(file, st.uploads, st.max_bytes, ("video",))
        try:
            return st.jobs.submit(stored.path, stored.original_name).to_dict()
        except QueueFullError as exc:
            # a video job takes about a minute on two cores: ask again in half of that
            raise UploadError(str(exc), 429, {"Retry-After": str(QUEUE_RETRY_AFTER_S)}) from exc
        except OSError as exc:  # its folder could not be made (the upload is deleted)
            log.warning("video upload: cannot make its job folder (%s)", exc)
            raise storage_error(exc) from exc

    @app.get("/api/jobs/{job_id}")
    def job(job_id: str) -> Any:
        j = st.jobs.get(job_id)
        if j is None:
            return JSONResponse({"error": "no such job"}, status_code=404)
        return j.to_dict()

    @app.get("/api/videos/{job_id}/report", response_class=HTMLResponse)
    def video_report(job_id: str) -> Any:
        j = st.jobs.get(job_id)
        if j is None or j.status != "done":
            return JSONResponse({"error": "no finished job with that id"}, status_code=404)
        try:  # removed since (a clean-up of big outputs, a partial restore)
            report = (j.out_dir / "report.html").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return JSONResponse(
                {"error": f"the report of job {job_id} is missing"}, status_code=404
            )
        # a page of the client's data (file, tag and person names): no script, no request
        # of its own, and an origin of its own, should any escaping ever slip
        return HTMLResponse(report, headers={"Content-Security-Policy": REPORT_CSP})


def _add_pages(app: Any, st: _State) -> None:
    """The four pages; with a token, each has a "Log out" button."""
    from fastapi.responses import HTMLResponse

    from exprsim.web import pages

    def page(text: str) -> str:
        return pages.with_logout(text) if st.config.token else text

    @app.get("/", response_class=HTMLResponse)
    def home() -> str:
        with st.index() as ix:
            info = ix.info().to_dict()
        return page(pages.home(info))

    @app.get("/summary", response_class=HTMLResponse)
    def summary_page() -> str:
        return page(pages.summary())

    @app.get("/tags", response_class=HTMLResponse)
    def tags_page() -> str:
        return page(pages.tags())

    @app.get("/video", response_class=HTMLResponse)
    def video_page() -> str:
        return page(pages.video(None if _reads_video() else NO_VIDEO_EXTRA))


def _add_api_docs(app: Any) -> None:
    """``/api/docs``: the API's routes as a plain page, read from the OpenAPI schema (FastAPI's
    Swagger UI and ReDoc load their scripts from a CDN: blocked by the pages' CSP, and
    unreachable offline)."""
    from fastapi.responses import HTMLResponse

    from exprsim.web import pages

    @app.get("/api/docs", response_class=HTMLResponse, include_in_schema=False)
    def api_docs() -> str:
        return pages.api_docs(app.openapi())


class HeadAsGet:
    """ASGI middleware: ``HEAD`` answered as the ``GET`` of the same URL without its body
    (RFC 9110; uptime monitors, ``curl -I``, link checkers). The headers are GET's,
    ``Content-Length`` included; a URL without ``GET`` answers 405 with ``Allow``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(msg: Any) -> None:
            if msg.get("type") == "http.response.body":
                msg = {**msg, "body": b""}
            await send(msg)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class BodyLimit(HttpMiddleware):
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413 while they stream
    in (by ``Content-Length`` up front, else by counting), before anything is stored.

    Paths in ``small_paths`` (those open without the token) take ``small_max`` bytes at
    most, whatever the body's type, and are refused with ``small_answer()``: a client
    without the token can make the server neither spool large parts to disk nor hold
    many files open."""

    def __init__(
        self,
        app: Any,
        max_bytes: int,
        shown: int | None = None,
        small_paths: tuple[str, ...] = (),
        small_max: int = 0,
        small_answer: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes
        self.shown = max_bytes if shown is None else shown
        self.small_paths = small_paths
        self.small_max = small_max
        self.small_answer = small_answer

    async def http(self, scope: Any, receive: Any, send: Any) -> None:
        from starlette.exceptions import HTTPException
        from starlette.responses import JSONResponse

        limit = self.max_bytes
        if scope.get("path") in self.small_paths and self.small_answer is not None:
            limit, too_big = self.small_max, self.small_answer()
        else:
            too_big = JSONResponse(
                {"error": f"upload larger than the limit ({size_text(self.shown)})"},
                status_code=413,
            )
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await too_big(scope, receive, send)
            return
        seen = 0
        exceeded = False
        started = False

        async def counted() -> Any:
            nonlocal seen, exceeded
            msg = await receive()
            if msg.get("type") == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise HTTPException(413, "upload too large")  # stops the body's reading
            return msg

        async def guarded_send(msg: Any) -> None:
            # past the limit, whatever the app answers (its body parser turns the error
            # above into a 400) is replaced by the 413
            nonlocal started
            if exceeded:
                if not started and msg.get("type") == "http.response.start":
                    started = True
                    await too_big(scope, receive, send)
                return
            if msg.get("type") == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counted, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await too_big(scope, receive, send)


#: sent with every response: no MIME sniffing, no framing by other sites, no referrer
#: to other sites (``same-origin``: with ``no-referrer`` Chromium sends ``Origin: null`` on
#: the pages' own form posts, and the cross-origin check refused every login and logout)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "same-origin",
    # another site's page may not read thumbnails or the map (an <img>'s load or error
    # told it which face ids exist on a server without a token)
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "frame-ancestors 'self'; form-action 'self'; base-uri 'none'"
    ),
}

#: the policy of a video report served by the app (self-contained: inline styles, data:
#: images): sandboxed, so that it runs nothing and reaches nothing of the app's
REPORT_CSP = (
    "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)

#: ``Cache-Control`` of every answer that sets none: the API's answers and the pages show
#: the index's private data (faces, tags, file names), which no cache may keep, shared
#: (a proxy in front of a token server) or the browser's. Thumbnails too: they are looked
#: up by face id, and a deleted face's id may be given to a new one
CACHE_CONTROL = "no-store"
#: the headers :class:`SecurityHeaders` gives every answer that sets none of its own
_EVERY_ANSWER = {**SECURITY_HEADERS, "Cache-Control": CACHE_CONTROL}


class SecurityHeaders(HttpMiddleware):
    """ASGI middleware: :data:`SECURITY_HEADERS` and :data:`CACHE_CONTROL` on every answer,
    unless it sets its own (outside the body limit, so that its 413 has them too)."""

    async def http(self, scope: Any, receive: Any, send: Any) -> None:
        from starlette.datastructures import MutableHeaders

        async def with_headers(msg: Any) -> None:
            if msg.get("type") == "http.response.start":
                headers = MutableHeaders(raw=list(msg.get("headers") or []))
                for name, value in _EVERY_ANSWER.items():
                    headers.setdefault(name, value)
                msg = {**msg, "headers": headers.raw}
            await send(msg)

        await self.app(scope, receive, with_headers)


_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _foreign_request(
    request: Any, allowed_hosts: tuple[str, ...], public_origins: tuple[str, ...] = ()
) -> str:
    """Why a request from another site is refused, or ``""``.

    * ``allowed_hosts`` set: the ``Host`` header must name one of them (any port);
    * a browser's request made by another site's page (``Sec-Fetch-Site`` ``cross-site``
      or ``same-site``: another port of the same host is the same site), unless it is a
      navigation (a link followed), is refused: it could make a server without a token
      work (cluster, embed) or tell which faces exist;
    * a state-changing request sent by a browser from another origin (its ``Origin``
      header names another host than ``Host``, and is none of ``public_origins``: the
      server's own through a proxy) is refused whatever the configuration: without a
      token, any web page could otherwise post to a server on the loopback.
    """
    host = request.headers.get("host", "")
    # HTTP/1.0 needs no Host (old probes, nc); a browser, as DNS rebinding needs, sends one
    bare = "host" not in request.headers and request.scope.get("http_version") == "1.0"
    if allowed_hosts and not bare:
        try:
            name = urlsplit(f"//{host}").hostname or ""
        except ValueError:
            name = ""
        if name.lower() not in allowed_hosts:
            return f"host {host!r} not allowed"
    fetched = request.headers.get("sec-fetch-site", "").lower()
    if fetched in ("cross-site", "same-site") and request.headers.get("sec-fetch-mode") != (
        "navigate"
    ):  # another site's page loading or fetching from here (a link followed is let in)
        return "request from another site's page refused"
    origin = request.headers.get("origin")
    if origin is not None and request.method in _UNSAFE_METHODS:
        try:
            netloc = urlsplit(origin).netloc
        except ValueError:
            netloc = ""
        if netloc.lower() != host.lower() and origin.lower() not in public_origins:
            return "cross-origin request refused"
    return ""


def _bearer(header: str) -> str:
    """The token of an ``Authorization`` header (scheme ``Bearer``, any case; a bare token
    is taken as is)."""
    scheme, _, rest = header.strip().partition(" ")
    if not rest:
        return scheme
    return rest.strip() if scheme.lower() == "bearer" else ""


def _stored_tag_name(name: str, stored: Iterable[str]) -> str:
    """The tag a URL names: ``name`` exactly when a tag is stored under it (an earlier
    version took names with spaces around them), else ``name`` stripped, as forms are, and
    composed (:func:`exprsim.index.store.compose_tag_name`)."""
    from exprsim.index.store import compose_tag_name

    names = set(stored)
    return name if name in names else compose_tag_name(name.strip(), names)


def _tag_name(name: str) -> str:
    """A tag name from a form, stripped, then checked by the rule every entry point shares
    (:func:`exprsim.index.store.check_new_tag_name`; 422 when it breaks it)."""
    from exprsim.index.store import check_new_tag_name, compose_tag_name

    name = compose_tag_name(name.strip())
    if not name:
        raise UploadError("a tag name must not be empty", 422)
    if "\ufffd" in name:  # what a decoder leaves of bytes that were not text
        raise UploadError("a tag name must be UTF-8 text (it holds U+FFFD)", 422)
    try:
        check_new_tag_name(name)
    except ExprsimError as exc:
        raise UploadError(str(exc), 422) from exc
    return name


def _hit_json(h: Any) -> dict[str, Any]:
    return {
        "rank": h.rank,
        "face_id": h.face_id,
        "file": display_name(h.source),
        "face": h.face_index,
        "distance": round(float(h.distance), 4),
        "thumbnail": f"/api/thumbs/{h.face_id}",
    }


def _classifier(embedder: Any) -> Any:
    """The shipped kNN emotion classifier when it matches the model, else ``None``."""
    try:
        from exprsim.apps.classify import load_reference_set

        ref = load_reference_set()
        if ref.mismatch(embedder) is not None:
            return None
        return ref.classifier()
    except ExprsimError:
        return None
