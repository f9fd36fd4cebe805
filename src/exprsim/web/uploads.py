"""Uploads: size-capped while streaming, checked by content (never by name), stored under the
server's data folder with generated names."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exprsim.errors import ExprsimError


class UploadError(ExprsimError):
    """An upload was refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class StoredUpload:
    """An accepted upload.

    Attributes:
        path: where it was stored (a generated name under the uploads folder).
        kind: ``"image"`` or ``"video"``, decided by the content.
        original_name: the client's file name (for display only; never used as a path).
        size: bytes.
    """

    path: Path
    kind: str
    original_name: str
    size: int


def sniff(head: bytes) -> str | None:
    """``"image"``, ``"video"`` or ``None`` from the first bytes of a file (magic numbers)."""
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")):
        return "image"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video"
    if head[4:8] == b"ftyp":  # mp4 / mov / m4v
        return "video"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # matroska / webm
        return "video"
    return None


async def store_upload(
    upload: Any, folder: Path, max_bytes: int, allow: tuple[str, ...]
) -> StoredUpload:
    """Stream ``upload`` (a Starlette ``UploadFile``) into ``folder``; refuse early.

    Raises:
        UploadError: 413 past ``max_bytes`` (checked while streaming, so a huge upload is
            never fully stored), 415 when the content is not an allowed kind.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".part-{secrets.token_hex(8)}"
    size = 0
    head = b""
    try:
        with open(tmp, "wb") as fh:
            while True:
                chunk = await upload.read(1 << 20)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise UploadError(
                        f"upload larger than the limit ({max_bytes / (1 << 20):.1f} MB)", 413
                    )
                if len(head) < 64:
                    head = (head + chunk)[:64]
                fh.write(chunk)
        kind = sniff(head)
        if size == 0:
            raise UploadError("empty upload", 400)
        if kind is None or kind not in allow:
            wanted = " or ".join(allow)
            article = "an" if wanted[0] in "aeiou" else "a"
            raise UploadError(f"not {article} {wanted} (judged by its content)", 415)
        suffix = {"image": ".img", "video": ".vid"}[kind]
        final = folder / f"{secrets.token_hex(12)}{suffix}"
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    name = str(getattr(upload, "filename", "") or "upload")[:200]
    return StoredUpload(final, kind, name, size)
