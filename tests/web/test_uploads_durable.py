"""A kept upload (one the face index will name) is on disk before it takes its name.

``store_upload(..., by_content=True)`` syncs the finished file before the rename and the
folder after (uploads deleted after their request are not synced). Before, neither was
synced: after a power cut the index could name an empty photo.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed")

from exprsim.web import uploads

PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)


class _Upload:
    def __init__(self, data: bytes, filename: str = "photo.png") -> None:
        self._buf = io.BytesIO(data)
        self.filename = filename

    async def read(self, n: int) -> bytes:
        return self._buf.read(n)


def _record(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def file(path: Path) -> None:  # what the file holds when it is synced, and its name
        seen.append(("file", (Path(path).name, Path(path).read_bytes())))

    def folder(path: Path) -> None:
        seen.append(("folder", sorted(p.name for p in Path(path).iterdir())))

    monkeypatch.setattr(uploads, "sync_file", file)
    monkeypatch.setattr(uploads, "sync_folder", folder)
    return seen


def test_a_kept_upload_is_synced_before_its_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _record(monkeypatch)
    stored = asyncio.run(
        uploads.store_upload(_Upload(PNG), tmp_path, 1 << 20, ("image",), by_content=True)
    )
    assert [kind for kind, _ in seen] == ["file", "folder"]
    name, data = seen[0][1]
    assert name.startswith(".part-") and data == PNG  # whole, under its temporary name
    assert seen[1][1] == [stored.path.name]  # the folder after the rename
    assert stored.path.read_bytes() == PNG


def test_a_passing_upload_is_not_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _record(monkeypatch)
    stored = asyncio.run(uploads.store_upload(_Upload(PNG), tmp_path, 1 << 20, ("image",)))
    assert seen == [] and stored.path.read_bytes() == PNG
