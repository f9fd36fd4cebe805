"""``make demo``: the main job on the bundled sample photos, written to one folder.

Steps: detect, align and score every face (aligned crops + a page of annotated photos);
embed them with the shipped default model (similarity matrix, odd one out of triplets).
index the photos in a SQLite face database, search it by expression and summarise the
album by clustering. Everything goes into ``out/index.html`` (self-contained) plus
``faces.csv``, ``crops/``, ``embeddings.npy`` and ``faces.db``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.errors import ModelError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoResult:
    out_dir: Path
    n_images: int
    n_faces: int
    html: Path


def run_demo(out_dir: str | Path = "demo-output", progress: bool = True) -> DemoResult:
    """Run the demo on the bundled photos; returns what was written."""
    import cv2
    import pandas as pd
    from tqdm import tqdm

    from exprsim.faces.pipeline import analyze_image
    from exprsim.io import load_image
    from exprsim.report.draw import draw_faces
    from exprsim.report.html import Page
    from exprsim.samples import sample_images

    out = Path(out_dir)
    (out / "crops").mkdir(parents=True, exist_ok=True)
    page = Page("exprsim demo", "bundled sample photos (see exprsim/samples/LICENSES.md)")
    page.heading("1. Faces: detection, 5 landmarks, alignment, quality")
    rows, crops, names = [], [], []
    annotated = []
    for path in tqdm(sample_images(), desc="faces", unit="img", disable=not progress):
        image = load_image(path)
        faces = analyze_image(image)
        for j, af in enumerate(faces):
            name = f"{path.stem}_{j}"
            cv2.imwrite(
                str(out / "crops" / f"{name}.png"), cv2.cvtColor(af.crop, cv2.COLOR_RGB2BGR)
            )
            q = af.quality
            rows.append(
                {
                    "image": path.name,
                    "face": j,
                    **af.face.to_dict(),
                    "sharpness": round(q.sharpness, 2),
                    "yaw": round(q.yaw, 1),
                    "pitch": round(q.pitch, 1),
                    "roll": round(q.roll, 1),
                    "ok": q.ok,
                }
            )
            crops.append(af.crop)
            names.append(name)
        drawn = draw_faces(image, [af.face for af in faces])
        scale = 480 / max(drawn.shape[:2])
        annotated.append(cv2.resize(drawn, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    table = pd.DataFrame(rows)
    table.to_csv(out / "faces.csv", index=False)
    for im in annotated:
        page.image(im, width=360)
    page.gallery(crops, names, size=112)
    page.table(table.drop(columns=["landmarks"]), max_rows=None)
    page.heading("2. Expression embedding (shipped default model)")
    try:
        from exprsim.models.embedder import load_model
        from exprsim.report.plots import similarity_heatmap

        embedder = load_model("default")
    except ModelError as exc:
        page.paragraph(f"skipped: {exc}", note=True)
    else:
        emb = embedder.embed_crops(np.stack(crops)) if crops else np.zeros((0, 16), np.float32)
        np.save(out / "embeddings.npy", emb)
        page.paragraph(
            f"{len(emb)} faces embedded by {embedder.config.name_version}: 16-d, L2-normalised; "
            "Euclidean distance 0 = identical expression, 2 = opposite."
        )
        page.image(similarity_heatmap(emb, names), caption="pairwise expression distances")
        page.heading("Odd one out", level=3)
        for a, b, c in _demo_triplets(len(emb)):
            d = np.linalg.norm(emb[[b, a, a]] - emb[[c, c, b]], axis=1)  # pair opposite 0,1,2
            odd = int(np.argmin(d))
            trio = (a, b, c)
            caps = [f"{names[t]}{' (odd one out)' if k == odd else ''}" for k, t in enumerate(trio)]
            page.gallery([crops[t] for t in trio], caps, size=112)
        _apps_sections(page, out, embedder, emb, crops, names)
        from exprsim.errors import ExprsimError
        from exprsim.video.report import demo_section

        try:  # section 5: the bundled clip -> out/video/report.html
            demo_section(page, out, embedder, progress=progress)
        except ExprsimError as exc:
            page.paragraph(f"video section skipped: {exc}", note=True)
    html_path = page.save(out / "index.html")
    return DemoResult(out, len(annotated), len(rows), html_path)


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
