"""FER2013 pixels + FER+ 10-rater votes (``../shared/data/fer2013``).

Files (see that folder's README): ``fer2013.csv(.gz)`` (``emotion,pixels,Usage``; 48x48 gray),
``fer2013new.csv(.gz)`` (FER+ vote counts, row-aligned), ``fer2013_provenance.csv(.gz)``.

Rules applied by :func:`load_ferplus`:

* FER+ votes are used only on rows whose provenance is ``png_exact`` (for the others the
  pixel/vote pairing is unknown);
* faces voted mostly unknown / not-a-face are dropped: a row is kept only when its 8
  emotion votes outnumber its ``unknown`` + ``NF`` votes;
* the vote distribution is the 8 emotion counts normalised to sum 1 (unknown/NF removed).

Parsed arrays are cached as ``.npz`` under ``$EXPRSIM_CACHE`` (default
``$XDG_CACHE_HOME/exprsim``, else ``~/.cache/exprsim``), keyed by each source file's path,
size, modification and change times and inode (a file rewritten with its old size and time
has a new change time); a damaged entry is parsed again. The data folder itself is never
written.

The files are checked to be row-aligned before anything is parsed: the same row counts and
``Usage`` in all three, and the provenance's ``ferplus_png`` equal to the votes' ``Image
name`` wherever both name one (a row dropped in one file and repeated in another kept the
counts and the ``Usage`` pattern, and shifted every vote after it).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.equality import array_equality
from exprsim.errors import DataError

log = logging.getLogger(__name__)

#: FER+ emotion columns, in file order (the 8 classes of every FER+ vote vector).
FERPLUS_CLASSES: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)
#: FER2013 7-class labels (``emotion`` column).
FER2013_CLASSES: tuple[str, ...] = (
    "angry",
    "disgust",
    "fear",
    "happy",
    "sad",
    "surprise",
    "neutral",
)
SPLITS = ("Training", "PublicTest", "PrivateTest")


def default_data_dir() -> Path:
    """``$EXPRSIM_FER_DIR``, else ``shared/data/fer2013`` beside the cwd or one of its parents,
    or beside the source checkout (editable installs; not an installed wheel's folder)."""
    env = os.environ.get("EXPRSIM_FER_DIR")
    if env:
        return Path(env)
    here = Path.cwd().resolve()
    checkout = Path(__file__).resolve().parents[3]
    is_checkout = (checkout / "pyproject.toml").is_file()  # else site-packages' parent
    for base in (here, *here.parents, *([checkout] if is_checkout else [])):
        cand = base.parent / "shared" / "data" / "fer2013"
        if cand.is_dir():
            return cand
        cand = base / "shared" / "data" / "fer2013"
        if cand.is_dir():
            return cand
    return here.parent / "shared" / "data" / "fer2013"


def _from_cwd(path: Path) -> str:
    """`` (relative to <working folder>)`` for a relative path, else nothing."""
    return "" if path.is_absolute() else f" (relative to {Path.cwd()})"


def _find(data_dir: Path, stem: str) -> Path:
    if not os.path.lexists(data_dir):
        raise DataError(
            f"{data_dir}: no such folder{_from_cwd(data_dir)}; give the folder that holds fer2013.csv and "
            "fer2013new.csv with --data-dir DIR or $EXPRSIM_FER_DIR (exprsim train: its "
            "config's data_dir key)"
        )
    if data_dir.is_file():
        raise DataError(
            f"{data_dir}: a file; --data-dir takes the folder that holds fer2013.csv and "
            "fer2013new.csv (a pack made by pack_ferplus is for training only)"
        )
    found = [data_dir / n for n in (f"{stem}.csv.gz", f"{stem}.csv") if (data_dir / n).is_file()]
    if len(found) == 2:  # an unpacked copy beside its archive: say which one is read
        log.warning("%s: both %s and %s; reading %s", data_dir, found[0].name, found[1].name,
                    found[0].name)  # fmt: skip
    if found:
        return found[0]
    there = [
        data_dir / n for n in (f"{stem}.csv.gz", f"{stem}.csv") if os.path.lexists(data_dir / n)
    ]
    if there:  # a folder or a broken link under the file's name
        what = "a broken link" if not there[0].exists() else "not a file"
        raise DataError(f"{there[0]}: {what}")
    raise DataError(
        f"{data_dir}: no {stem}.csv or {stem}.csv.gz; give the folder that holds FER2013 and "
        "the FER+ votes with --data-dir DIR or $EXPRSIM_FER_DIR (exprsim train: its config's "
        "data_dir key; fer2013.csv from Kaggle's challenge, fer2013new.csv from "
        "github.com/microsoft/FERPlus)"
    )


def _cache_dir() -> Path:
    """Where parsed FER data is cached: ``$EXPRSIM_CACHE``, else ``$XDG_CACHE_HOME/exprsim``,
    else ``~/.cache/exprsim`` (a variable set but empty counts as unset, not as the working
    folder). A relative ``$EXPRSIM_CACHE`` names a folder under the working folder
    (``EXPRSIM_CACHE=cache`` is ``./cache``) and is made absolute here, when it is read, so
    that a later change of folder does not move the cache; a relative ``$XDG_CACHE_HOME``
    is ignored, as the XDG spec says."""
    if os.environ.get("EXPRSIM_CACHE"):
        return Path(os.path.abspath(os.environ["EXPRSIM_CACHE"]))
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "exprsim"


#: parsed FER tables kept in the cache (the most recently used): each is about 77 MB, and
#: every copy or touch of the data makes a new one
CACHE_KEEP = 4
_CACHE_ENTRY = re.compile(r"fer-[0-9a-f]{16}\.npz")


def _prune_cache(folder: Path, keep: Path | None = None) -> None:
    """Keep the :data:`CACHE_KEEP` most recently used parsed tables in ``folder`` (always
    ``keep``, the one just written), and remove what a killed parse left. An entry stamped
    ahead of the clock (by a clock that ran ahead; a read stamps it now) counts as the
    least recently used: such entries removed every new parse as the oldest, until their
    date."""
    from exprsim.io import TEMP_TAIL, sweep_temporaries

    # a killed parse's (exprsim.io.temp_beside of any table's name)
    sweep_temporaries(folder, rf"\.fer-[0-9a-f]{{16}}\.npz{TEMP_TAIL}\.npz")
    try:
        now = time.time()
        kept = keep.name if keep is not None else None
        entries = [e for e in os.scandir(folder) if _CACHE_ENTRY.fullmatch(e.name)]
        # the one just written first, then the most recently used; the future last
        entries.sort(key=lambda e: (e.name == kept, *_used_at(e.stat().st_mtime, now)))
        entries.reverse()
    except OSError:
        return
    for old in entries[CACHE_KEEP:]:
        with contextlib.suppress(OSError):
            os.unlink(old.path)
            log.info("removed an older parsed FER table from the cache: %s", old.path)


def _used_at(mtime: float, now: float) -> tuple[bool, float]:
    """A cache entry's place by its time ``mtime``, most recently used last: one ahead of
    ``now`` (by more than a file system's rounding) before all others, and those among
    themselves by their times (they all shared one place: the file system's order chose)."""
    return mtime <= now + 2.0, mtime


@array_equality
@dataclass(frozen=True)
class FerTable:
    """Every row of fer2013.csv with its FER+ votes and provenance.

    Attributes:
        images: ``(N, 48, 48)`` uint8.
        emotion: ``(N,)`` int64 FER2013 label (index into :data:`FER2013_CLASSES`).
        usage: ``(N,)`` str split name.
        votes: ``(N, 10)`` float32 FER+ counts: 8 emotions, unknown, NF.
        png_exact: ``(N,)`` bool, provenance ``png_exact``.
    """

    images: np.ndarray
    emotion: np.ndarray
    usage: np.ndarray
    votes: np.ndarray
    png_exact: np.ndarray


_PIXELS = re.compile(r"\s*\d+(?:\s+\d+)*\s*")


def _parse_pixels(col: object, path: Path | str = "fer2013.csv") -> np.ndarray:
    import pandas as pd

    series = pd.Series(col)
    not_text = np.flatnonzero(~series.map(lambda v: isinstance(v, str)).to_numpy())
    if len(not_text):
        raise DataError(f"{path}: data row {not_text[0] + 1} has no pixels value")
    try:  # int32 first: "300" must not wrap to 44 on its way to uint8
        flat = np.array(" ".join(series.tolist()).split(), dtype=np.int32)
    except ValueError:
        odd = series.map(lambda v: _PIXELS.fullmatch(v) is None).to_numpy()
        row = int(np.flatnonzero(odd)[0]) if odd.any() else 0
        word = next((w for w in series.iloc[row].split() if not w.isdigit()), "")
        raise DataError(
            f"{path}: data row {row + 1}: pixel value {word[:20]!r} is not a whole number"
        ) from None
    # every row its own 2304 (a row one short and a later one one long made the total
    # right, and shifted every image between them by a pixel); the rows' counts add up to
    # flat.size, so the total needs no check of its own
    counts = series.str.count(r"\S+").to_numpy()
    wrong = np.flatnonzero(counts != 48 * 48)
    if len(wrong):
        raise DataError(
            f"{path}: data row {wrong[0] + 1} has {counts[wrong[0]]} pixel values, not 2304"
        )
    if flat.size and (flat.min() < 0 or flat.max() > 255):
        row = int(np.flatnonzero((flat < 0) | (flat > 255))[0]) // (48 * 48) + 1
        raise DataError(f"{path}: data row {row} has a pixel value outside 0..255")
    return flat.astype(np.uint8).reshape(len(series), 48, 48)


def _parse_votes(frame: Any, path: Path) -> np.ndarray:
    """``(N, 10)`` float32 vote counts; refused when a count is missing, negative or not a
    number (a 0/0 or negative distribution turns the training loss into NaN)."""
    try:
        votes = frame.to_numpy(np.float64)  # float64 first: 1e40 is a count out of range
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: the vote columns must hold numbers ({exc})") from exc
    ok = (
        np.isfinite(votes).all(axis=1) & (votes >= 0).all(axis=1) & (votes <= MAX_VOTES).all(axis=1)
    )
    bad = np.flatnonzero(~ok)
    if len(bad):
        raise DataError(
            f"{path}: {len(bad)} rows with a missing, negative or out-of-range vote count "
            f"(first: data row {bad[0] + 1})"
        )
    return votes.astype(np.float32)


#: largest vote count taken (FER+ has 10 raters a face; a merged copy may have more)
MAX_VOTES = 1e6


def _cached_table(cache_file: Path) -> FerTable | None:
    """The parsed table cached in ``cache_file``, or ``None`` (none, or another process
    pruned it a moment ago)."""
    with contextlib.suppress(OSError):  # used now: the last one pruned
        os.utime(cache_file)
    try:
        with np.load(cache_file, allow_pickle=False) as z:
            return FerTable(
                images=z["images"],
                emotion=z["emotion"],
                usage=z["usage"],
                votes=z["votes"],
                png_exact=z["png_exact"],
            )
    except FileNotFoundError:
        return None
    except (NotADirectoryError, PermissionError) as exc:  # the cache folder is unusable
        log.info("%s: cannot read the parsed FER cache (%s); parsing the files", cache_file,
                 exc.strerror or type(exc).__name__)  # fmt: skip
        return None
    except Exception as exc:  # cut short, emptied, another version's: parsed again
        log.warning("%s: a damaged parsed FER table (%s); parsing the files again", cache_file,
                    type(exc).__name__)  # fmt: skip
        return None


def _require_columns(frame: Any, path: Path, columns: Sequence[str]) -> None:
    """Refuse a FER file without one of ``columns`` (was a raw ``KeyError``), showing the
    header read when none is there (a file separated by ``;`` or tabs is one column)."""
    missing = [c for c in columns if c not in frame.columns]
    if not missing:
        return
    header = ",".join(str(c) for c in frame.columns)
    hint = ""
    if len(missing) == len(columns):
        seps = [name for sep, name in ((";", "';'"), ("\t", "tabs")) if sep in header]
        hint = f"; its header reads {header[:80]!r}" + (
            f" (separated by {seps[0]}? save it comma-separated)" if seps else ""
        )
    raise DataError(f"{path}: missing columns {missing}{hint}")


def _read_csv(path: Path) -> Any:
    """A FER file as a DataFrame; what pandas cannot read is one line naming the file (it
    was pandas' or gzip's traceback)."""
    import zlib

    import pandas as pd

    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: an empty file (not even a header)") from None
    except pd.errors.ParserError as exc:
        why = str(exc).strip().split("C error: ")[-1]
        raise DataError(f"{path}: not a CSV file as expected ({why})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text (saved as UTF-16, or not a CSV file?)") from None
    except (EOFError, zlib.error) as exc:
        raise DataError(f"{path}: a damaged gzip file ({exc})") from None
    except OSError as exc:  # gzip.BadGzipFile among them
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _usage(frame: Any) -> np.ndarray:
    """``(N,)`` str split names, spaces around them removed (an empty cell: ``""``)."""
    return frame["Usage"].fillna("").astype(str).str.strip().to_numpy()


def _first_difference(a: np.ndarray, b: np.ndarray) -> int | None:
    diff = np.flatnonzero(a != b)
    return int(diff[0]) if len(diff) else None


def _check_aligned(fer: Any, new: Any, prov: Any, paths: tuple[Path, Path, Path | None]) -> None:
    """Refuse files whose rows are not one another's: other row counts, another ``Usage``
    in a row, or the provenance naming another FER+ image than the votes' row does."""
    fer_path, new_path, prov_path = paths
    for frame, path in ((new, new_path), (prov, prov_path)):
        if frame is not None and len(frame) != len(fer):
            raise DataError(f"{fer_path} has {len(fer)} rows but {path} has {len(frame)}")
    usage = _usage(fer)
    for frame, path in ((new, new_path), (prov, prov_path)):
        if frame is None or "Usage" not in frame.columns:
            continue
        theirs = _usage(frame)
        row = _first_difference(usage, theirs)
        if row is not None:
            raise DataError(
                f"{fer_path} and {path} disagree on Usage at data row {row + 1} "
                f"({usage[row]!r} against {theirs[row]!r}): rows are not aligned"
            )
    if prov is not None and "ferplus_png" in prov.columns and "Image name" in new.columns:
        a = prov["ferplus_png"].fillna("").astype(str).str.strip().to_numpy()
        b = new["Image name"].fillna("").astype(str).str.strip().to_numpy()
        named = (a != "") & (b != "")  # a row either file names no image of is not compared
        row = _first_difference(np.where(named, a, ""), np.where(named, b, ""))
        if row is not None:
            raise DataError(
                f"{prov_path} and {new_path} name another FER+ image at data row {row + 1} "
                f"({a[row]!r} against {b[row]!r}): rows are not aligned"
            )


def _emotions(fer: Any, path: Path) -> np.ndarray:
    """``(N,)`` int64 FER2013 labels, each a whole number 0 to 6."""
    import pandas as pd

    values = pd.to_numeric(fer["emotion"], errors="coerce").to_numpy(np.float64)
    ok = np.isfinite(values) & (values == np.round(values)) & (values >= 0)
    ok &= values < len(FER2013_CLASSES)
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise DataError(
            f"{path}: data row {row + 1}: emotion {fer['emotion'].iloc[row]!r} is not a "
            f"whole number 0 to {len(FER2013_CLASSES) - 1}"
        )
    return values.astype(np.int64)


def _warn_unknown_usage(usage: np.ndarray, path: Path) -> None:
    values, counts = np.unique(usage[~np.isin(usage, SPLITS)], return_counts=True)
    if len(values):
        shown = ", ".join(f"{v!r} x{c}" for v, c in zip(values[:5], counts[:5], strict=True))
        log.warning("%s: rows of an unknown Usage are left out: %s", path, shown)


def _cache_key(paths: Sequence[Path | None]) -> str:
    """What the parse of ``paths`` is cached under: each file's path, size, modification
    and change times and inode (an edit of the same size within the same second, or a file
    restored with its old time by ``cp -p`` or ``rsync -t``, kept the stale parse)."""
    parts = []
    for p in paths:
        if p is not None:
            st = p.stat()
            parts.append(
                f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
            )
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def load_fer_table(data_dir: str | Path | None = None, cache: bool = True) -> FerTable:
    """Read (or load the cached parse of) the three FER files, row-aligned.

    Raises:
        DataError: a file missing, unreadable, or not row-aligned with the others, one line
            naming it (and the row).
    """
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    fer_path = _find(data_dir, "fer2013")
    new_path = _find(data_dir, "fer2013new")
    try:
        prov_path: Path | None = _find(data_dir, "fer2013_provenance")
    except DataError:
        prov_path = None
    cache_file = _cache_dir() / f"fer-{_cache_key((fer_path, new_path, prov_path))}.npz"
    cached = _cached_table(cache_file) if cache else None
    if cached is not None:
        return cached
    log.info("parsing %s (cached afterwards in %s)", fer_path, cache_file)
    fer, new = _read_csv(fer_path), _read_csv(new_path)
    _require_columns(fer, fer_path, ("emotion", "pixels", "Usage"))
    _require_columns(new, new_path, ("Usage",))
    vote_cols = [*FERPLUS_CLASSES, "unknown", "NF"]
    _require_columns(new, new_path, vote_cols)
    prov = None
    if prov_path is not None:
        prov = _read_csv(prov_path)
        _require_columns(prov, prov_path, ("pixel_source",))
    _check_aligned(fer, new, prov, (fer_path, new_path, prov_path))
    if prov is not None:
        png_exact = (prov["pixel_source"] == "png_exact").to_numpy()
    else:
        log.warning("no provenance file: assuming every row's FER+ votes match its pixels")
        png_exact = np.ones(len(fer), dtype=bool)
    usage = _usage(fer)
    _warn_unknown_usage(usage, fer_path)
    table = FerTable(
        images=_parse_pixels(fer["pixels"], fer_path),
        emotion=_emotions(fer, fer_path),
        usage=usage.astype(str),
        votes=_parse_votes(new[vote_cols], new_path),
        png_exact=png_exact,
    )
    if cache:
        _save_cache(cache_file, table)
    return table


def _save_cache(cache_file: Path, table: FerTable) -> None:
    """Keep the parse in the cache; one that cannot be written is said, not raised."""
    try:
        from exprsim.io import save_npz, write_atomically

        cache_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(cache_file, lambda fh: save_npz(fh, table.__dict__), ".npz")
        _prune_cache(cache_file.parent, keep=cache_file)
    except OSError as exc:  # a read-only home must not break loading
        log.warning("could not cache parsed FER data: %s", exc)


@array_equality
@dataclass(frozen=True)
class FerSplit:
    """FER2013 faces of one split with usable FER+ votes.

    Attributes:
        images: ``(N, 48, 48)`` uint8 gray crops.
        votes: ``(N, 8)`` float32 vote counts over :data:`FERPLUS_CLASSES`.
        emotion: ``(N,)`` int64 original FER2013 7-class label.
        rows: ``(N,)`` int64 row index in fer2013.csv.
        usage: split name.
    """

    images: np.ndarray
    votes: np.ndarray
    emotion: np.ndarray
    rows: np.ndarray
    usage: str

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def dist(self) -> np.ndarray:
        """``(N, 8)`` float32 vote distribution (rows sum to 1)."""
        return (self.votes / self.votes.sum(axis=1, keepdims=True)).astype(np.float32)

    @property
    def majority(self) -> np.ndarray:
        """``(N,)`` int64 FER+ majority label (first class on ties)."""
        return self.votes.argmax(axis=1).astype(np.int64)

    def subset(self, mask_or_index: np.ndarray) -> FerSplit:
        return FerSplit(
            images=self.images[mask_or_index],
            votes=self.votes[mask_or_index],
            emotion=self.emotion[mask_or_index],
            rows=self.rows[mask_or_index],
            usage=self.usage,
        )


def pixel_hashes(images: np.ndarray) -> np.ndarray:
    """``(N,)`` hex digests identifying pixel-identical images."""
    return np.array([hashlib.blake2b(im.tobytes(), digest_size=12).hexdigest() for im in images])


def load_ferplus(
    usage: str = "Training",
    data_dir: str | Path | None = None,
    drop_duplicates_of: str | None = None,
) -> FerSplit:
    """Faces of one split with usable FER+ votes (rules in the module docstring).

    Args:
        usage: ``"Training"`` or ``"PublicTest"`` (``"PrivateTest"`` is withheld in our copy).
        data_dir: folder with the FER files (default :func:`default_data_dir`).
        drop_duplicates_of: another split's name; rows pixel-identical to any of its rows
            are dropped (FER2013 has cross-split duplicates: use ``"PublicTest"`` for
            training data whenever PublicTest numbers are reported).
    """
    if usage not in SPLITS:
        raise DataError(f"unknown split {usage!r}; expected one of {SPLITS}")
    table = load_fer_table(data_dir)
    emo = table.votes[:, :8]
    bad = table.votes[:, 8:].sum(axis=1)
    keep = (table.usage == usage) & table.png_exact & (emo.sum(axis=1) > bad)
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        raise DataError(f"no usable {usage} rows in {data_dir or default_data_dir()}")
    if drop_duplicates_of is not None:
        other = pixel_hashes(table.images[table.usage == drop_duplicates_of])
        mine = pixel_hashes(table.images[idx])
        dup = np.isin(mine, other)
        log.info(
            "dropping %d %s rows pixel-identical to %s", int(dup.sum()), usage, drop_duplicates_of
        )
        idx = idx[~dup]
    return FerSplit(
        images=table.images[idx],
        votes=emo[idx].astype(np.float32),
        emotion=table.emotion[idx],
        rows=idx.astype(np.int64),
        usage=usage,
    )
