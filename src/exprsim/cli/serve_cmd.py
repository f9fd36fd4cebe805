"""``exprsim serve``: a thin shell over :func:`exprsim.web.create_app` + uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import os
from pathlib import Path
from typing import Any

from exprsim.cli.argtypes import float_in, int_at_least
from exprsim.errors import ExprsimError


def register(subparsers: Any) -> None:
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
    p.add_argument("--port", type=int_at_least(0, 65535), default=8000, help="port (default 8000)")
    p.add_argument("--token", default=None, help="access token (default: $EXPRSIM_TOKEN)")
    p.add_argument(
        "--max-upload-mb",
        type=float_in(0.0, 10_000.0, lo_open=True),
        default=25.0,
        help="largest upload in MB (default 25)",
    )
    p.add_argument("--data-dir", metavar="DIR", help="uploads and video reports (default <db>.web)")
    p.add_argument("--model", default="default", help="shipped model name or checkpoint folder")
    p.set_defaults(func=cmd_serve)


#: ``Host`` names a server bound to loopback answers to
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_port(host: str, port: int) -> None:
    """Refuse, with one line, an address the server could not listen on (port in use, a
    host name that does not resolve, a privileged port)."""
    import socket

    if port == 0:
        return
    try:
        with socket.create_server((host, port), family=_family(host)):
            pass
    except OSError as exc:
        raise ExprsimError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); is it in use?"
        ) from exc


def _family(host: str) -> int:
    import socket

    return socket.AF_INET6 if ":" in host else socket.AF_INET


def cmd_serve(args: argparse.Namespace) -> int:
    token = (args.token or os.environ.get("EXPRSIM_TOKEN") or "").strip() or None
    if not is_loopback(args.host) and not token:
        raise ExprsimError(
            f"refusing to serve on {args.host} without a token: anyone who can reach it could "
            "read and change the index (give --token or EXPRSIM_TOKEN, or bind 127.0.0.1)"
        )
    try:
        import uvicorn
    except ImportError as exc:
        raise ExprsimError("the web app needs its extra: pip install 'exprsim[web]'") from exc
    from exprsim.web import ServeConfig, create_app
    from exprsim.web.app import default_data_dir

    # uploads land there: fail now, not on the first upload (also the default <db>.web)
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir(args.db)
    try:
        (data_dir / "uploads").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExprsimError(f"data folder {data_dir}: cannot create it ({exc})") from exc
    _check_port(args.host, args.port)  # before a minute of model loading, not after
    app = create_app(
        ServeConfig(
            db=args.db,
            data_dir=args.data_dir,
            token=token,
            max_upload_mb=args.max_upload_mb,
            model=args.model,
            # on loopback, only this machine's names: a page elsewhere cannot reach the
            # server by pointing its own domain at 127.0.0.1 (DNS rebinding)
            allowed_hosts=(*LOOPBACK_NAMES, args.host.lower()) if is_loopback(args.host) else (),
        )
    )
    print(f"exprsim serve: http://{args.host}:{args.port}/  (Ctrl-C stops)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning" if args.quiet else "info")
    return 0
