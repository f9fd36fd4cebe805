"""Figures for the reports, as PNG bytes (matplotlib's Agg canvas; pyplot's global state is
never touched, so these are safe in servers and threads).

* :func:`embedding_map` — 2-D map of faces (UMAP when installed, else t-SNE; PCA on request)
  with the face thumbnails drawn at their positions; t-SNE and UMAP map at most
  :data:`MAP_MAX_POINTS` faces (a fixed-seed sample, every label kept, named in the title);
* :func:`similarity_heatmap` — all-pairs distance matrix;
* :func:`cluster_montage` — one row of crops per cluster;
* :func:`pr_curve` — precision/recall against a distance threshold;
* :func:`line_plot` — a few named curves over one x axis (e.g. a metric against K).
"""

from __future__ import annotations

import importlib.util
import io
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from exprsim.clustering import n_distinct, power_of_two_scale
from exprsim.errors import ExprsimError

log = logging.getLogger(__name__)

MAP_METHODS = ("auto", "umap", "tsne", "pca")

#: Most faces :func:`embedding_map` maps with t-SNE or UMAP (t-SNE took 76 s for 5,000 faces
#: and 321 s for 20,000); above it, a fixed-seed random sample of this many is mapped (every
#: label kept) and the title says so. PCA maps every face.
MAP_MAX_POINTS = 2000


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def fig_to_png(fig: Any, dpi: int = 110) -> bytes:
    """Render a matplotlib figure to PNG bytes.

    Every text is drawn as given: a ``$`` in a tag, folder or file name is a dollar sign,
    not the start of TeX maths (which fails on unbalanced or odd input).
    """
    return _render(fig, dpi, "png")


def fig_to_jpeg(fig: Any, dpi: int = 110, quality: int = 85) -> bytes:
    """:func:`fig_to_png` as JPEG bytes, for figures of photos (a montage of face crops is
    about five times smaller than as PNG)."""
    return _render(fig, dpi, "jpg", pil_kwargs={"quality": quality})


def _render(fig: Any, dpi: int, fmt: str, **kw: Any) -> bytes:
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        text.set_parse_math(False)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", **kw)
    return buf.getvalue()


def project_2d(
    embeddings: np.ndarray, method: str = "auto", seed: int = 0
) -> tuple[np.ndarray, str]:
    """``(N, D)`` -> ``(N, 2)`` map coordinates and the method actually used.

    ``"auto"``: UMAP when ``umap-learn`` is installed, else t-SNE (perplexity
    ``min(30, (N - 1) / 3)``); fewer than 5 distinct points always use PCA (t-SNE diverges
    on a set of identical faces, e.g. one photo copied many times). Every row is mapped
    (t-SNE's time grows about as ``N log N``: :func:`embedding_map` maps a sample of at
    most :data:`MAP_MAX_POINTS`). The embeddings are first scaled by a power of two
    (exact), so 1e-7 or 1e200 embeddings map as unit ones do; PCA coordinates are given
    back in the embeddings' own units.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    method = check_map_method(method)
    n = len(x)
    if n == 0:
        return np.zeros((0, 2)), "pca"
    x, exp = power_of_two_scale(x)
    if n < 5 or n_distinct(x) < 5:
        method = "pca"
    if method == "umap":
        import umap

        reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed)
        return np.asarray(reducer.fit_transform(x)), "umap"
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, (n - 1) / 3.0))
        tsne = TSNE(
            n_components=2,
            perplexity=perplexity,
            init="pca",
            random_state=seed,
            method="exact" if n <= 300 else "barnes_hut",  # exact is faster on small sets
        )
        return np.asarray(tsne.fit_transform(x)), "tsne"
    xc = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    out = np.ldexp(xc @ vt[:2].T, int(exp[0]))  # in the embeddings' own units (exact)
    if out.shape[1] < 2:
        out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    return out, "pca"


#: What ``method="umap"`` needs (exprsim has no extra for it).
UMAP_INSTALL = "pip install umap-learn"


def check_map_method(method: str) -> str:
    """``method`` checked, with ``"auto"`` resolved to ``"umap"`` or ``"tsne"``: callers
    check it before minutes of embedding, not when the map is drawn.

    Raises:
        ValueError: not one of :data:`MAP_METHODS`.
        ExprsimError: ``"umap"`` without ``umap-learn`` installed.
    """
    if method not in MAP_METHODS:
        raise ValueError(f"method must be one of {MAP_METHODS}, got {method!r}")
    found = importlib.util.find_spec("umap") is not None
    if method == "auto":
        return "umap" if found else "tsne"
    if method == "umap" and not found:
        raise ExprsimError(
            f"the UMAP map needs umap-learn, which is not installed: {UMAP_INSTALL} "
            "(or choose the tsne or pca map)"
        )
    return method


def map_sample(
    n: int, labels: Sequence[Any] | None = None, max_points: int = MAP_MAX_POINTS, seed: int = 0
) -> np.ndarray:
    """Sorted indices of the ``n`` faces a map draws: all of them when ``n <= max_points``,
    else a random sample of ``max_points`` (fixed by ``seed``) holding at least one face of
    every label in ``labels`` (of as many labels as fit when there are more labels than
    ``max_points``); the rest of the sample is drawn uniformly, so the labels keep about
    their proportions."""
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels: {n} needed, got {len(labels)}")
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(n)
    if labels is None:
        return np.sort(order[:max_points])
    names = np.asarray([str(v) for v in labels])[order]
    _, first = np.unique(names, return_index=True)  # a random face of every label
    must = order[np.sort(first)][:max_points]
    rest = order[~np.isin(order, must)][: max_points - len(must)]
    return np.sort(np.concatenate([must, rest]))


def map_size(n: int, method: str = "auto", max_points: int = MAP_MAX_POINTS) -> int:
    """How many of ``n`` faces :func:`embedding_map` draws: all of them for PCA or up to
    ``max_points``, else a sample of ``max_points``."""
    return n if check_map_method(method) == "pca" else min(n, max_points)


def label_styles(n: int) -> list[tuple[Any, str]]:
    """``n`` distinct ``(colour, marker)`` pairs: matplotlib's 10 colours up to 10 labels,
    then its 20 paired colours; the marker changes from one label to the next too (eight
    of them), so labels never differ by colour alone (40 sub-expressions stay apart)."""
    from matplotlib import colormaps

    markers = ("o", "s", "^", "D", "v", "P", "X", "*")
    cmap, k = (colormaps["tab10"], 10) if n <= 10 else (colormaps["tab20"], 20)
    return [(cmap(i % k), markers[i % len(markers)]) for i in range(n)]


def embedding_map(
    embeddings: np.ndarray,
    thumbnails: Sequence[np.ndarray | None] | None = None,
    labels: Sequence[Any] | None = None,
    method: str = "auto",
    seed: int = 0,
    max_thumbnails: int = 300,
    thumb_px: int = 28,
    title: str | None = None,
    max_points: int = MAP_MAX_POINTS,
    projection: tuple[np.ndarray, str] | None = None,
) -> bytes:
    """2-D map of faces with thumbnails (or coloured points).

    Args:
        embeddings: ``(N, D)`` float.
        thumbnails: ``N`` uint8 crops ``(S, S[, 3])`` drawn at their positions (at most
            ``max_thumbnails``, evenly spread; the rest are points).
        labels: ``N`` labels colouring the points (legend shown).
        method: ``"auto"``, ``"umap"``, ``"tsne"`` or ``"pca"``.
        thumb_px: thumbnail side on the figure, in pixels at 110 dpi.
        max_points: most faces t-SNE or UMAP map (:data:`MAP_MAX_POINTS`); above it a
            sample of this many (:func:`map_sample`, fixed by ``seed``, every label kept)
            is drawn and the title ends with "a sample of N of M faces".
        projection: :func:`project_2d`'s answer for ``embeddings`` (``method`` and
            ``seed`` alike), computed before: the same faces redrawn with other labels
            are not projected again. Only without a sample (``map_size`` of all of them).

    Returns:
        PNG bytes.

    Raises:
        ValueError: a ``projection`` with another number of points, or with a sample.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    n = len(x)
    pick = None
    if map_size(n, method, max_points) < n:
        if projection is not None:
            raise ValueError("projection: not with a sample of the faces")
        pick = map_sample(n, labels, max_points, seed)
        x = x[pick]
        thumbnails = None if thumbnails is None else [thumbnails[i] for i in pick]
        labels = None if labels is None else [labels[i] for i in pick]
    if projection is not None and len(projection[0]) != n:
        raise ValueError(f"projection: {n} points needed, got {len(projection[0])}")
    xy, used = projection if projection is not None else project_2d(x, method, seed)
    title = title or f"Faces by expression ({used.upper()} of the embeddings)"
    if pick is not None:
        title += f"\na sample of {len(pick)} of {n} faces"
    return _draw_map(xy, thumbnails, labels, max_thumbnails, thumb_px, title)


def _draw_map(
    xy: np.ndarray,
    thumbnails: Sequence[np.ndarray | None] | None,
    labels: Sequence[Any] | None,
    max_thumbnails: int,
    thumb_px: int,
    title: str,
) -> bytes:
    """The map's figure (:func:`embedding_map`) for coordinates ``xy`` ``(N, 2)``."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    fig = _figure(8, 7)
    ax = fig.add_subplot(111)
    colour_of: dict[str, Any] = {}
    labels_arr = None
    if labels is not None:
        labels_arr = np.asarray([str(v) for v in labels])
        names = sorted(set(labels_arr.tolist()))
        styles = label_styles(len(names))
        for name, (colour, marker) in zip(names, styles, strict=True):
            m = labels_arr == name
            pts = ax.scatter(
                xy[m, 0], xy[m, 1], s=10, label=name, alpha=0.8, color=colour, marker=marker
            )
            colour_of[name] = pts.get_facecolor()[0]
        if len(names) > 10:  # a long legend goes beside the map, not over its points
            ax.legend(fontsize=6, markerscale=1.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        else:
            ax.legend(fontsize=7, markerscale=1.5, loc="best")
    else:
        ax.scatter(xy[:, 0], xy[:, 1], s=6, c="#999")
    if thumbnails is not None and len(xy):
        n = len(xy)
        chosen = np.unique(np.linspace(0, n - 1, min(n, max_thumbnails)).round().astype(int))
        for i in chosen:
            im = thumbnails[i]
            if im is None:
                continue
            im = np.asarray(im)
            zoom = thumb_px / max(im.shape[0], 1)
            colour = colour_of.get(str(labels_arr[i])) if labels_arr is not None else None
            box = AnnotationBbox(
                OffsetImage(im, zoom=zoom, cmap="gray" if im.ndim == 2 else None),
                (xy[i, 0], xy[i, 1]),
                frameon=colour is not None,  # a frame in the label's colour
                pad=0.15,
                bboxprops={"edgecolor": colour, "linewidth": 2} if colour is not None else None,
            )
            ax.add_artist(box)
            if labels_arr is not None:  # the label in words, not only the frame's colour
                ax.annotate(
                    str(labels_arr[i])[:12],
                    (xy[i, 0], xy[i, 1]),
                    xytext=(thumb_px * 0.45, thumb_px * 0.45),
                    textcoords="offset points",
                    fontsize=6,
                    bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
                )
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(xy):
        pad = 0.06 * (np.ptp(xy, axis=0) + 1e-9)
        ax.set_xlim(xy[:, 0].min() - pad[0], xy[:, 0].max() + pad[0])
        ax.set_ylim(xy[:, 1].min() - pad[1], xy[:, 1].max() + pad[1])
    return fig_to_png(fig)


def similarity_heatmap(
    embeddings: np.ndarray,
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> bytes:
    """All-pairs Euclidean distance matrix of ``(N, D)`` embeddings as a heat map (PNG).

    Args:
        labels: tick labels (shown when ``N <= 40``).
    """
    from exprsim.distances import pairwise_l2

    x = np.asarray(embeddings, dtype=np.float64)
    d = pairwise_l2(x, eps=0.0) if len(x) else np.zeros((0, 0))
    n = len(x)
    side = float(min(10.0, 3.0 + 0.18 * n))
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot(111)
    im = ax.imshow(d, cmap="viridis_r", vmin=0.0, vmax=max(float(d.max()) if n else 1.0, 1e-6))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="Euclidean distance")
    if labels is not None and n <= 40:
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels([str(v) for v in labels], rotation=90, fontsize=7)
        ax.set_yticklabels([str(v) for v in labels], fontsize=7)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title(title or "Expression distance between faces", fontsize=10)
    return fig_to_png(fig)


def cluster_montage(
    groups: Sequence[Sequence[np.ndarray]],
    titles: Sequence[str] | None = None,
    per_row: int = 10,
) -> bytes:
    """One row per group of crops (first ``per_row`` of each), titled on the left (JPEG:
    photos; as PNG, a video report's montage of 24 people took 1.4 MB)."""
    n_rows = max(len(groups), 1)
    fig = _figure(1.0 * per_row + 1.5, 1.05 * n_rows + 0.2)
    for r, group in enumerate(groups):
        for c in range(per_row):
            ax = fig.add_subplot(n_rows, per_row, r * per_row + c + 1)
            ax.set_axis_off()
            if c < len(group) and group[c] is not None:
                im = np.asarray(group[c])
                ax.imshow(im, cmap="gray" if im.ndim == 2 else None)
            if c == 0 and titles is not None and r < len(titles):
                ax.text(
                    -0.1,
                    0.5,
                    titles[r],
                    transform=ax.transAxes,
                    ha="right",
                    va="center",
                    fontsize=8,
                )
    fig.subplots_adjust(wspace=0.05, hspace=0.1)
    return fig_to_jpeg(fig)


def pr_curve(
    precision: np.ndarray,
    recall: np.ndarray,
    thresholds: np.ndarray | None = None,
    mark: float | None = 0.5,
    title: str | None = None,
) -> bytes:
    """Precision and recall (PNG).

    With ``thresholds``: both against the distance threshold, with a line at ``mark``;
    without: precision against recall.
    """
    precision, recall = np.asarray(precision), np.asarray(recall)
    fig = _figure(6.5, 4.2)
    ax = fig.add_subplot(111)
    if thresholds is not None:
        t = np.asarray(thresholds)
        ax.plot(t, precision, label="precision", marker="o", markevery=0.1, markersize=4)
        ax.plot(t, recall, label="recall", linestyle=":", marker="s", markevery=0.1, markersize=4)
        denom = precision + recall
        f1 = np.divide(
            2 * precision * recall, denom, out=np.zeros_like(denom, dtype=float), where=denom > 0
        )
        ax.plot(t, f1, label="F1", linestyle="--")
        ax.set_xlabel("distance threshold")
        if mark is not None:
            ax.axvline(mark, color="#c33", linewidth=1, linestyle="-.", label=f"threshold {mark:g}")
        ax.legend(fontsize=8)
    else:
        ax.plot(recall, precision)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title or "Precision / recall", fontsize=10)
    return fig_to_png(fig)


def line_plot(
    x: Sequence[float],
    ys: Mapping[str, Sequence[float]],
    xlabel: str = "",
    ylabel: str = "",
    title: str | None = None,
    logx: bool = False,
) -> bytes:
    """Named curves over one x axis (PNG)."""
    fig = _figure(6.5, 4.0)
    ax = fig.add_subplot(111)
    for name, y in ys.items():
        ax.plot(list(x), list(y), marker="o", markersize=3, label=name)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(ys) > 1:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig_to_png(fig)
