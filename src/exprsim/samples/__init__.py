"""Sample photos bundled with exprsim (real, permissively licensed; see LICENSES.md here).

Used by ``make demo``, the README tour and the tests; nothing is downloaded.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_SUFFIXES = (".jpg", ".jpeg", ".png")


def sample_dir() -> Path:
    """Folder holding the bundled sample photos."""
    return Path(str(resources.files(__name__)))


def sample_images() -> list[Path]:
    """Paths of the bundled sample photos, sorted by name."""
    return sorted(p for p in sample_dir().iterdir() if p.suffix.lower() in _SUFFIXES)


def sample_path(name: str) -> Path:
    """Path of one bundled sample photo by file name (e.g. ``"grace_hopper.jpg"``)."""
    path = sample_dir() / name
    if not path.is_file():
        names = ", ".join(p.name for p in sample_images())
        raise FileNotFoundError(f"no bundled sample {name!r}; available: {names}")
    return path
