"""Typed errors raised by exprsim.

Every error a user can trigger with bad input derives from :class:`ExprsimError`,
so callers can catch one class; the CLI turns these into one clear line.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any


def printable(text: str) -> str:
    """``text`` safe to print and to store as UTF-8: a file name's undecodable bytes (Python
    keeps them as surrogates) become ``\\xe9`` escapes, control characters such as a newline
    become ``\\n``; anything else is unchanged."""
    if text.isprintable():
        return text
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ExprsimError(Exception):
    """Base class of every error exprsim raises on purpose."""


def require_int(
    value: object,
    what: str,
    minimum: int,
    error: type[ExprsimError] = ExprsimError,
    maximum: int | None = None,
) -> int:
    """``value`` as an ``int`` if it is an integer >= ``minimum`` (and <= ``maximum`` when
    given; Python or NumPy; not a bool, not a float such as ``2.5``), else ``error`` naming
    ``what``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise error(f"{what} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and int(value) > maximum:
        raise error(f"{what} must be an integer from {minimum} to {maximum}, got {value!r}")
    return int(value)


def require_positive_int(value: object, what: str, error: type[ExprsimError] = ExprsimError) -> int:
    """:func:`require_int` with a minimum of 1."""
    return require_int(value, what, 1, error)


def as_numpy(values: object, what: str) -> Any:
    """``np.asarray(values)``; a torch tensor that requires grad is one clear error, with
    the fix (NumPy's RuntimeError named neither the argument nor exprsim)."""
    import numpy as np

    try:
        return np.asarray(values)
    except RuntimeError as exc:
        if "requires grad" not in str(exc):
            raise
        raise ExprsimError(
            f"{what}: a tensor that requires grad; pass tensor.detach() (or .detach().cpu())"
        ) from None


def real_array(values: object, what: str, dtype: object = None) -> Any:
    """``values`` as a NumPy array (of ``dtype`` when given), refused when it holds complex
    numbers: a cast to float kept their real parts with only NumPy's warning, and every
    distance and cluster was of those (``ExpressionKNN`` alone refused them)."""

    import numpy as np

    raw = as_numpy(values, what)
    if raw.dtype == object:  # `df.to_numpy()` of mixed columns: read as numbers (None as
        # NaN, as NumPy reads it), or refused as a ValueError, which callers may reword
        try:
            target: Any = np.float64 if dtype is None else dtype
            raw = np.asarray(raw, dtype=target)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ArgumentError(f"{what}: values that are not numbers ({exc})") from None
    if raw.dtype.kind == "c":
        raise ExprsimError(
            f"{what}: complex numbers, not real embeddings (pass .real if that is meant)"
        )
    return raw if dtype is None else raw.astype(dtype, copy=False)


def require_number(
    value: object,
    what: str,
    rule: str | None = None,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    error: type[ExprsimError] = ExprsimError,
) -> float:
    """``value`` as a ``float`` if it is a finite real number (Python or NumPy; not a bool)
    in ``[low, high]`` (``(low, high]`` with ``low_open``), else ``error``: "``what`` must
    be ``rule``, got ..." (default: the bounds in words). NaN is refused (every comparison
    with it is false, so a NaN threshold would let everything through, or nothing)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    x = float(value) if ok else math.nan  # type: ignore[arg-type]
    inside = (low < x if low_open else low <= x) and x <= high
    if not (inside and math.isfinite(x)):
        raise error(f"{what} must be {rule or _in_words(low, high, low_open)}, got {value!r}")
    return x


def _in_words(low: float, high: float, low_open: bool) -> str:
    """The range :func:`require_number` checks, in words."""
    if math.isfinite(high):
        return f"a number in {'(' if low_open else '['}{low:g}, {high:g}]"
    if math.isfinite(low):
        return f"a number {'>' if low_open else '>='} {low:g}"
    return "a finite number"


class ArgumentError(ExprsimError, ValueError):
    """An argument or configuration value outside what it may be (a ``ValueError`` too)."""


class ImageError(ExprsimError):
    """An image could not be read: missing, empty, corrupt, truncated, not an image, or too large.

    Attributes:
        path: the offending file (or a placeholder such as ``"<bytes>"``, ``"<array>"`` or
            ``"<array #2>"`` for in-memory input).
        reason: a short human-readable reason.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = printable(str(path))
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type[ImageError], tuple[str, str]]:
        # pickles whole (worker processes, Ray tasks): the default would call __init__ with
        # the message alone
        return (type(self), (self.path, self.reason))


class ImageTooLargeError(ImageError):
    """An image has more pixels than the caller's limit (a decompression bomb, or just too big).

    Raised from the image's header, before its pixels are decoded.
    """


class IndexDatabaseError(ExprsimError):
    """The database of a face index cannot be used as asked: missing, read-only for a
    write, damaged, another program's, another schema's or model's, or unreachable.

    A fault of the database, not of the request that met it: the web app answers it with
    503 (its message without the server's file name), where other errors of a request are
    the client's.

    Attributes:
        db: the database as shown to users (a path, or a URL without its password).
        detail: what is wrong with it, without its name.
        read_only: ``True`` when a change was refused because the database cannot be
            written (nothing was changed).
    """

    def __init__(self, db: str | Path, detail: str, *, read_only: bool = False) -> None:
        self.db = printable(str(db))
        self.detail = detail
        self.read_only = read_only
        super().__init__(self._message())

    def _message(self) -> str:
        return f"{self.db}: {self.detail}"

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_index_error, (type(self), self.db, self.detail, self.read_only))


class IndexUnavailableError(IndexDatabaseError):
    """The index's database cannot be reached now: the server refused or dropped the
    connection, is shutting down or restarting, or refused the login. Often passes by
    itself, so the web app answers it with a fixed sentence and ``Retry-After`` (the
    detail, which may name hosts, sockets and users, goes to its log only).
    """


class IndexBusyError(IndexDatabaseError):
    """Another writer (``exprsim index add``, a re-embedding) held the index longer than
    the caller would wait (``FaceIndex.add(wait=...)``); nothing was changed. The web app
    answers it with 503 and ``Retry-After``."""


def _rebuild_index_error(
    cls: type[IndexDatabaseError], db: str, detail: str, read_only: bool
) -> IndexDatabaseError:
    return cls(db, detail, read_only=read_only)


class BackendUnavailableError(ExprsimError):
    """An optional backend (detector, ANN library, ...) is not installed; the message says how to get it."""


class ModelError(ExprsimError):
    """A model name is unknown, or its weights/config are missing or inconsistent."""


class DataError(ExprsimError):
    """A dataset file is missing or malformed."""


class DownloadDisabledError(ModelError):
    """exprsim never downloads models at run time: raised for a model named by a URL
    (:func:`exprsim.load_model`, every ``--model``). An image given as a URL is an
    :class:`ImageError` of its file, reported like any unreadable input."""
