"""Shared test helper: copies of the shipped model's folder, their ``config.json`` edited."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exprsim.models.embedder import _weights_dir


def copy_model(tmp_path: Path, name: str = "m") -> Path:
    """A copy of the shipped model's folder at ``tmp_path / name``."""
    out = tmp_path / name
    shutil.copytree(_weights_dir("default"), out)
    return out


def edit_config(folder: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    """Apply ``change`` to the folder's ``config.json`` (a dict, changed in place)."""
    cfg = json.loads((folder / "config.json").read_text())
    change(cfg)
    (folder / "config.json").write_text(json.dumps(cfg))
