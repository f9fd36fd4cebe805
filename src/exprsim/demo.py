"""``make demo``: the main job on the bundled sample photos, written to one folder.

Steps: detect, align and score every face (aligned crops + a page of annotated photos);
embed them with the shipped default model (similarity matrix, odd one out of triplets);
index the photos in a SQLite face database, search it by expression and summarise the
album by clustering; analyse the bundled video clip. Everything goes into
``out/index.html`` (self-contained) plus ``faces.csv``, ``crops/``, ``embeddings.npy``,
``faces.db`` and ``video/``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.errors import ModelError
from exprsim.progress import progress_bar
from exprsim.wording import count

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoResult:
    out_dir: Path
    n_images: int
    n_faces: int
    html: Path


def run_demo(out_dir: str | Path = "demo-output", progress: bool = True) -> DemoResult:
    """Run the demo on the bundled photos; returns what was written.

    Raises:
        ExprsimError: ``out_dir`` holds a ``faces.db`` that is not the demo's own (an index
            of other photos, or not an index): the demo would replace it.
    """
    from exprsim.errors import ExprsimError, printable
    from exprsim.io import folder_lock

    out = Path(out_dir)
    check_demo_folder(out)
    out.mkdir(parents=True, exist_ok=True)

    def busy(holder: str) -> ExprsimError:  # two demos into one folder deleted each
        return ExprsimError(  # other's index
            f"{printable(str(out))}: another `exprsim demo`{holder} is writing this folder "
            "now; wait for it to end, or give another --out"
        )

    with folder_lock(out, busy, "demo folder"):
        return _run_demo(out, progress)


def _run_demo(out: Path, progress: bool) -> DemoResult:
    """:func:`run_demo` once its folder is this process's."""
    from exprsim.report.html import Page

    (out / DEMO_MARK).write_text("written by `exprsim demo`: a rerun may replace this folder\n")
    page = Page("exprsim demo", "bundled sample photos (see exprsim/samples/LICENSES.md)")
    n_images, table, crops, names = _faces_section(page, out, progress)
    page.heading("2. Expression embedding (shipped default model)")
    try:
        from exprsim.models.embedder import load_model

        embedder = load_model("default")
    except ModelError as exc:
        log.warning("the embedding sections are skipped: %s", exc)  # said, not only on the page
        page.paragraph(f"skipped: {exc}", note=True)
    else:
        emb = _embedding_section(page, out, embedder, crops, names)
        _apps_sections(page, out, embedder, emb, crops, names)
        from exprsim.errors import ExprsimError

        try:  # section 5: the bundled clip -> out/video/report.html
            video_section(page, out, embedder, progress=progress)
        except ExprsimError as exc:
            log.warning("the video section is skipped: %s", exc)  # a bare install: no PyAV
            page.paragraph(f"video section skipped: {exc}", note=True)
    html_path = page.save(out / "index.html")
    return DemoResult(out, n_images, len(table), html_path)


#: the file a demo writes first into its folder: the folder is a demo's, a rerun may replace it
DEMO_MARK = ".exprsim-demo"
#: what the demo writes into its folder
DEMO_FILES = ("index.html", "faces.csv", "embeddings.npy", "faces.db", "crops", "video")


def check_demo_folder(out: Path) -> None:
    """Refuse to write the demo into ``out`` when it holds files the demo would replace
    that no demo wrote: ``exprsim demo --out .`` replaced a user's ``index.html`` and
    ``faces.csv`` without a word. A folder with :data:`DEMO_MARK`, or an earlier demo's
    index (:func:`check_demo_index`), is a demo's.

    Raises:
        ExprsimError: one line naming what is there (nothing was done).
    """
    from exprsim.errors import ExprsimError, printable

    is_demo_index = check_demo_index(out / "faces.db")
    if is_demo_index or (out / DEMO_MARK).exists():
        return
    found = [name for name in DEMO_FILES if (out / name).exists()]
    if found:
        raise ExprsimError(
            f"{printable(str(out))} holds {', '.join(found)}, which the demo writes, and no "
            f"demo wrote them (no {DEMO_MARK} there): use another --out (nothing was done)"
        )


def check_demo_index(db: Path) -> bool:
    """Refuse to replace ``db`` unless it is missing, holds nothing (no table), or is a
    demo's index (every file in it a bundled sample photo): ``exprsim demo --out .`` in a
    working folder deleted the user's ``faces.db``, tags and all. Returns whether it is a
    demo's index of at least one photo."""
    import sqlite3
    from urllib.parse import quote

    from exprsim.errors import ExprsimError
    from exprsim.samples import sample_images

    if not db.exists():
        return False
    samples = {p.resolve().parent for p in sample_images()}
    try:
        conn = sqlite3.connect(f"file:{quote(str(db.resolve()))}?mode=ro", uri=True)
        try:
            if not conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                return False  # holds nothing (a demo cut short by a full disk leaves it so)
            paths = [str(r[0]) for r in conn.execute("SELECT path FROM files")]
        finally:
            conn.close()
    except sqlite3.Error as exc:  # another program's database, or a damaged one
        raise ExprsimError(
            f"{db} is not an exprsim index ({exc}); the demo would replace it: use another --out"
        ) from exc
    other = [p for p in paths if Path(p).parent not in samples]
    if other:
        raise ExprsimError(
            f"{db} holds an index of other photos ({len(other)} files, e.g. {other[0]}); "
            "the demo would replace it: use another --out"
        )
    return bool(paths)


def _faces_section(
    page: Any, out: Path, progress: bool
) -> tuple[int, Any, list[np.ndarray], list[str]]:
    """Section 1: every bundled photo's faces -> ``faces.csv``, ``crops/``, the page.

    Returns:
        ``(images, table, crops, names)``: the per-face table (:func:`face_row` columns),
        the aligned crops and their ``<stem>_<face>`` names.
    """
    import cv2
    import pandas as pd

    from exprsim.faces.pipeline import analyze_image, face_row
    from exprsim.io import load_image, save_table
    from exprsim.report.draw import draw_faces
    from exprsim.samples import sample_images

    (out / "crops").mkdir(parents=True, exist_ok=True)
    page.heading("1. Faces: detection, 5 landmarks, alignment, quality")
    rows, crops, names, annotated, photo_names = [], [], [], [], []
    for path in progress_bar(sample_images(), enabled=progress, desc="faces", unit="img"):
        image = load_image(path)
        faces = analyze_image(image)
        for j, af in enumerate(faces):
            name = f"{path.stem}_{j}"
            crop_path = out / "crops" / f"{name}.png"
            if not cv2.imwrite(str(crop_path), cv2.cvtColor(af.crop, cv2.COLOR_RGB2BGR)):
                # OpenCV says False instead of raising (a read-only folder, a full disk)
                raise OSError(f"cannot write {crop_path}")
            rows.append(face_row(path.name, j, af))
            crops.append(af.crop)
            names.append(name)
        drawn = draw_faces(image, [af.face for af in faces])
        scale = 480 / max(drawn.shape[:2])
        annotated.append(cv2.resize(drawn, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
        photo_names.append(path.name)
    table = pd.DataFrame(rows)
    save_table(table, out / "faces.csv")
    for im, photo in zip(annotated, photo_names, strict=True):
        page.image(
            im, width=360, alt=f"{photo} with a box and landmarks on each face found (table below)"
        )
    page.gallery(crops, names, size=112)
    landmarks = [c for c in table.columns if c.endswith(("_x", "_y"))]
    page.table(table.drop(columns=landmarks), max_rows=None)
    return len(annotated), table, crops, names


def _embedding_section(
    page: Any, out: Path, embedder: Any, crops: list[np.ndarray], names: list[str]
) -> np.ndarray:
    """Section 2: the crops' embeddings -> ``embeddings.npy``, distance matrix, odd one out.

    Returns:
        ``(N, 16)`` float32 embeddings of ``crops``.
    """
    from exprsim.apps.compare import odd_one_out
    from exprsim.models.embedder import embed_aligned
    from exprsim.report.html import MAX_DISTANCE_TABLE, distance_rows
    from exprsim.report.plots import similarity_heatmap

    emb = embed_aligned(embedder, np.stack(crops)) if crops else np.zeros((0, 16), np.float32)
    np.save(out / "embeddings.npy", emb)
    page.paragraph(
        f"{len(emb)} faces embedded by {embedder.config.name_version}: 16-d, L2-normalised; "
        "Euclidean distance 0 = identical expression, 2 = opposite."
    )
    page.image(
        similarity_heatmap(emb, names),
        caption="pairwise expression distances",
        alt="heat map of the expression distances between the faces"
        + ("; the numbers are in the table below" if len(emb) <= MAX_DISTANCE_TABLE else ""),
    )
    if 2 <= len(emb) <= MAX_DISTANCE_TABLE:
        page.table(distance_rows(emb, names), max_rows=None)
    page.heading("Odd one out", level=3)
    for trio in _demo_triplets(len(emb)):
        odd = odd_one_out(emb[list(trio)])
        caps = [f"{names[t]}{' (odd one out)' if k == odd else ''}" for k, t in enumerate(trio)]
        page.gallery([crops[t] for t in trio], caps, size=112)
    return emb


def _apps_sections(
    page: object,
    out: Path,
    embedder: object,
    emb: np.ndarray,
    crops: list[np.ndarray],
    names: list[str],
) -> None:
    """Sections 3-4: face index + expression search, album summary."""
    from exprsim.apps.search import search
    from exprsim.apps.summarize import summarize
    from exprsim.index.store import FaceIndex
    from exprsim.samples import sample_images

    pg: Any = page
    pg.heading("3. Face index and expression search")
    db = out / "faces.db"
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)
    with FaceIndex(db, embedder=embedder) as index:
        report = index.add(sample_images())
        pg.paragraph(f"{db.name}: {report.summary()}")
        query = sample_images()[0]
        result = search(query, index, k=5)
        hits = result.hits
        pics = [index.crop(h.face_id) for h in hits]
        shown = [(p, h) for p, h in zip(pics, hits, strict=True) if p is not None]
        qcrop = result.query_crop if result.query_crop is not None else crops[0]
        pg.gallery(
            [qcrop] + [p for p, _ in shown],
            [f"query: {query.name}"]
            + [f"#{h.rank} {Path(h.source).name} d={h.distance:.2f}" for _, h in shown],
            size=112,
        )
    if len(emb) >= 2:
        pg.heading("4. Album summary (agglomerative, complete linkage, cosine)")
        summary = summarize(emb, n_clusters=min(4, len(emb)))
        for c in summary.clusters:
            pg.gallery(
                [crops[m] for m in c.members],
                [
                    f"{names[m]}{' (representative)' if r == 0 else ''}"
                    for r, m in enumerate(c.members)
                ],
                size=96,
            )


def _demo_triplets(n: int) -> list[tuple[int, int, int]]:
    """A few fixed triplets over ``n`` faces (consecutive faces, then spread out)."""
    if n < 3:
        return []
    trips = [(0, 1, 2), (n - 3, n - 2, n - 1), (0, n // 2, n - 1)]
    return [t for t in dict.fromkeys(trips) if len(set(t)) == 3]


def video_section(page: Any, out_dir: str | Path, embedder: Any, progress: bool = False) -> Any:
    """Section 5: analyse the bundled clip into ``out_dir/video`` and add a short section
    (link, persons, representative faces) to ``page``.

    Returns:
        The :class:`~exprsim.video.pipeline.VideoAnalysis`.
    """
    from exprsim.samples import sample_dir
    from exprsim.video.pipeline import analyze_video

    out = Path(out_dir) / "video"
    clip = sample_dir() / "langer_clip.mp4"
    analysis = analyze_video(clip, embedder=embedder, progress=progress, keep_on_interrupt=True)
    paths = analysis.save(out)
    page.heading("5. Video: persons, expressions over time, expression summary")
    page.paragraph(
        f"{clip.name} ({analysis.info.duration:.1f} s, {analysis.n_sampled} frames sampled at "
        f"{analysis.config.fps:g} fps): {len(analysis.faces)} faces, "
        f"{count(analysis.n_persons, 'person')}, identities by {analysis.identity_method}. "
        f"Full report: video/{paths['html'].name}; tables: video/faces.parquet, "
        "video/faces.csv, video/persons.csv."
    )
    page.table(analysis.persons_frame())
    for ps in analysis.summaries:
        page.gallery(
            [analysis.faces[i].thumb for i in ps.representatives],
            [f"person {ps.person} #{k + 1}" for k in range(len(ps.representatives))],
            size=80,
        )
    return analysis
