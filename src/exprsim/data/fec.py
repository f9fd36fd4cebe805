"""Reader for the FEC dataset's CSV files (Google Facial Expression Comparison, CVPR 2019).

FEC (Vemulapalli & Agarwala, "A Compact Embedding for Facial Expression Similarity",
CVPR 2019) is published as two CSV files, ``faceexp-comparison-data-train-public.csv`` and
``faceexp-comparison-data-test-public.csv``: image URLs plus face boxes, not images.

**Layout** (28 comma-separated fields per row, no header row; URLs are usually quoted)::

    col  0      URL of image 1
    col  1..4   face box in image 1: top-left column / width, bottom-right column / width,
                top-left row / height, bottom-right row / height
                (i.e. x1, x2, y1, y2 as fractions -- note the x, x, y, y order)
    col  5      URL of image 2,  cols  6..9  its face box (same order)
    col 10      URL of image 3,  cols 11..14 its face box
    col 15      triplet type: ONE_CLASS_TRIPLET | TWO_CLASS_TRIPLET | THREE_CLASS_TRIPLET
    col 16, 17  annotator 1 id (a string of digits), annotation 1 (1, 2 or 3)
    ...
    col 26, 27  annotator 6 id, annotation 6

An annotation ``L`` names the face that is *not* like the other two ("L = 1 means I2 and I3
are visually more similar when compared to I1", paper Sec. 3.1).

Sources for the layout: the dataset's own description (the README distributed with the CSVs
at https://ai.google/tools/datasets/google-facial-expression/, "Each line in the CSV files
has the following entries: URL of image1 (string), Top-left column of the face bounding box
in image1 normalized by width (float), Bottom-right column ... normalized by width, Top-left
row ... normalized by height, Bottom-right row ... normalized by height, ... Triplet_type
(string), Annotator1_id (string), Annotation1 (integer), ..."), quoted verbatim in the
docstrings of several public readers; and public readers that index the columns the same way
(e.g. github.com/Rabee-parhizkary/A-Compact-Embedding-for-Facial-Expression-Similarity,
``image-extract.py`` crops ``image[y1*H:y2*H, x1*W:x2*W]`` from columns 1..4 and
``datas/utils.py`` reads the labels from columns 17, 19, ..., 27 and the type from column 15).
No copy of the real CSVs was available while this was written; the layout is taken from
those sources, and the tests use synthetic rows in this format.

**Agreement** (paper Sec. 3.1, "Annotation agreement"): with six raters, they *agree
strongly* if at least two thirds of them voted for the maximum-voted label (>= 4 of 6), and
*agree weakly* if there is a unique maximum-voted label and half of the raters voted for it
(3 of 6 with the others split 2-1 or 1-1-1); otherwise there is no agreement (3-3, 2-2-2).
The paper trains and evaluates on strongly-agreed triplets only (Sec. 5). For other rater
counts the same fractions are used (strong: max votes >= 2/3 n; weak: unique maximum with
max votes >= n/2).

**Human baseline** (paper Sec. 5.3 and Table 3): "Accuracy for a human rater is computed
based on how often they agree with the maximum-voted label"; the paper reports the median
over raters (87.5% overall; 85.3 / 89.3 / 87.2 for one-, two-, three-class triplets) on the
strong-agreement test triplets. :func:`human_baseline` scores each annotation against the
majority of the *other* raters of its triplet (leave one out) and takes the median (and mean)
of the per-rater accuracies. On strongly-agreed triplets leaving one rater out never changes
the majority label (4-2 becomes 3-2 or 4-1), so this equals the paper's definition there;
on weak / no-agreement triplets the leave-one-out majority can tie, and such annotations are
skipped (counted in ``n_ties``).

Malformed rows are never dropped silently: every one is listed with its 1-based line number
and the reason in :attr:`FecTable.issues` (blank lines are counted, not listed).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import re
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.errors import ArgumentError, DataError, printable
from exprsim.wording import count

log = logging.getLogger(__name__)

#: Fields per row: 3 x (URL + 4 box fractions) + triplet type + 6 x (rater id, label).
N_FIELDS = 28
#: Raters per triplet in the published files.
N_ANNOTATIONS = 6
_WHITESPACE = re.compile(r"\s")
#: characters a URL never holds unescaped (RFC 3986): quotes, angle brackets, a byte-order
#: mark or zero-width space, controls; a URL holding one is reported, not fetched
_NOT_IN_URL = re.compile('["<>\ufeff\u200b\x00-\x1f\x7f]')
#: Box fractions may exceed [0, 1] by this much (then they are clipped); more is malformed.
BOX_TOLERANCE = 1e-3

#: Numbers reported in the FECNet paper (Tables 1-3) and FEENet, for reference.
PAPER_NUMBERS: dict[str, Any] = {
    "fecnet_accuracy": {"all": 0.818, "one": 0.771, "two": 0.851, "three": 0.826},
    "human_median_accuracy": {"all": 0.875, "one": 0.853, "two": 0.893, "three": 0.872},
    "feenet_accuracy": {"all": 0.845},
    "feenet_human_mean_accuracy": 0.862,
    "random_accuracy": 1 / 3,
    "train_triplets": {"strong": 357_749, "strong_weak": 407_735, "all": 449_143},
    "test_triplets": {"strong": 41_594, "strong_weak": 46_723, "all": 51_060},
}


class TripletType(IntEnum):
    """FEC triplet type; the value is the ``ttype`` code used by the losses and metrics."""

    ONE = 0
    TWO = 1
    THREE = 2

    @property
    def csv_name(self) -> str:
        """The spelling in the CSV, e.g. ``ONE_CLASS_TRIPLET``."""
        return f"{self.name}_CLASS_TRIPLET"

    @property
    def short(self) -> str:
        """``one`` / ``two`` / ``three`` (the keys of :data:`exprsim.losses.fec_triplet.FEC_MARGINS`)."""
        return self.name.lower()

    @classmethod
    def from_csv(cls, text: str) -> TripletType:
        """Parse ``ONE_CLASS_TRIPLET`` etc.; raises ``ValueError`` on anything else."""
        t = text.strip().upper()
        for member in cls:
            if t == member.csv_name:
                return member
        raise ValueError(f"unknown triplet type {text!r}")


class Agreement(IntEnum):
    """Rater agreement of a triplet (paper Sec. 3.1); ordered none < weak < strong."""

    NONE = 0
    WEAK = 1
    STRONG = 2

    @property
    def short(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str | Agreement) -> Agreement:
        """``"strong"`` / ``"weak"`` / ``"none"`` (case-insensitive) or a member."""
        if isinstance(text, Agreement):
            return text
        try:
            return cls[str(text).strip().upper()]
        except KeyError:
            raise ArgumentError(f"agreement must be strong, weak or none, got {text!r}") from None


TYPE_NAMES: tuple[str, ...] = tuple(t.short for t in TripletType)
AGREEMENT_NAMES: tuple[str, ...] = tuple(a.short for a in Agreement)


@dataclass(frozen=True)
class FaceBox:
    """A face box as fractions of the image size, in the CSV's field order.

    Attributes:
        left: top-left column / width (x1).
        right: bottom-right column / width (x2).
        top: top-left row / height (y1).
        bottom: bottom-right row / height (y2).
    """

    left: float
    right: float
    top: float
    bottom: float

    def to_pixels(self, width: int, height: int) -> tuple[float, float, float, float]:
        """``(x1, y1, x2, y2)`` in pixels of a ``width`` x ``height`` image."""
        return (self.left * width, self.top * height, self.right * width, self.bottom * height)

    def as_tuple(self) -> tuple[float, float, float, float]:
        """``(left, right, top, bottom)``, the CSV order."""
        return (self.left, self.right, self.top, self.bottom)


@dataclass(frozen=True)
class FecFace:
    """One face of a triplet: its image URL and its box."""

    url: str
    box: FaceBox


@dataclass(frozen=True)
class Annotation:
    """One rater's judgement: ``label`` in {1, 2, 3} is the face *unlike* the other two."""

    rater: str
    label: int


@dataclass(frozen=True)
class FecTriplet:
    """One parsed CSV row.

    Attributes:
        line: 1-based line number in the CSV.
        faces: the three faces, in file order.
        ttype: triplet type.
        annotations: the raters' labels (six in the published files).
    """

    line: int
    faces: tuple[FecFace, FecFace, FecFace]
    ttype: TripletType
    annotations: tuple[Annotation, ...]

    @property
    def votes(self) -> np.ndarray:
        """``(3,)`` int64 votes for faces 1, 2, 3 as the odd one out."""
        return np.bincount([a.label - 1 for a in self.annotations], minlength=3).astype(np.int64)

    @property
    def agreement(self) -> Agreement:
        return Agreement(int(agreement_from_votes(self.votes[None])[0]))

    @property
    def odd(self) -> int | None:
        """0-based position of the maximum-voted odd face, ``None`` when the maximum is tied."""
        v = self.votes
        top = int(v.max())
        return int(v.argmax()) if int((v == top).sum()) == 1 else None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"line": self.line}
        for i, f in enumerate(self.faces, start=1):
            d[f"url{i}"] = f.url
            d.update(
                zip(
                    [f"left{i}", f"right{i}", f"top{i}", f"bottom{i}"],
                    f.box.as_tuple(),
                    strict=True,
                )
            )
        d["type"] = self.ttype.short
        for i, a in enumerate(self.annotations, start=1):
            d[f"rater{i}"] = a.rater
            d[f"label{i}"] = a.label
        d["agreement"] = self.agreement.short
        d["odd"] = self.odd
        return d


@dataclass(frozen=True)
class ParseIssue:
    """A malformed row: where, why, and (the start of) its text."""

    line: int
    reason: str
    text: str = ""

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class ParseReport:
    """What happened while reading one CSV.

    Attributes:
        path: the file.
        n_lines: physical lines read.
        n_rows: non-blank records (parsed + malformed).
        n_parsed: valid triplets.
        n_blank: blank lines (skipped, counted).
        issues: every malformed record, with its line number.
    """

    path: str
    n_lines: int
    n_rows: int
    n_parsed: int
    n_blank: int
    issues: tuple[ParseIssue, ...]

    @property
    def n_malformed(self) -> int:
        return len(self.issues)

    @property
    def ok(self) -> bool:
        return not self.issues

    def to_dict(self, max_issues: int | None = None) -> dict[str, Any]:
        issues = self.issues if max_issues is None else self.issues[:max_issues]
        return {
            "path": self.path,
            "n_lines": self.n_lines,
            "n_rows": self.n_rows,
            "n_parsed": self.n_parsed,
            "n_blank": self.n_blank,
            "n_malformed": self.n_malformed,
            "issues": [{"line": i.line, "reason": i.reason, "text": i.text} for i in issues],
        }

    def to_frame(self) -> Any:
        """The issues as a DataFrame (``line``, ``reason``, ``text``)."""
        import pandas as pd

        return pd.DataFrame(
            [{"line": i.line, "reason": i.reason, "text": i.text} for i in self.issues],
            columns=["line", "reason", "text"],
        )


@dataclass(frozen=True, eq=False)
class FecTable:
    """A parsed FEC CSV, stored column-wise (450K rows stay small); rows are typed on access.

    Attributes:
        line: ``(T,)`` int64 1-based line of each triplet.
        url_index: ``(T, 3)`` int32 indices into :attr:`urls`.
        urls: unique URLs, in order of first appearance.
        boxes: ``(T, 3, 4)`` float64 box fractions ``(left, right, top, bottom)``.
        ttype: ``(T,)`` int8 :class:`TripletType` codes.
        rater_index: ``(T, A)`` int32 indices into :attr:`raters` (A = 6).
        raters: unique rater ids.
        labels: ``(T, A)`` int8 annotations in {1, 2, 3}.
        report: the parse report (malformed rows with line numbers).
    """

    line: np.ndarray
    url_index: np.ndarray
    urls: tuple[str, ...]
    boxes: np.ndarray
    ttype: np.ndarray
    rater_index: np.ndarray
    raters: tuple[str, ...]
    labels: np.ndarray
    report: ParseReport
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def path(self) -> str:
        return self.report.path

    @property
    def issues(self) -> tuple[ParseIssue, ...]:
        return self.report.issues

    def __len__(self) -> int:
        return int(self.line.shape[0])

    def __getitem__(self, i: int) -> FecTriplet:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"triplet {i} out of range ({n})")
        i %= n
        faces = tuple(
            FecFace(
                self.urls[int(self.url_index[i, k])], FaceBox(*(float(v) for v in self.boxes[i, k]))
            )
            for k in range(3)
        )
        ann = tuple(
            Annotation(self.raters[int(r)], int(lab))
            for r, lab in zip(self.rater_index[i], self.labels[i], strict=True)
        )
        return FecTriplet(int(self.line[i]), faces, TripletType(int(self.ttype[i])), ann)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[FecTriplet]:
        for i in range(len(self)):
            yield self[i]

    def votes(self) -> np.ndarray:
        """``(T, 3)`` int64 votes for each face as the odd one out."""
        if "votes" not in self._cache:
            v = np.zeros((len(self), 3), np.int64)
            for k in range(3):
                v[:, k] = (self.labels == k + 1).sum(axis=1)
            self._cache["votes"] = v
        return self._cache["votes"]

    def agreement(self) -> np.ndarray:
        """``(T,)`` int8 :class:`Agreement` codes."""
        if "agreement" not in self._cache:
            self._cache["agreement"] = agreement_from_votes(self.votes())
        return self._cache["agreement"]

    def odd(self) -> np.ndarray:
        """``(T,)`` int64 0-based maximum-voted odd face, ``-1`` where the maximum is tied."""
        return majority_from_votes(self.votes())

    def face_ids(self) -> tuple[np.ndarray, list[tuple[str, tuple[float, float, float, float]]]]:
        """Unique faces (URL + box).

        Returns:
            ``(ids, faces)``: ``(T, 3)`` int64 index of each triplet face into ``faces``, a
            list of ``(url, (left, right, top, bottom))``.
        """
        if "faces" not in self._cache:
            n = len(self)
            keys = np.concatenate(
                [self.url_index.reshape(-1, 1).astype(np.float64), self.boxes.reshape(-1, 4)],
                axis=1,
            )  # (3T, 5): url index + box, one row per triplet face
            if n:
                uniq, first, inv = np.unique(keys, axis=0, return_index=True, return_inverse=True)
                order = np.argsort(first, kind="stable")  # first-appearance order
                rank = np.empty_like(order)
                rank[order] = np.arange(len(order))
                ids = rank[inv.reshape(-1)].reshape(n, 3).astype(np.int64)
                faces = [
                    (self.urls[int(u[0])], (float(u[1]), float(u[2]), float(u[3]), float(u[4])))
                    for u in uniq[order]
                ]
            else:
                ids, faces = np.zeros((0, 3), np.int64), []
            self._cache["faces"] = (ids, faces)
        return self._cache["faces"]

    def subset(self, mask_or_index: np.ndarray) -> FecTable:
        """Rows selected by a boolean mask or an index array (URL/rater tables shared)."""
        sel = np.asarray(mask_or_index)
        return FecTable(
            self.line[sel],
            self.url_index[sel],
            self.urls,
            self.boxes[sel],
            self.ttype[sel],
            self.rater_index[sel],
            self.raters,
            self.labels[sel],
            self.report,
        )

    def select(
        self, agreement: str | Agreement | None = "strong", ttype: int | None = None
    ) -> FecTable:
        """Triplets with at least ``agreement`` (``None``: all) and optionally one type."""
        mask = np.ones(len(self), bool)
        if agreement is not None:
            mask &= self.agreement() >= int(Agreement.parse(agreement))
        if ttype is not None:
            mask &= self.ttype == int(ttype)
        return self.subset(mask)

    def to_frame(self) -> Any:
        """One row per triplet (URLs, boxes, type, raters, labels, agreement, odd)."""
        import pandas as pd

        cols: dict[str, Any] = {"line": self.line}
        urls = np.asarray(self.urls, dtype=object)
        for k in range(3):
            cols[f"url{k + 1}"] = urls[self.url_index[:, k]] if len(self) else np.zeros(0, object)
            for j, name in enumerate(("left", "right", "top", "bottom")):
                cols[f"{name}{k + 1}"] = self.boxes[:, k, j]
        cols["type"] = np.asarray(TYPE_NAMES, dtype=object)[self.ttype.astype(np.int64)]
        raters = np.asarray(self.raters, dtype=object)
        for a in range(self.labels.shape[1]):
            cols[f"rater{a + 1}"] = (
                raters[self.rater_index[:, a]] if len(self) else np.zeros(0, object)
            )
            cols[f"label{a + 1}"] = self.labels[:, a]
        cols["agreement"] = np.asarray(AGREEMENT_NAMES, dtype=object)[
            self.agreement().astype(np.int64)
        ]
        cols["odd"] = self.odd()
        return pd.DataFrame(cols)


# --------------------------------------------------------------------------- agreement


def agreement_from_votes(votes: np.ndarray) -> np.ndarray:
    """Paper Sec. 3.1 agreement of vote rows.

    Args:
        votes: ``(T, 3)`` non-negative vote counts (n raters per row = row sum).

    Returns:
        ``(T,)`` int8 :class:`Agreement` codes: strong if ``max >= 2/3 n``; weak if the
        maximum is unique and ``max >= n / 2``; none otherwise.
    """
    v = np.asarray(votes, dtype=np.int64).reshape(-1, 3)
    n = v.sum(axis=1)
    top = v.max(axis=1)
    unique = (v == top[:, None]).sum(axis=1) == 1
    strong = (3 * top >= 2 * n) & (n > 0)
    weak = unique & (2 * top >= n) & ~strong & (n > 0)
    out = np.full(len(v), int(Agreement.NONE), np.int8)
    out[weak] = int(Agreement.WEAK)
    out[strong] = int(Agreement.STRONG)
    return out


def majority_from_votes(votes: np.ndarray) -> np.ndarray:
    """``(T, 3)`` votes -> ``(T,)`` int64 0-based arg-max, ``-1`` where the maximum is tied."""
    v = np.asarray(votes, dtype=np.int64).reshape(-1, 3)
    top = v.max(axis=1)
    unique = (v == top[:, None]).sum(axis=1) == 1
    return np.where(unique, v.argmax(axis=1), -1).astype(np.int64)


# --------------------------------------------------------------------------- parsing


def _parse_box(fields: Sequence[str], face: int) -> tuple[float, float, float, float]:
    try:  # fast path: four numbers inside [0, 1] forming a non-empty box
        left, right, top, bottom = map(float, fields)
        if 0.0 <= left < right <= 1.0 and 0.0 <= top < bottom <= 1.0:
            return left, right, top, bottom
    except ValueError:
        pass
    vals = []
    names = ("top-left column", "bottom-right column", "top-left row", "bottom-right row")
    for name, text in zip(names, fields, strict=True):
        try:
            v = float(text)
        except ValueError:
            raise ValueError(f"face {face}: {name} {text.strip()!r} is not a number") from None
        if not math.isfinite(v) or v < -BOX_TOLERANCE or v > 1 + BOX_TOLERANCE:
            raise ValueError(f"face {face}: {name} {v} is outside [0, 1]")
        vals.append(min(max(v, 0.0), 1.0))
    left, right, top, bottom = vals
    if right <= left or bottom <= top:
        raise ValueError(
            f"face {face}: empty box (columns {left}..{right}, rows {top}..{bottom}; "
            "expected x1 < x2, y1 < y2 in the order x1, x2, y1, y2)"
        )
    return left, right, top, bottom


def parse_fec_csv(
    path: str | Path, *, strict: bool = False, n_annotations: int = N_ANNOTATIONS
) -> FecTable:
    """Read an FEC CSV (layout in the module docstring).

    Args:
        path: the CSV file.
        strict: raise on the first malformed row instead of reporting it.
        n_annotations: raters per row (6 in the published files).

    Returns:
        A :class:`FecTable`; malformed rows are listed, with line numbers, in
        ``table.report.issues`` (and logged as a warning with a count).

    Raises:
        DataError: the file is missing or unreadable, or (``strict``) a row is malformed.
    """
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p}: a folder, not a FEC CSV file")
    if not p.is_file():
        raise DataError(f"{p}: no such FEC CSV file")
    with contextlib.suppress(OSError), p.open("rb") as head:
        if head.read(2) == b"\x1f\x8b":  # read as text, it was hundreds of malformed rows
            raise DataError(f"{p}: a gzip-compressed file; decompress it first (gunzip)")
    n_fields = 16 + 2 * n_annotations
    columns = _FecColumns()
    issues: list[ParseIssue] = []
    n_blank = 0
    n_rows = 0

    def bad(line: int, reason: str, text: str) -> None:
        issue = ParseIssue(line, reason, text[:200])
        if strict:
            raise DataError(f"{p}: {issue}")
        issues.append(issue)

    try:
        # utf-8-sig: a byte-order mark (spreadsheets write one) is not part of the first URL
        fh = p.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="")
    except OSError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    with fh:
        # skipinitialspace: `a, "http://..."` quotes its URL as `a,"http://..."` does (the
        # quote was kept as part of a URL that could not be fetched)
        reader = csv.reader(fh, skipinitialspace=True)
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                n_rows += 1
                bad(start, f"CSV syntax error ({exc})", "")
                continue
            if not row or all(not f.strip() for f in row):
                n_blank += reader.line_num - start + 1
                continue
            n_rows += 1
            raw = ",".join(row)
            if len(row) != n_fields:
                bad(start, f"expected {n_fields} fields, found {len(row)}", raw)
                continue
            try:
                raw.encode("utf-8")
            except UnicodeEncodeError:  # undecodable bytes were kept as lone surrogates
                bad(start, "not valid UTF-8", raw.encode("utf-8", "replace").decode())
                continue
            try:
                columns.append(start, *_parse_fields(row, n_annotations))
            except ValueError as exc:
                bad(start, str(exc), raw)
        n_lines = reader.line_num
    report = ParseReport(str(p), n_lines, n_rows, len(columns.lines), n_blank, tuple(issues))
    if issues:
        log.warning("%s: %d malformed row(s) reported (first: %s)", p, len(issues), issues[0])
    return columns.table(report, n_annotations)


def _parse_fields(
    row: list[str], n_annotations: int
) -> tuple[list[str], tuple[tuple[float, ...], ...], TripletType, list[str], list[int]]:
    """The fields of one FEC row: 3 URLs, 3 boxes, the triplet type, raters and labels.

    Raises:
        ValueError: what is malformed (the row is reported, not kept).
    """
    urls_row = []
    for k in range(3):
        u = row[5 * k].strip()
        if not u or "://" not in u or _WHITESPACE.search(u) or _NOT_IN_URL.search(u):
            raise ValueError(f"face {k + 1}: empty or malformed URL {u[:80]!r}")
        urls_row.append(u)
    bx = tuple(_parse_box(row[5 * k + 1 : 5 * k + 5], k + 1) for k in range(3))
    tt = TripletType.from_csv(row[15])
    rr, ll = [], []
    for a in range(n_annotations):
        rater = row[16 + 2 * a].strip()
        lab = row[17 + 2 * a].strip()
        if not rater:
            raise ValueError(f"annotation {a + 1}: empty rater id")
        if lab not in ("1", "2", "3"):
            raise ValueError(f"annotation {a + 1}: label {lab!r} is not 1, 2 or 3")
        rr.append(rater)
        ll.append(int(lab))
    return urls_row, bx, tt, rr, ll


class _FecColumns:
    """The rows parsed so far as compact typed buffers (450K rows stay ~100 MB)."""

    def __init__(self) -> None:
        self.url_ids: dict[str, int] = {}
        self.rater_ids: dict[str, int] = {}
        self.lines = array("q")
        self.url_idx = array("i")
        self.boxes = array("d")
        self.types = array("b")
        self.r_idx = array("i")
        self.labels = array("b")

    def append(
        self,
        line: int,
        urls: list[str],
        boxes: tuple[tuple[float, ...], ...],
        ttype: TripletType,
        raters: list[str],
        labels: list[int],
    ) -> None:
        self.lines.append(line)
        self.url_idx.extend(self.url_ids.setdefault(u, len(self.url_ids)) for u in urls)
        for b in boxes:
            self.boxes.extend(b)
        self.types.append(int(ttype))
        self.r_idx.extend(self.rater_ids.setdefault(r, len(self.rater_ids)) for r in raters)
        self.labels.extend(labels)

    def table(self, report: ParseReport, n_annotations: int) -> FecTable:
        t = len(self.lines)
        return FecTable(
            line=np.frombuffer(self.lines, np.int64).copy(),
            url_index=np.frombuffer(self.url_idx, np.int32).astype(np.int32).reshape(t, 3),
            urls=tuple(self.url_ids),
            boxes=np.frombuffer(self.boxes, np.float64).copy().reshape(t, 3, 4),
            ttype=np.frombuffer(self.types, np.int8).copy(),
            rater_index=np.frombuffer(self.r_idx, np.int32)
            .astype(np.int32)
            .reshape(t, n_annotations),
            raters=tuple(self.rater_ids),
            labels=np.frombuffer(self.labels, np.int8).copy().reshape(t, n_annotations),
            report=report,
        )


def write_fec_csv(rows: Sequence[FecTriplet], path: str | Path) -> Path:
    """Write triplets in the official layout (URLs quoted, like the published files)."""
    import io

    from exprsim.io import write_atomically

    text = io.StringIO()
    w = csv.writer(text, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    for r in rows:
        out: list[str] = []
        for f in r.faces:
            out.append(f.url)
            out.extend(f"{v:g}" for v in f.box.as_tuple())
        out.append(r.ttype.csv_name)
        for a in r.annotations:
            out.extend([a.rater, str(a.label)])
        w.writerow(out)
    # whole or not at all: a row that fails midway left the earlier file truncated
    return write_atomically(Path(path), lambda fh: fh.write(text.getvalue().encode("utf-8")))


# --------------------------------------------------------------------------- human baseline


@dataclass(frozen=True)
class RaterScore:
    """One rater's agreement with the majority of the others."""

    rater: str
    n: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else float("nan")


@dataclass(frozen=True)
class HumanBaseline:
    """Rater-agreement ("human") triplet accuracy, computed like the FECNet paper.

    Attributes:
        n_triplets: triplets scored.
        median: median of the per-rater accuracies (the paper's "median rater").
        mean: mean of the per-rater accuracies (FEENet quotes an average, 86.2%).
        pooled: share of all scored annotations that agree with the others' majority.
        by_type: ``{"one"|"two"|"three": {"median", "mean", "pooled", "n_triplets"}}``.
        raters: per-rater counts over all scored triplets.
        n_ties: annotations skipped because the other raters' majority was tied.
        leave_one_out: whether each rater was left out of the majority it is scored against.
        agreement: the minimum agreement of the scored triplets (``None``: all).
    """

    n_triplets: int
    median: float
    mean: float
    pooled: float
    by_type: dict[str, dict[str, float]]
    raters: tuple[RaterScore, ...]
    n_ties: int
    leave_one_out: bool
    agreement: str | None

    def to_dict(self, with_raters: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "n_triplets": self.n_triplets,
            "n_raters": len(self.raters),
            "median": self.median,
            "mean": self.mean,
            "pooled": self.pooled,
            "by_type": self.by_type,
            "n_ties": self.n_ties,
            "leave_one_out": self.leave_one_out,
            "agreement": self.agreement,
        }
        if with_raters:
            d["raters"] = [{"rater": r.rater, "n": r.n, "correct": r.correct} for r in self.raters]
        return d

    def to_frame(self) -> Any:
        """Per-rater table (``rater``, ``n``, ``correct``, ``accuracy``)."""
        import pandas as pd

        return pd.DataFrame(
            [
                {"rater": r.rater, "n": r.n, "correct": r.correct, "accuracy": r.accuracy}
                for r in self.raters
            ],
            columns=["rater", "n", "correct", "accuracy"],
        )


def _rater_stats(
    rater_index: np.ndarray,
    correct: np.ndarray,
    scored: np.ndarray,
    n_raters: int,
    min_triplets: int,
) -> tuple[np.ndarray, np.ndarray, float, float, float]:
    r = rater_index[scored]
    c = correct[scored]
    n = np.bincount(r, minlength=n_raters)
    k = np.bincount(r, weights=c.astype(np.float64), minlength=n_raters)
    use = n >= max(min_triplets, 1)
    acc = k[use] / n[use]
    median = float(np.median(acc)) if acc.size else float("nan")
    mean = float(acc.mean()) if acc.size else float("nan")
    pooled = float(c.mean()) if c.size else float("nan")
    return n, k.astype(np.int64), median, mean, pooled


def human_baseline(
    table: FecTable,
    agreement: str | Agreement | None = "strong",
    leave_one_out: bool = True,
    min_triplets: int = 1,
) -> HumanBaseline:
    """Per-rater accuracy against the majority label, median over raters (paper Table 3).

    Each annotation ``(triplet t, rater r, label l)`` is correct when ``l`` is the unique
    maximum-voted label of the other raters of ``t`` (``leave_one_out=True``) or of all
    raters (``False``); with a tied majority the annotation is skipped (``n_ties``). A
    rater's accuracy is their share of correct annotations; the baseline is the median (and
    mean) over raters with at least ``min_triplets`` scored annotations.

    Args:
        table: parsed triplets.
        agreement: score only triplets with at least this agreement (paper: strong);
            ``None`` scores all.
        leave_one_out: leave the scored rater out of the majority (see module docstring;
            identical to the paper's definition on strong triplets).
        min_triplets: minimum scored annotations for a rater to enter the median/mean.
    """
    sub = table if agreement is None else table.select(agreement)
    labels = sub.labels.astype(np.int64) - 1  # (T, A) 0-based
    votes = sub.votes()  # (T, 3)
    t, a = labels.shape
    if leave_one_out:
        own = np.zeros((t, a, 3), np.int64)
        np.put_along_axis(own, labels[..., None], 1, axis=2)
        ref_votes = votes[:, None, :] - own  # (T, A, 3)
    else:
        ref_votes = np.broadcast_to(votes[:, None, :], (t, a, 3))
    maj = majority_from_votes(ref_votes.reshape(-1, 3)).reshape(t, a)
    scored = maj >= 0
    correct = (labels == maj) & scored
    n_raters = len(sub.raters)
    n_all, k_all, med, mean, pooled = _rater_stats(
        sub.rater_index, correct, scored, n_raters, min_triplets
    )
    by_type: dict[str, dict[str, float]] = {}
    for tt in TripletType:
        rows = sub.ttype == int(tt)
        sc = scored & rows[:, None]
        _, _, m_t, mean_t, p_t = _rater_stats(sub.rater_index, correct, sc, n_raters, min_triplets)
        by_type[tt.short] = {
            "median": m_t,
            "mean": mean_t,
            "pooled": p_t,
            "n_triplets": int(rows.sum()),
        }
    raters = tuple(
        RaterScore(sub.raters[i], int(n_all[i]), int(k_all[i]))
        for i in range(n_raters)
        if n_all[i] > 0
    )
    return HumanBaseline(
        n_triplets=t,
        median=med,
        mean=mean,
        pooled=pooled,
        by_type=by_type,
        raters=raters,
        n_ties=int((~scored).sum()),
        leave_one_out=leave_one_out,
        agreement=None if agreement is None else Agreement.parse(agreement).short,
    )


# --------------------------------------------------------------------------- stats


def _pct(v: float) -> str:
    return "n/a" if v != v else f"{v:.1%}"


@dataclass(frozen=True)
class FecStats:
    """Summary of an FEC CSV (what ``exprsim fec stats`` prints).

    Attributes:
        path: the CSV.
        rows: valid triplets.
        report: the parse report (malformed rows with line numbers).
        types: triplets per type (``one`` / ``two`` / ``three``).
        agreement: ``{type or "all": {"strong", "weak", "none"}}`` counts.
        n_urls: unique image URLs.
        n_faces: unique faces (URL + box).
        n_raters: unique rater ids.
        human: the rater-agreement baseline on strong triplets.
    """

    path: str
    rows: int
    report: ParseReport
    types: dict[str, int]
    agreement: dict[str, dict[str, int]]
    n_urls: int
    n_faces: int
    n_raters: int
    human: HumanBaseline

    def shares(self) -> dict[str, dict[str, float]]:
        """Agreement shares per type (fractions of that type's triplets)."""
        out = {}
        for key, counts in self.agreement.items():
            total = sum(counts.values())
            out[key] = {k: (v / total if total else float("nan")) for k, v in counts.items()}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "rows": self.rows,
            "malformed": self.report.n_malformed,
            "blank_lines": self.report.n_blank,
            "issues": self.report.to_dict(max_issues=50)["issues"],
            "types": self.types,
            "agreement": self.agreement,
            "agreement_shares": self.shares(),
            "n_urls": self.n_urls,
            "n_faces": self.n_faces,
            "n_raters": self.n_raters,
            "human_baseline": self.human.to_dict(),
        }

    def to_frame(self) -> Any:
        """Counts and shares: one row per type plus ``all``."""
        import pandas as pd

        shares = self.shares()
        rows = []
        for key in (*TYPE_NAMES, "all"):
            c = self.agreement[key]
            rows.append(
                {
                    "type": key,
                    "triplets": sum(c.values()),
                    **c,
                    **{f"{k}_share": shares[key][k] for k in AGREEMENT_NAMES[::-1]},
                    "human_median": self.human.by_type[key]["median"]
                    if key != "all"
                    else self.human.median,
                }
            )
        return pd.DataFrame(rows)

    def to_text(self, max_issues: int = 10) -> str:
        sh = self.shares()
        pct = _pct
        lines = [
            printable(str(self.path)),  # an undecodable file name as escapes, not raw bytes
            f"  rows: {count(self.rows, 'triplet')} ({self.report.n_malformed} malformed, "
            f"{count(self.report.n_blank, 'blank line')})",
            f"  unique: {self.n_urls} image URLs, {self.n_faces} faces (URL + box), "
            f"{self.n_raters} raters",
            "  type     triplets   strong    weak    none   (shares)",
        ]
        for key in (*TYPE_NAMES, "all"):
            c = self.agreement[key]
            lines.append(
                f"  {key:<7}{sum(c.values()):>9}{c['strong']:>9}{c['weak']:>8}{c['none']:>8}"
                f"   ({pct(sh[key]['strong'])} / {pct(sh[key]['weak'])} / {pct(sh[key]['none'])})"
            )
        h = self.human
        per_type = ", ".join(f"{k} {pct(h.by_type[k]['median'])}" for k in TYPE_NAMES)
        lines.append(
            f"  human baseline (median rater vs. majority of the others, strong triplets): "
            f"{pct(h.median)} ({per_type}); mean rater {pct(h.mean)}; paper: 87.5%"
        )
        for issue in self.report.issues[:max_issues]:
            lines.append(f"  malformed {issue}")
        if self.report.n_malformed > max_issues:
            lines.append(f"  ... and {self.report.n_malformed - max_issues} more malformed rows")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def fec_stats(path_or_table: str | Path | FecTable) -> FecStats:
    """Rows, triplet types, agreement shares and the human baseline of an FEC CSV."""
    table = path_or_table if isinstance(path_or_table, FecTable) else parse_fec_csv(path_or_table)
    agr = table.agreement()
    counts: dict[str, dict[str, int]] = {}
    for tt in TripletType:
        rows = table.ttype == int(tt)
        counts[tt.short] = {
            a.short: int(((agr == int(a)) & rows).sum()) for a in reversed(Agreement)
        }
    counts["all"] = {a.short: int((agr == int(a)).sum()) for a in reversed(Agreement)}
    _, faces = table.face_ids()
    used_raters = np.unique(table.rater_index) if len(table) else np.zeros(0)
    return FecStats(
        path=table.path,
        rows=len(table),
        report=table.report,
        types={tt.short: int((table.ttype == int(tt)).sum()) for tt in TripletType},
        agreement=counts,
        n_urls=len(np.unique(table.url_index)) if len(table) else 0,
        n_faces=len(faces),
        n_raters=len(used_raters),
        human=human_baseline(table, "strong"),
    )
