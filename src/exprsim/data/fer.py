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
``~/.cache/exprsim``), keyed by the source file's size and mtime; the data folder itself
is never written.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
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


def _find(data_dir: Path, stem: str) -> Path:
    for name in (f"{stem}.csv.gz", f"{stem}.csv"):
        if (data_dir / name).is_file():
            return data_dir / name
    raise DataError(
        f"{data_dir}: no {stem}.csv or {stem}.csv.gz; give the folder that holds FER2013 and "
        "the FER+ votes with --data-dir DIR or $EXPRSIM_FER_DIR (exprsim train: its config's "
        "data_dir key; fer2013.csv from Kaggle's challenge, fer2013new.csv from "
        "github.com/microsoft/FERPlus)"
    )


def _cache_dir() -> Path:
    """Where parsed FER data is cached: ``$EXPRSIM_CACHE``, else ``$XDG_CACHE_HOME/exprsim``,
    else ``~/.cache/exprsim`` (a variable set but empty counts as unset, not as the working
    folder)."""
    if os.environ.get("EXPRSIM_CACHE"):
        return Path(os.environ["EXPRSIM_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "exprsim"


#: parsed FER tables kept in the cache (the most recently used): each is about 77 MB, and
#: every copy or touch of the data makes a new one
CACHE_KEEP = 4
_CACHE_ENTRY = re.compile(r"fer-[0-9a-f]{16}\.npz")


def _prune_cache(folder: Path) -> None:
    """Keep the :data:`CACHE_KEEP` most recently used parsed tables in ``folder``, and
    remove what a killed parse left."""
    from exprsim.io import TEMP_TAIL, sweep_temporaries

    # a killed parse's (exprsim.io.temp_beside of any table's name)
    sweep_temporaries(folder, rf"\.fer-[0-9a-f]{{16}}\.npz{TEMP_TAIL}\.npz")
    try:
        entries = [e for e in os.scandir(folder) if _CACHE_ENTRY.fullmatch(e.name)]
        entries.sort(key=lambda e: e.stat().st_mtime, reverse=True)
    except OSError:
        return
    for old in entries[CACHE_KEEP:]:
        with contextlib.suppress(OSError):
            os.unlink(old.path)
            log.info("removed an older parsed FER table from the cache: %s", old.path)


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


def _parse_pixels(col: object) -> np.ndarray:
    import pandas as pd

    series = pd.Series(col)
    not_text = np.flatnonzero(~series.map(lambda v: isinstance(v, str)).to_numpy())
    if len(not_text):
        raise DataError(f"fer2013.csv: data row {not_text[0] + 1} has no pixels value")
    try:  # int32 first: "300" must not wrap to 44 on its way to uint8
        flat = np.array(" ".join(series.tolist()).split(), dtype=np.int32)
    except ValueError as exc:
        raise DataError(f"fer2013.csv: a pixels value holds something else ({exc})") from exc
    # every row its own 2304 (a row one short and a later one one long made the total
    # right, and shifted every image between them by a pixel); the rows' counts add up to
    # flat.size, so the total needs no check of its own
    counts = series.str.count(r"\S+").to_numpy()
    wrong = np.flatnonzero(counts != 48 * 48)
    if len(wrong):
        raise DataError(
            f"fer2013.csv: data row {wrong[0] + 1} has {counts[wrong[0]]} pixel values, not 2304"
        )
    if flat.size and (flat.min() < 0 or flat.max() > 255):
        row = int(np.flatnonzero((flat < 0) | (flat > 255))[0]) // (48 * 48) + 1
        raise DataError(f"fer2013.csv: data row {row} has a pixel value outside 0..255")
    return flat.astype(np.uint8).reshape(len(series), 48, 48)


def _parse_votes(frame: Any, path: Path) -> np.ndarray:
    """``(N, 10)`` float32 vote counts; refused when a count is missing, negative or not a
    number (a 0/0 or negative distribution turns the training loss into NaN)."""
    try:
        votes = frame.to_numpy(np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: the vote columns must hold numbers ({exc})") from exc
    bad = np.flatnonzero(~np.isfinite(votes).all(axis=1) | (votes < 0).any(axis=1))
    if len(bad):
        raise DataError(
            f"{path}: {len(bad)} rows with a missing or negative vote count "
            f"(first: data row {bad[0] + 1})"
        )
    return votes


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


def _require_columns(frame: Any, path: Path, columns: Sequence[str]) -> None:
    """Refuse a FER file without one of ``columns`` (was a raw ``KeyError``)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}")


def load_fer_table(data_dir: str | Path | None = None, cache: bool = True) -> FerTable:
    """Read (or load the cached parse of) the three FER files, row-aligned."""
    import pandas as pd

    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    fer_path = _find(data_dir, "fer2013")
    new_path = _find(data_dir, "fer2013new")
    try:
        prov_path: Path | None = _find(data_dir, "fer2013_provenance")
    except DataError:
        prov_path = None
    key_src = "|".join(
        # nanoseconds and the inode: an edit of the same size within the same second, or a
        # file restored with its old time (cp -p, rsync -t), kept the stale parse
        f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}:{p.stat().st_ino}"
        for p in (fer_path, new_path, prov_path)
        if p is not None
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    cache_file = _cache_dir() / f"fer-{key}.npz"
    cached = _cached_table(cache_file) if cache else None
    if cached is not None:
        return cached
    log.info("parsing %s (cached afterwards in %s)", fer_path, cache_file)
    fer = pd.read_csv(fer_path)
    new = pd.read_csv(new_path)
    _require_columns(fer, fer_path, ("emotion", "pixels", "Usage"))
    _require_columns(new, new_path, ("Usage",))
    if len(fer) != len(new):
        raise DataError(f"{fer_path} has {len(fer)} rows but {new_path} has {len(new)}")
    if not (fer["Usage"].to_numpy() == new["Usage"].to_numpy()).all():
        raise DataError(f"{fer_path} and {new_path} disagree on Usage: rows are not aligned")
    vote_cols = [*FERPLUS_CLASSES, "unknown", "NF"]
    missing = [c for c in vote_cols if c not in new.columns]
    if missing:
        raise DataError(f"{new_path}: missing columns {missing}")
    if prov_path is not None:
        prov = pd.read_csv(prov_path)
        _require_columns(prov, prov_path, ("pixel_source",))
        if len(prov) != len(fer):
            raise DataError(f"{fer_path} has {len(fer)} rows but {prov_path} has {len(prov)}")
        png_exact = (prov["pixel_source"] == "png_exact").to_numpy()
    else:
        log.warning("no provenance file: assuming every row's FER+ votes match its pixels")
        png_exact = np.ones(len(fer), dtype=bool)
    table = FerTable(
        images=_parse_pixels(fer["pixels"]),
        emotion=fer["emotion"].to_numpy(np.int64),
        usage=fer["Usage"].to_numpy().astype(str),
        votes=_parse_votes(new[vote_cols], new_path),
        png_exact=png_exact,
    )
    if cache:
        try:
            from exprsim.io import save_npz, write_atomically

            cache_file.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(cache_file, lambda fh: save_npz(fh, table.__dict__), ".npz")
            _prune_cache(cache_file.parent)
        except OSError as exc:  # a read-only home must not break loading
            log.warning("could not cache parsed FER data: %s", exc)
    return table


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
