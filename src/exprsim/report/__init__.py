"""Reports: matplotlib figures as PNG bytes (:mod:`exprsim.report.plots`) and self-contained
HTML pages (:class:`exprsim.report.html.Page`)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["Page"]


def __getattr__(name: str) -> Any:
    if name == "Page":
        return import_module("exprsim.report.html").Page
    raise AttributeError(f"module 'exprsim.report' has no attribute {name!r}")
