"""Round 36 (Python 3.12 and 3.13 tried): pip on 3.13 built numpy's sources for 8 minutes,
then named mediapipe; `requires-python` now stops before 3.13, and the classifiers claim
no version it excludes (nor does it take one they do not claim)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]


def test_requires_python_and_the_classifiers_name_the_same_versions() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    spec = SpecifierSet(project["requires-python"])
    prefix = "Programming Language :: Python :: 3."
    claimed = {
        c.removeprefix("Programming Language :: Python :: ")
        for c in project["classifiers"]
        if c.startswith(prefix)
    }
    assert claimed == {"3.11", "3.12"}
    assert all(f"{v}.0" in spec for v in claimed)
    assert "3.13.0" not in spec and "3.10.0" not in spec  # mediapipe 0.10.21, numpy<2
