"""``exprsim serve``: a thin shell over :func:`exprsim.web.create_app` + uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from exprsim.cli.argtypes import (
    MODEL_HELP,
    command_parsers,
    float_in,
    int_at_least,
    require_writable,
)
from exprsim.errors import ExprsimError

log = logging.getLogger(__name__)


#: the --token help: the variable first (a value given on the command line shows in the
#: process list)
TOKEN_HELP = (
    "access token (default: $EXPRSIM_TOKEN; prefer the variable: a --token value shows in "
    "the process list)"
)


def register(subparsers: Any) -> None:
    command_parsers(subparsers)
    p = subparsers.add_parser(
        "serve",
        help="serve the web app: upload, search, album summary, emotions, tags, video",
        description=(
            "Serve exprsim in the browser (FastAPI on uvicorn; JSON API under /api, schema "
            "at /api/openapi.json). Binding to anything but loopback needs --token (or "
            "EXPRSIM_TOKEN); with a token, every request must carry it."
        ),
    )
    p.add_argument(
        "--db", required=True, metavar="DB", help="face index: SQLite file or postgresql:// URI"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int_at_least(0, 65535),
        default=8000,
        help="port, 0 to 65535 (default 8000; 0: a free one)",
    )
    p.add_argument("--token", default=None, help=TOKEN_HELP)
    p.add_argument(
        "--max-upload-mb",
        type=float_in(0.0, 10_000.0, lo_open=True),
        default=25.0,
        help="largest upload in MB, > 0 and at most 10,000 (default 25)",
    )
    p.add_argument(
        "--web-dir",
        "--data-dir",  # its first name; other commands' --data-dir is the FER+ folder
        dest="data_dir",
        metavar="DIR",
        help="the server's own folder: uploads and video reports (default <db>.web beside a "
        "SQLite index, ./exprsim-web for PostgreSQL; --data-dir is an older name)",
    )
    p.add_argument("--model", default="default", help=MODEL_HELP)
    p.add_argument(
        "--keep-videos",
        type=float_in(0.0, 36_500.0, lo_open=True),
        metavar="DAYS",
        default=None,
        help="delete finished video reports older than DAYS days, > 0 and at most 36,500 "
        "(default: keep them)",
    )
    p.add_argument(
        "--max-video-minutes",
        type=float_in(0.0, 100_000.0, lo_open=True),
        metavar="MIN",
        default=10.0,  # ServeConfig.max_video_minutes (tests/web/test_video_cap_r34.py)
        help="a video job analyses at most the first MIN minutes of its video, > 0 (default "
        "10; an upload of 25 MB can hold hours of video)",
    )
    p.add_argument(
        "--secure-cookie",
        action="store_true",
        help="mark the login cookie Secure (sent over HTTPS only): use it when users reach the "
        "server through HTTPS, a TLS proxy in front",
    )
    p.add_argument(
        "--public-url",
        action="append",
        default=[],
        metavar="URL",
        help="the address users type when a proxy in front forwards to this server, as "
        "https://faces.example.com (repeatable; default: none): its pages may post here, and "
        "on loopback its host name is answered too",
    )
    p.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDR",
        help="address of a proxy in front (repeatable, e.g. 127.0.0.1; default: none): requests from it are "
        "taken as coming from the client its X-Forwarded-For names (the login rate limit "
        "counts clients, not the proxy) and by the scheme its X-Forwarded-Proto names",
    )
    p.set_defaults(func=cmd_serve)


#: a token shorter than this is warned about (a login is limited per client address, and a
#: client with many addresses guesses faster)
SHORT_TOKEN = 16

#: ``Host`` names a server bound to loopback answers to
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def _check_proxy_address(addr: str) -> None:
    """Refuse a ``--trusted-proxy`` that is not an IP address or network (uvicorn would take
    any other text as a socket's name, never matched by a proxy reached over TCP)."""
    try:
        ipaddress.ip_network(addr.strip(), strict=False)
    except ValueError as exc:
        raise ExprsimError(
            f"--trusted-proxy {addr!r}: not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8)"
        ) from exc


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` for the server (``port`` 0: a free one the system
    picks), or one line on why not (port in use, a host name that does not resolve, a
    privileged port).

    Opened before the model loads and held until the server takes it over: the port cannot
    be taken meanwhile, and the URL printed is the one served (connections made while the
    model loads wait in the queue)."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        # as uvicorn does: a restart need not wait for the old connections' TIME_WAIT
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen()
    except OSError as exc:
        sock.close()
        raise ExprsimError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); is it in use?"
        ) from exc
    return sock


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _url(host: str, port: int) -> str:
    """The server's address for a browser (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _run_server(
    app: Any, sock: socket.socket, host: str, quiet: bool, trusted_proxies: tuple[str, ...] = ()
) -> None:
    """Serve ``app`` with uvicorn on the listening ``sock`` until Ctrl-C (which, as with
    ``uvicorn.run``, is a normal stop); ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are
    read from ``trusted_proxies`` alone."""
    import uvicorn

    from exprsim.web.server import GuardedH11Protocol, GuardedServer, connection_limit

    port = int(sock.getsockname()[1])
    # proxy headers from the proxies named only: uvicorn would otherwise take a loopback
    # client's X-Forwarded-For as its address, and any local process could pick its own
    # for the login rate limit.
    # Connections are bounded below the open-file limit, and each has a bounded time to
    # send its request headers (GuardedH11Protocol): idle clients cannot starve the server
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning" if quiet else "info",
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies) or None,
        http=GuardedH11Protocol,
        limit_concurrency=connection_limit(raise_file_limit()),
    )
    with contextlib.suppress(KeyboardInterrupt):
        GuardedServer(config).run(sockets=[sock])


def raise_file_limit() -> int | None:
    """Raise the process's soft limit of open files to its hard limit (POSIX; many systems
    default to 1024 soft, far more hard): the limit now in force, ``None`` where there is
    none to read."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return None
    # an unlimited hard limit is not a value the soft one may take on every system (macOS)
    if soft == resource.RLIM_INFINITY:
        return None
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft >= target:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as exc:
        log.debug("cannot raise the open-file limit from %d to %d (%s)", soft, target, exc)
        return soft
    return target


def _make_web_dir(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """The folder uploads land in (``--web-dir``, default ``<db>.web``), made now: fail at
    start, not on the first upload. Returns it, and the topmost folder this call made
    (``None`` when it was there)."""
    from exprsim.web.app import check_web_dir, default_data_dir

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir(args.db)
    check_web_dir(data_dir, "--web-dir")  # the other commands' --data-dir
    top = None
    up = data_dir.absolute()
    while not os.path.lexists(up) and up != up.parent:
        top, up = up, up.parent
    try:
        (data_dir / "uploads").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExprsimError(f"--web-dir {data_dir}: cannot create it ({exc})") from exc
    return data_dir, top


def _remove_empty(data_dir: Path, top: Path) -> None:
    """Remove the folders made for a server that did not start (``data_dir`` up to
    ``top``, its parents made too), where still empty."""
    for folder in (data_dir / "uploads", data_dir / "videos"):
        with contextlib.suppress(OSError):
            folder.rmdir()
    folder = data_dir.absolute()
    while True:
        try:
            folder.rmdir()
        except OSError:
            return
        if folder == top:
            return
        folder = folder.parent


def _serve_config(args: argparse.Namespace, token: str | None) -> Any:
    from exprsim.web import ServeConfig

    return ServeConfig(
        db=args.db,
        data_dir=args.data_dir,
        token=token,
        max_upload_mb=args.max_upload_mb,
        model=args.model,
        secure_cookie=args.secure_cookie,
        keep_videos_days=args.keep_videos,
        max_video_minutes=args.max_video_minutes,
        # on loopback, only this machine's names: a page elsewhere cannot reach the
        # server by pointing its own domain at 127.0.0.1 (DNS rebinding)
        allowed_hosts=((*LOOPBACK_NAMES, args.host.lower()) if is_loopback(args.host) else ()),
        public_urls=tuple(args.public_url),
    )


def cmd_serve(args: argparse.Namespace) -> int:
    token = (args.token or os.environ.get("EXPRSIM_TOKEN") or "").strip() or None
    if not is_loopback(args.host) and not token:
        raise ExprsimError(
            f"refusing to serve on {args.host} without a token: anyone who can reach it could "
            "read and change the index (set EXPRSIM_TOKEN, or give --token, which other users "
            "can see in the process list; or --host 127.0.0.1)"
        )
    for addr in args.trusted_proxy:
        _check_proxy_address(addr)
    if token is not None and len(token) < SHORT_TOKEN:
        print(
            f"exprsim serve: warning: the token has {len(token)} characters, few enough to "
            f"guess; give {SHORT_TOKEN} characters or more, e.g. from "
            "python -c 'import secrets; print(secrets.token_urlsafe())'",
            file=sys.stderr,
        )
    try:
        import uvicorn  # noqa: F401  (checked before any work; _run_server uses it)
    except ImportError as exc:
        raise ExprsimError("the web app needs its extra: pip install 'exprsim[web]'") from exc
    from exprsim.web.server import cap_malloc_arenas

    cap_malloc_arenas()  # before the model and the request threads allocate
    # a warning per malformed multipart body (answered 400 anyway): any client could grow
    # the server's log at will ("Expected boundary character", 286 lines in one audit)
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    from exprsim.index.backends import is_postgres_url
    from exprsim.web import create_app
    from exprsim.web.app import public_origin

    for url in args.public_url:
        public_origin(url)  # before the model loads

    # a mistyped --db must not become a new, empty index unnoticed: its folder must be
    # there (as for `index add`), and a new index is named when the server starts
    new_db = not is_postgres_url(str(args.db)) and not os.path.lexists(args.db)
    if new_db:
        require_writable(args.db, "--db")
    data_dir, made = _make_web_dir(args)
    started = False
    try:
        # before a minute of model loading, not after; closed however the command ends
        with _listen(args.host, args.port) as sock:
            app = create_app(_serve_config(args, token))
            started = True
            _announce(args, sock, new_db)
            _run_server(app, sock, args.host, args.quiet, tuple(args.trusted_proxy))
    except BaseException:  # a busy port, an index refused (a newer schema): no folder left
        if made is not None and not started:
            _remove_empty(data_dir, made)
        raise
    return 0


def _announce(args: argparse.Namespace, sock: socket.socket, new_db: bool) -> None:
    """The lines ``serve`` prints once it is ready."""
    if new_db:
        print(f"exprsim serve: no index at {args.db}: a new, empty one is made there")
    # the port bound, not the one asked for (--port 0: the system's choice)
    print(f"exprsim serve: {_url(args.host, sock.getsockname()[1])}  (Ctrl-C stops)")
