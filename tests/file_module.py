"""Shared test helper: import a file outside the package (a benchmark, a script)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType


def load_file_module(path: Path, name: str) -> Iterator[ModuleType]:
    """Import ``path`` as module ``name`` and yield it, then drop it from ``sys.modules``
    (the body of a pytest fixture: ``yield from load_file_module(...)``)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(name, None)
