"""Sub-expressions: classes within expression classes, by Gaussian mixtures in the embedding.

After Marrero Fernandez et al., "Deep Metric Structured Learning for Facial Expression
Recognition" (Sec. 3.2, Algorithm 2 "Deep Gaussian Mixture Sub-space Learning", Sec. 4.2.3):

* :func:`split_classes` — the EM step: a Gaussian mixture (scikit-learn
  ``GaussianMixture``, spherical covariances by default: the SGM loss models each class as
  ``N(mu, sigma^2 I)``) fitted to the embeddings of each class separately; its components
  become sub-classes. The number of components per class is fixed (``n_components=int``; the
  paper's 5 per class gives FER+'s 40 groups) or chosen by BIC among
  ``1..max_components`` (``"bic"``, the default for discovery on a trained model: a class
  with one mode stays whole).
* Algorithm 2 (train with SGM, split, relabel, train again) is a learner:
  :mod:`exprsim.training.sgm` (recipe ``sgm-subspaces``), built on :func:`split_classes`.
* :func:`discover_subexpressions` / :func:`subexpressions_page` — for a trained model and a
  face set: split each emotion class, and per sub-class the medoid (the member closest to
  the sub-class mean) and the ``top_k`` members nearest the medoid (the paper's Top-k),
  as an HTML page (``exprsim subclasses``).
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from exprsim.clustering import n_distinct
from exprsim.equality import array_equality
from exprsim.errors import ExprsimError, printable, require_positive_int
from exprsim.metrics import class_ids
from exprsim.wording import count

log = logging.getLogger(__name__)


@array_equality
@dataclass(frozen=True)
class SubclassSplit:
    """Result of :func:`split_classes`.

    Attributes:
        labels: ``(N,)`` int64 sub-class id of every row.
        parent: ``(K,)`` int64 original class of each sub-class id (``-1`` for ids left
            unused by a fixed ``stride``).
        n_components: original class -> number of sub-classes.
        means: ``(K, D)`` float64 mixture component means (NaN rows for unused ids).
        bic: original class -> BIC of each tried component count (``{n: bic}``; only
            for ``"bic"``).
    """

    labels: np.ndarray
    parent: np.ndarray
    n_components: dict[int, int]
    means: np.ndarray
    bic: dict[int, dict[int, float]] = field(default_factory=dict)

    @property
    def n_subclasses(self) -> int:
        return int((self.parent >= 0).sum())

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_subclasses": self.n_subclasses,
            "n_components": {str(k): v for k, v in self.n_components.items()},
            "sizes": np.bincount(self.labels, minlength=len(self.parent)).tolist(),
            "parent": self.parent.tolist(),
            "bic": {str(c): {str(n): b for n, b in d.items()} for c, d in self.bic.items()},
        }


#: ``GaussianMixture`` covariance types :func:`split_classes` accepts
COVARIANCE_TYPES: tuple[str, ...] = ("spherical", "diag", "full", "tied")


def check_covariance_type(covariance_type: object) -> None:
    """Raise :class:`ExprsimError` unless ``covariance_type`` is one of :data:`COVARIANCE_TYPES`.

    Checked before any work: a bad value used to fail inside the first EM fit (in a
    ``sgm-subspaces`` run, after its first level's training).
    """
    if not isinstance(covariance_type, str) or covariance_type not in COVARIANCE_TYPES:
        raise ExprsimError(
            f"covariance_type must be one of {', '.join(COVARIANCE_TYPES)}; got {covariance_type!r}"
        )


def _fit_gmm(x: np.ndarray, n: int, covariance_type: str, seed: int, n_init: int) -> Any:
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(
        n_components=n,
        covariance_type=covariance_type,
        random_state=seed,
        n_init=n_init,
        reg_covar=1e-6,
    ).fit(x)


def _at_least_one(**values: object) -> None:
    """Refuse a value that is not a whole number >= 1 (a float such as ``2.5``, a bool)."""
    for name, value in values.items():
        require_positive_int(value, name)


#: largest EM seed (``GaussianMixture``'s ``random_state`` takes ``0 .. 2**32 - 1``)
MAX_SEED = 2**32 - 1


def _check_settings(n_components: object, stride: object, seed: object, **counts: object) -> None:
    """Refuse, before any fit, settings EM cannot use (one :class:`ExprsimError` line):
    ``n_components`` neither ``"bic"`` nor a whole number >= 1, a ``stride`` or a count of
    ``counts`` that is not a whole number >= 1, a seed outside ``0 .. MAX_SEED``."""
    if isinstance(n_components, str):
        if n_components != "bic":
            raise ExprsimError(f"n_components must be an int or 'bic', got {n_components!r}")
    else:
        require_positive_int(n_components, "n_components")
    if stride is not None:
        require_positive_int(stride, "stride")
    _at_least_one(**counts)
    if (
        isinstance(seed, bool)
        or not isinstance(seed, numbers.Integral)
        or not 0 <= int(seed) <= MAX_SEED
    ):
        raise ExprsimError(f"seed must be a whole number in [0, {MAX_SEED}], got {seed!r}")


#: Most class (and sub-class) ids: results hold a slot for every id from 0, so one face
#: labelled 10**9 had asked for gigabytes
MAX_CLASS_IDS = 1 << 20


def _checked_inputs(emb: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(N, D)`` finite float64 embeddings and ``(N,)`` int64 class ids.

    Raises:
        ExprsimError: mismatched shapes, a non-finite embedding, or a label that is not a
            non-negative whole number (``-1`` would index names from the end, ``0.7`` be
            truncated), or one of :data:`MAX_CLASS_IDS` or more.
    """
    x = np.asarray(emb, np.float64)
    y = np.asarray(labels)
    if x.ndim != 2 or y.shape != (len(x),) or (len(x) and x.shape[1] == 0):  # D >= 1
        raise ExprsimError(f"emb must be (N, D) and labels (N,), got {x.shape} and {y.shape}")
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise ExprsimError(f"emb holds NaN or infinite values (row {bad})")
    y = class_ids(y, "labels", ExprsimError)
    if y.size and int(y.max()) >= MAX_CLASS_IDS:
        raise ExprsimError(
            f"labels are class ids counted from 0, at most {MAX_CLASS_IDS - 1:,}; got "
            f"{int(y.max()):,} (renumber the classes 0, 1, 2, ...)"
        )
    return x, y


def _split_one_class(
    xc: np.ndarray,
    n_components: int | str,
    max_components: int,
    cap: int,
    stride: int | None,
    covariance_type: str,
    seed: int,
    n_init: int,
    min_size: int = 1,
) -> tuple[np.ndarray, list[int], dict[int, float]]:
    """EM on one class: ``(component of each row, components by size, BIC per count)``.

    With ``"bic"``, a count whose fit leaves a component under ``min_size`` faces is not
    chosen (its BIC is still reported): a one-face component's near-zero variance buys it a
    likelihood no penalty outweighs, and it is an outlier, not a sub-expression.
    """
    tried: dict[int, float] = {}
    gmm = None
    # EM starts from rows picked by position: fitted on the rows in one canonical order
    # (sorted by value), the same faces give the same split in any input order
    canonical = np.lexsort(xc.T[::-1])
    xc_fit = xc[canonical]
    if cap == 1:  # too few faces to split
        n_c = 1
    elif n_components == "bic":
        best: tuple[int, Any] | None = None
        most = min(max_components, cap, stride or max_components)  # ids stay in the stride
        for n in range(1, most + 1):
            fit = _fit_gmm(xc_fit, n, covariance_type, seed, n_init)
            tried[n] = float(fit.bic(xc_fit))
            if n > 1 and np.bincount(fit.predict(xc), minlength=n).min() < min_size:
                continue
            if best is None or tried[n] < tried[best[0]]:
                best = (n, fit)
        assert best is not None
        n_c, gmm = best
    else:
        n_c = min(int(n_components), cap)
        if stride is not None and n_c > stride:
            raise ExprsimError(f"n_components {n_c} > stride {stride}")
        gmm = _fit_gmm(xc_fit, n_c, covariance_type, seed, n_init) if n_c > 1 else None
    comp = gmm.predict(xc) if gmm is not None and n_c > 1 else np.zeros(len(xc), np.int64)
    # order components by size (ties: the first member in the canonical order), drop
    # empty ones
    in_order = comp[canonical]
    order = sorted(
        (k for k in range(n_c) if (comp == k).any()),
        key=lambda k: (-int((comp == k).sum()), int(np.argmax(in_order == k))),
    )
    return comp, order, tried


def _check_id_room(classes: np.ndarray, stride: int | None) -> np.ndarray:
    """``classes``; refuses a ``stride`` whose sub-class ids (a slot each) would pass
    :data:`MAX_CLASS_IDS`."""
    if stride is not None and classes.size and (int(classes[-1]) + 1) * stride > MAX_CLASS_IDS:
        raise ExprsimError(
            f"stride {stride} makes sub-class ids up to {(int(classes[-1]) + 1) * stride:,}, "
            f"more than {MAX_CLASS_IDS:,}: renumber the classes 0, 1, 2, ... or lower stride"
        )
    return classes


def _covariance_room(m: int, d: int, covariance_type: str) -> int:
    """Most components a class of ``m`` faces of ``d`` dimensions can be fit with such
    covariances (:func:`split_classes` caps its count with it): a full ``d x d``
    covariance needs twice ``d + 1`` faces per component (``d + 1`` to be determined at
    all), a tied one ``d`` in all and 5 more per component. Below that the regularised,
    nearly singular fit wins the likelihood, and BIC split a class of one mode into 2 to 5."""
    if covariance_type == "full":
        return max(1, m // (2 * (d + 1)))
    if covariance_type == "tied":
        return max(1, (m - d) // 5)
    return m


def split_classes(
    emb: np.ndarray,
    labels: np.ndarray,
    n_components: int | str = "bic",
    max_components: int = 5,
    covariance_type: str = "spherical",
    stride: int | None = None,
    seed: int = 0,
    n_init: int = 3,
    min_per_component: int = 5,
) -> SubclassSplit:
    """Split every class of ``labels`` into sub-classes by EM on its embeddings.

    Args:
        emb: ``(N, D)`` finite embeddings.
        labels: ``(N,)`` int class of each row (non-negative; a whole float counts as int).
        n_components: components per class (capped at the class size), or ``"bic"``: the
            count in ``1..max_components`` with the lowest BIC.
        max_components: upper bound for ``"bic"``.
        covariance_type: ``GaussianMixture`` covariance (``"spherical"``: isotropic, as
            SGM's Gaussians; ``"diag"``, ``"full"``, ``"tied"``).
        stride: ids of class ``j`` start at ``j * stride`` (Algorithm 2: ``stride = l``;
            ``"bic"`` then tries at most ``stride`` components); default ``None`` numbers
            sub-classes contiguously in class order.
        seed, n_init: EM initialisation (k-means, ``n_init`` restarts).
        min_per_component: a class of ``m`` faces gets at most ``max(1, m // min_per_component)``
            components (BIC is degenerate when components approach single faces), never
            more than it has distinct faces, and with ``"bic"`` no component of fewer faces.

    Returns:
        :class:`SubclassSplit`; within a class, sub-classes are ordered by size (largest
        first), so ids are deterministic for a given input, and the same faces in another
        order get the same sub-classes (EM is fitted on the rows sorted by value).

    Raises:
        ExprsimError: bad shapes, non-finite embeddings, a negative or fractional label; a
            count (``n_components``, ``max_components``, ``min_per_component``, ``n_init``,
            ``stride``) that is not a whole number >= 1, a seed outside ``0 .. 2**32 - 1``.
    """
    x, y = _checked_inputs(emb, labels)
    bounds = {"max_components": max_components, "min_per_component": min_per_component}
    _check_settings(n_components, stride, seed, n_init=n_init, **bounds)
    check_covariance_type(covariance_type)
    classes = _check_id_room(np.unique(y), stride)
    out = np.full(len(y), -1, np.int64)
    parent: list[int] = []
    means: list[np.ndarray] = []
    counts: dict[int, int] = {}
    bics: dict[int, dict[int, float]] = {}
    offset = 0
    for c in classes:
        idx = np.flatnonzero(y == c)
        xc = x[idx]
        if stride is not None:
            offset = int(c) * stride
            while len(parent) < offset:
                parent.append(-1)
                means.append(np.full(x.shape[1], np.nan))
        # no more components than distinct faces (copies cannot be split) or covariances hold
        room = _covariance_room(len(idx), x.shape[1], covariance_type)
        cap = max(1, min(len(idx) // max(min_per_component, 1), n_distinct(xc), room))
        comp, order, tried = _split_one_class(
            xc, n_components, max_components, cap, stride, covariance_type, seed, n_init,
            min_size=min_per_component,
        )  # fmt: skip
        if tried:
            bics[int(c)] = tried
        for rank, k in enumerate(order):
            out[idx[comp == k]] = offset + rank
            parent.append(int(c))
            means.append(xc[comp == k].mean(axis=0))
        counts[int(c)] = len(order)
        offset += len(order)
    return SubclassSplit(
        labels=out,
        parent=np.asarray(parent, np.int64),
        n_components=counts,
        means=np.stack(means) if means else np.zeros((0, x.shape[1])),
        bic=bics,
    )


@array_equality
@dataclass(frozen=True)
class Subexpression:
    """One sub-class of an expression class.

    Attributes:
        subclass: sub-class id; ``parent`` its class id, ``parent_name`` its name.
        rank: 0 for the class's largest sub-class.
        members: row indices of its faces.
        medoid: row index of the member closest to the sub-class mean.
        top: the ``top_k`` members nearest the medoid (medoid first).
        spread: mean distance of the members to the mean.
    """

    subclass: int
    parent: int
    parent_name: str
    rank: int
    members: np.ndarray
    medoid: int
    top: tuple[int, ...]
    spread: float

    @property
    def size(self) -> int:
        return len(self.members)

    def to_dict(self) -> dict[str, Any]:
        return {
            "class": self.parent_name,
            "subclass": f"{self.parent_name}-{self.rank + 1}",
            "size": self.size,
            "medoid": self.medoid,
            "spread": self.spread,
        }


@array_equality
@dataclass(frozen=True)
class SubexpressionReport:
    """Result of :func:`discover_subexpressions`.

    Attributes:
        split: the EM split; ``subexpressions`` in class order, largest first within one.
        embeddings: ``(N, D)``; ``class_labels`` ``(N,)``; ``class_names`` per class id.
        crops: optional ``N`` uint8 crops for pictures; ``sources``: optional ``N`` names.
    """

    split: SubclassSplit
    subexpressions: tuple[Subexpression, ...]
    embeddings: np.ndarray
    class_labels: np.ndarray
    class_names: tuple[str, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    crops: Sequence[np.ndarray | None] | None = None
    sources: Sequence[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """``settings``, ``subexpressions`` and ``split``; each sub-expression's ``medoid``
        and ``top`` are rows of the face set, named by ``medoid_source`` and
        ``top_sources`` when the report carries :attr:`sources`."""
        subs = []
        for s in self.subexpressions:
            d = s.to_dict() | {"top": list(s.top)}
            if self.sources is not None:
                d["medoid_source"] = printable(str(self.sources[s.medoid]))
                d["top_sources"] = [printable(str(self.sources[t])) for t in s.top]
            subs.append(d)
        return {"settings": self.settings, "subexpressions": subs, "split": self.split.to_dict()}

    def to_frame(self) -> Any:
        """One row per face: ``item, class, subclass, distance_to_medoid`` (+ ``source``)."""
        import pandas as pd

        rows = []
        for s in self.subexpressions:
            d = np.linalg.norm(self.embeddings[s.members] - self.embeddings[s.medoid], axis=1)
            for m, dm in zip(s.members, d, strict=True):
                row: dict[str, Any] = {
                    "item": int(m),
                    "class": s.parent_name,
                    "subclass": f"{s.parent_name}-{s.rank + 1}",
                    "distance_to_medoid": float(dm),
                }
                if self.sources is not None:
                    row["source"] = str(self.sources[m])
                rows.append(row)
        return pd.DataFrame(rows)


def _class_name(names: Sequence[str], c: int) -> str:
    """The name of class id ``c`` (>= 0): ``names[c]``, else ``"class <c>"``."""
    return names[c] if c < len(names) else f"class {c}"


def _check_carried(n: int, crops: Sequence[Any] | None, sources: Sequence[str] | None) -> None:
    """Refuse ``crops`` or ``sources`` that are not one per face (the report page failed
    on crops of another length, later)."""
    if sources is not None and len(sources) != n:
        raise ExprsimError(f"sources must name every face: {len(sources)} for {n} faces")
    if crops is not None and len(crops) != n:
        raise ExprsimError(f"crops must hold one per face: {len(crops)} for {n} faces")


def discover_subexpressions(
    emb: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str] | None = None,
    n_components: int | str = "bic",
    max_components: int = 5,
    covariance_type: str = "spherical",
    top_k: int = 16,
    seed: int = 0,
    min_per_component: int = 5,
    crops: Sequence[np.ndarray | None] | None = None,
    sources: Sequence[str] | None = None,
) -> SubexpressionReport:
    """Split each expression class into sub-expressions with representative faces.

    Args:
        emb: ``(N, D)`` finite embeddings; labels: ``(N,)`` non-negative int class ids.
        class_names: name per class id (default ``"class <id>"``).
        n_components, max_components, covariance_type, seed, min_per_component: see
            :func:`split_classes`.
        top_k: representatives per sub-class (the medoid and its nearest members).
        crops, sources: carried into the report for pictures and tables.

    Raises:
        ExprsimError: as :func:`split_classes` (NaN embeddings, label -1 or 0.7, ...).
    """
    _at_least_one(top_k=top_k)
    x, y = _checked_inputs(emb, labels)
    _check_carried(len(x), crops, sources)
    split = split_classes(
        x,
        y,
        n_components,
        max_components,
        covariance_type,
        seed=seed,
        min_per_component=min_per_component,
    )
    names = list(class_names) if class_names is not None else []
    subs = []
    for k, c in enumerate(split.parent.tolist()):
        members = np.flatnonzero(split.labels == k)
        centre = x[members].mean(axis=0)
        d_centre = np.linalg.norm(x[members] - centre, axis=1)
        medoid = int(members[int(np.argmin(d_centre))])
        d_med = np.linalg.norm(x[members] - x[medoid], axis=1)
        top = members[np.lexsort((members, d_med))][:top_k]
        rank = k - int(np.flatnonzero(split.parent == c)[0])
        subs.append(
            Subexpression(
                k,
                int(c),
                _class_name(names, int(c)),
                rank,
                members,
                medoid,
                tuple(int(t) for t in top),
                float(d_centre.mean()),
            )
        )
    settings = {
        "n_faces": len(x),
        "n_components": n_components,
        "max_components": max_components,
        "covariance_type": covariance_type,
        "top_k": top_k,
        "seed": seed,
        "min_per_component": min_per_component,
    }
    return SubexpressionReport(
        split,
        tuple(subs),
        x,
        y,
        tuple(_class_name(names, c) for c in range(int(y.max(initial=-1)) + 1)),
        settings,
        crops,
        sources,
    )


def subexpressions_page(
    report: SubexpressionReport, title: str = "Sub-expressions", map_method: str = "auto"
) -> Any:
    """An HTML :class:`~exprsim.report.html.Page`: per class, one strip of its top faces per
    sub-class (medoid first), a table of sub-class sizes and BIC, and a map of all faces."""
    from exprsim.apps.compare import display_names
    from exprsim.report import plots
    from exprsim.report.html import Page

    s = report.settings
    page = Page(
        title,
        subtitle=(
            f"{len(report.embeddings)} faces, {report.split.n_subclasses} sub-classes "
            f"(EM per class, {s.get('covariance_type')} Gaussians, components: "
            f"{s.get('n_components')}"
            + (f" up to {s.get('max_components')}" if s.get("n_components") == "bic" else "")
            + ")"
        ),
    )
    page.paragraph(
        "Each expression class is split by a Gaussian mixture fitted (EM) to its faces' "
        "embeddings. For each sub-class: the medoid (the face closest to the sub-class mean) "
        "and its nearest faces, closest first."
    )
    names = None if report.sources is None else display_names(report.sources)
    page.table(
        [
            x.to_dict() | ({"medoid": names[x.medoid]} if names is not None else {})
            for x in report.subexpressions
        ]
    )
    crops = report.crops
    for c in sorted({x.parent for x in report.subexpressions}):
        subs = [x for x in report.subexpressions if x.parent == c]
        page.heading(f"{subs[0].parent_name}: {len(subs)} sub-expression(s)")
        bic = report.split.bic.get(c)
        if bic:
            page.paragraph(
                "BIC by number of components: "
                + ", ".join(f"{n}: {b:.0f}" for n, b in sorted(bic.items())),
                note=True,
            )
        for x in subs:
            page.heading(f"{x.parent_name}-{x.rank + 1} ({count(x.size, 'face')})", level=3)
            if crops is not None:
                caps = ["medoid"] + [
                    f"d={np.linalg.norm(report.embeddings[t] - report.embeddings[x.medoid]):.2f}"
                    for t in x.top[1:]
                ]
                if names is not None:  # which file each face is (file#face)
                    caps = [f"{names[t]} {cap}" for t, cap in zip(x.top, caps, strict=True)]
                page.gallery([crops[t] for t in x.top], captions=caps, size=72)
    if len(report.embeddings) >= 2:
        page.heading("Map of all faces, coloured by sub-class")
        labels = [
            f"{report.subexpressions[k].parent_name}-{report.subexpressions[k].rank + 1}"
            for k in report.split.labels
        ]
        page.image(
            plots.embedding_map(report.embeddings, labels=labels, method=map_method, seed=0),
            alt=f"2-D map of {len(labels)} faces, near for similar expressions, each sub-class "
            "its own colour and marker (legend on the map); the faces of each sub-class are "
            "shown above",
        )
    return page
