"""Uploads: size-capped while streaming, checked by content (never by name), stored under the
server's data folder with generated names."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import re
import secrets
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exprsim.errors import ExprsimError, printable
from exprsim.io import sniff, sync_file, sync_folder  # sniff: what an upload is, by content


class UploadError(ExprsimError):
    """An upload was refused; ``status`` is the HTTP status to answer with, ``headers``
    extra response headers (``Retry-After`` of a full video queue)."""

    def __init__(
        self, message: str, status: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class StoredUpload:
    """An accepted upload.

    Attributes:
        path: where it was stored (a generated name under the uploads folder).
        kind: ``"image"`` or ``"video"``, decided by the content.
        original_name: the client's file name (for display only; never used as a path).
        size: bytes.
        duplicate: the same content was already stored under ``path`` (``by_content``
            uploads only); the new copy was not kept.
        sha256: the SHA-256 (hex) of its bytes.
    """

    path: Path
    kind: str
    original_name: str
    size: int
    duplicate: bool = False
    sha256: str = ""


#: content-named uploads: ``<first 24 hex digits of the SHA-256>-<the client's name>``
_CONTENT_NAME = re.compile(r"^([0-9a-f]{24})-(.+)$")


def size_text(n_bytes: int) -> str:
    """A byte count for messages: ``25 MB``, ``0.01 MB``, ``512 KB``."""
    mb = n_bytes / (1 << 20)
    return f"{mb:.3g} MB" if mb >= 0.01 else f"{n_bytes / 1024:.3g} KB"


def safe_name(name: str, default: str = "upload") -> str:
    """The client's file name reduced to something safe to store and show.

    Only the last path component (``/`` or ``\\``) is kept; control and format characters
    and anything but letters, digits, marks (the vowel signs of Hindi or Thai), symbols
    such as emoji, spaces and ``._-()+,`` become ``_``; leading dots and spaces go; at most
    120 bytes of UTF-8. Never empty, never ``.`` or ``..``.
    """
    base = re.split(r"[/\\]", str(name))[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(c if _kept_in_name(c) else "_" for c in base)
    base = base.lstrip(". ").rstrip()
    encoded = base.encode("utf-8")[:120]
    base = encoded.decode("utf-8", errors="ignore").rstrip()
    return base or default


def _kept_in_name(c: str) -> bool:
    """Whether :func:`safe_name` keeps the character ``c``."""
    if c.isalnum() or c in " ._-()+,":
        return True
    kind = unicodedata.category(c)  # beyond ASCII: marks, emoji and their skin tones
    return ord(c) > 127 and (kind[0] == "M" or kind in ("So", "Sk"))


def display_name(path: str | Path) -> str:
    """What to show for a stored upload: the client's (safe) name of a content-named file,
    else the file's own name, printable (an indexed file's name may hold a newline or a
    right-to-left override, which made ``a\nb.jpg`` show as ``a b.jpg`` and ``x_\u202egnp.jpg``
    as ``x_jpg.png``)."""
    name = Path(path).name
    m = _CONTENT_NAME.match(name)
    return printable(m.group(2) if m else name)


async def store_upload(
    upload: Any, folder: Path, max_bytes: int, allow: tuple[str, ...], by_content: bool = False
) -> StoredUpload:
    """Stream ``upload`` (a Starlette ``UploadFile``) into ``folder``; refuse early.

    Args:
        by_content: name the stored file by its content and the client's (safe) name, and
            keep one copy per content: a file already stored with the same SHA-256 is
            returned instead (``duplicate``), so adding it to the index again is a skip.
            Otherwise the name is random (for uploads deleted after the request). A kept
            file is synced (``fsync``, in a worker thread) before it takes its name, and
            the folder after: the index never names a file a power cut left empty.

    Raises:
        UploadError: 413 past ``max_bytes`` (checked while streaming, so a huge upload is
            never fully stored), 415 when the content is not an allowed kind, 507 when the
            server's disk is full and 500 when the file cannot be stored for another reason
            (:func:`storage_error`; nothing is left behind).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc) from exc
    tmp = folder / f".part-{os.getpid()}-{secrets.token_hex(8)}"
    size = 0
    head = b""
    digest = hashlib.sha256()
    name = str(getattr(upload, "filename", "") or "upload")[:200]
    try:
        with open(tmp, "wb") as fh:
            while True:
                chunk = await upload.read(1 << 20)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise UploadError(f"upload larger than the limit ({size_text(max_bytes)})", 413)
                if len(head) < 64:
                    head = (head + chunk)[:64]
                fh.write(chunk)
                digest.update(chunk)
        kind = sniff(head)
        if size == 0:
            raise UploadError("empty upload", 400)
        if kind is None or kind not in allow:
            wanted = " or ".join(allow)
            article = "an" if wanted[0] in "aeiou" else "a"
            raise UploadError(f"not {article} {wanted} (judged by its content)", 415)
        if by_content:
            key = digest.hexdigest()[:24]
            # kept (the index names it): on disk before its name, off the event loop
            final, copy = await asyncio.to_thread(_keep_once, tmp, folder, key, name)
            if copy:
                return StoredUpload(final, kind, name, size, True, digest.hexdigest())
            await asyncio.to_thread(sync_folder, folder)
        else:
            suffix = {"image": ".img", "video": ".vid"}[kind]
            final = folder / f"{secrets.token_hex(12)}{suffix}"
            os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise storage_error(exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return StoredUpload(final, kind, name, size, sha256=digest.hexdigest())


#: one kept upload at a time between "is this content stored?" and its rename: two
#: requests with the same photo at once both found none and both were indexed
_KEEP_LOCK = threading.Lock()


def _keep_once(tmp: Path, folder: Path, key: str, name: str) -> tuple[Path, bool]:
    """Give the upload ``tmp`` (content key ``key``) its kept name, synced first, or, when
    a file of that content is stored already, drop it: ``(the stored file, it was a
    copy)``."""
    with _KEEP_LOCK:
        existing = _kept_for(folder, key)
        if existing is not None:
            tmp.unlink()
            return existing, True
        final = folder / f"{key}-{safe_name(name)}"
        sync_file(tmp)
        os.replace(tmp, final)
        return final, False


def _kept_for(folder: Path, key: str) -> Path | None:
    """The kept upload of content ``key`` in ``folder`` (the first by name), or ``None``:
    one pass over the folder's names (50 ms at 100,000 kept uploads, where a ``glob`` of
    ``KEY-*`` took 82 ms: benchmarks/upload_keys.py)."""
    prefix = f"{key}-"
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if e.name.startswith(prefix) and e.is_file())
    return folder / names[0] if names else None


#: ``errno`` values that mean the server's disk (or the user's quota on it) is full
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


#: an upload being stored (:func:`store_upload`: the server's pid, then a random part)
PARTIAL_UPLOAD = r"\.part-(?P<pid>\d+)-[0-9a-f]+"


def storage_error(exc: OSError) -> UploadError:
    """The answer to an upload the server could not store: 507 when its disk is full, else
    500; one line with the system's reason, never the server's path."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno in DISK_FULL:
        return UploadError(f"the server's upload folder is full ({reason})", 507)
    return UploadError(f"cannot store the upload on the server ({reason})", 500)
