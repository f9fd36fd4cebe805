"""The exprsim web app (``exprsim serve``): a JSON API under ``/api`` and HTML pages over the
library. Needs the ``[web]`` extra (FastAPI, uvicorn, python-multipart)."""

from __future__ import annotations

from exprsim.web.app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]
