"""Self-contained HTML reports: one file per command, images inlined as data URIs.

A tiny page builder, shared by every command and the demo::

    page = Page("Expression search")
    page.heading("Query")
    page.gallery([crop], captions=["query"])
    page.image(png_bytes, caption="t-SNE map")
    page.table(result.to_frame())
    page.save("search.html")

Every piece of text is escaped with :func:`html.escape`; images are PNG (or JPEG) bytes or
uint8 arrays, embedded as ``data:`` URIs, so a page has no external reference at all (no
``http``, no stylesheet or script link) and can be mailed or archived as one file.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#222;background:#fff}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.6em}
h3{font-size:1.05em}.meta{color:#666;font-size:.85em}
h1,h2,h3,h4,p,figcaption{overflow-wrap:anywhere}
.tablewrap{max-width:100%;overflow-x:auto;margin:.8em 0}
table{border-collapse:collapse;margin:0;font-size:.85em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td.s{text-align:left}
figure{margin:1em 0}figcaption{color:#555;font-size:.85em}
.gallery{display:flex;flex-wrap:wrap;gap:8px;margin:.6em 0}
.gallery figure{margin:0;text-align:center;font-size:.75em;color:#444}
.gallery img{display:block;border-radius:3px;image-rendering:auto}
.note{background:#f7f7f0;border-left:3px solid #cc9;padding:.4em .8em}
"""


def _png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    from exprsim.io import as_rgb8

    buf = io.BytesIO()
    Image.fromarray(as_rgb8(np.asarray(array))).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


#: most thumbnails one gallery shows (as tables stop at 500 rows)
MAX_GALLERY = 500


def _thumbnail(array: np.ndarray, side: int) -> bytes:
    """A gallery image as JPEG (quality 85), its longer side at most ``side`` pixels."""
    from PIL import Image

    from exprsim.io import as_rgb8

    img = Image.fromarray(as_rgb8(np.asarray(array)))
    if max(img.size) > side:
        img.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def data_uri(image: bytes | np.ndarray) -> str:
    """PNG/JPEG bytes or a uint8 image array -> ``data:image/...;base64,...``."""
    data = _png_bytes(image) if isinstance(image, np.ndarray) else bytes(image)
    mime = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _cell(value: Any) -> tuple[str, bool]:
    """Formatted cell text and whether it is numeric (right-aligned)."""
    if isinstance(value, bool | np.bool_):
        return ("yes" if value else "no"), False
    if isinstance(value, int | np.integer):
        return str(int(value)), True
    if isinstance(value, float | np.floating):
        v = float(value)
        if np.isnan(v):
            return "", True
        v += 0.0  # -0.0 (a rounded tiny negative) is shown as 0, not "-0"
        # 4 significant digits, but never fewer than the whole part and one decimal from
        # 1,000 on (a video time of 1234.2 s read "1234", 10,800 s "1.08e+04")
        return (f"{v:.4g}" if abs(v) < 1000 or not np.isfinite(v) else f"{v:.1f}"), True
    if value is None or type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing
        return "", False
    return str(value), False


#: most faces whose pairwise distances a page also gives as a table of numbers (a heat
#: map's colours alone say nothing to a screen reader or to some colour vision)
MAX_DISTANCE_TABLE = 20


def distance_rows(embeddings: np.ndarray, names: Sequence[str]) -> list[dict[str, Any]]:
    """The Euclidean distances between ``(N, D)`` embeddings as table rows: one per face,
    its name under ``""`` then its distance to each face by name (2 decimals)."""
    from exprsim.distances import pairwise_l2

    x = np.asarray(embeddings, dtype=np.float64)
    if len(names) != len(x) or len(set(map(str, names))) != len(names):
        raise ValueError(f"distance_rows: {len(x)} embeddings need as many distinct names")
    d = pairwise_l2(x, eps=0.0) if len(x) else np.zeros((0, 0))
    return [
        {"": str(a), **{str(b): round(float(v), 2) for b, v in zip(names, row, strict=True)}}
        for a, row in zip(names, d, strict=True)
    ]


def generated_stamp(now: _dt.datetime | None = None) -> str:
    """When a page was made, in the local time with its offset from UTC: ``2026-12-06
    10:22 (UTC+05:30)`` (was the local time alone: a page read elsewhere, or made by a
    server in another zone, did not say which)."""
    t = (now or _dt.datetime.now(_dt.UTC)).astimezone()
    off = t.strftime("%z") or "+0000"
    return f"{t:%Y-%m-%d %H:%M} (UTC{off[:3]}:{off[3:]})"


class Page:
    """A self-contained HTML page built piece by piece.

    Args:
        title: page title (also the first heading).
        subtitle: optional line under the title (e.g. the command that made the page).
    """

    def __init__(self, title: str, subtitle: str | None = None) -> None:
        self.title = title
        self._section = title  # the latest heading: names the tables under it
        self._parts: list[str] = [f"<h1>{html.escape(title)}</h1>"]
        stamp = generated_stamp()
        meta = f"{html.escape(subtitle)} · " if subtitle else ""
        self._parts.append(f'<p class="meta">{meta}generated by exprsim, {stamp}</p>')

    def heading(self, text: str, level: int = 2) -> Page:
        """Add a heading (``level`` 2-4)."""
        level = min(max(int(level), 2), 4)
        self._section = text
        self._parts.append(f"<h{level}>{html.escape(text)}</h{level}>")
        return self

    def paragraph(self, text: str, note: bool = False) -> Page:
        """Add a paragraph of plain text (``note``: highlighted box)."""
        cls = ' class="note"' if note else ""
        self._parts.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def image(
        self,
        image: bytes | np.ndarray,
        caption: str | None = None,
        alt: str = "",
        width: int | None = None,
    ) -> Page:
        """Add a figure from PNG/JPEG bytes or an ``(H, W[, 3])`` uint8 array.

        ``alt`` is what a screen reader says instead of the image (default: the caption):
        say what the image shows, or where its content is given as text; never narrower
        than the page (``width`` is the widest it is shown)."""
        fit = ' style="max-width:100%;height:auto"'
        w = f' width="{int(width)}"{fit}' if width else fit
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._parts.append(
            f'<figure><img src="{data_uri(image)}" alt="{html.escape(alt or caption or "")}"{w}>'
            f"{cap}</figure>"
        )
        return self

    def table(
        self,
        rows: Any,
        columns: Sequence[str] | None = None,
        max_rows: int | None = 500,
    ) -> Page:
        """Add a table from a DataFrame, a list of dicts or a list of sequences.

        Args:
            rows: the data.
            columns: column order / header (default: the DataFrame's or dicts' keys).
            max_rows: rows shown (the rest is summarised in one line); ``None``: all.
        """
        if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
            columns = list(columns or [str(c) for c in rows.columns])
            records: list[Sequence[Any]] = [
                [r.get(c) for c in columns] for r in rows.to_dict(orient="records")
            ]
        else:
            rows = list(rows)
            if rows and isinstance(rows[0], Mapping):
                columns = list(columns or dict.fromkeys(k for r in rows for k in r))
                records = [[r.get(c) for c in columns] for r in rows]
            else:
                records = [list(r) for r in rows]
        # wide tables scroll inside the page: the keyboard reaches the scroller, named
        label = html.escape(f"table: {self._section}", quote=True)
        out = [f'<div class="tablewrap" tabindex="0" role="region" aria-label="{label}"><table>']
        if columns:
            out.append(
                "<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in columns) + "</tr>"
            )
        shown = records if max_rows is None else records[:max_rows]
        for rec in shown:
            cells = []
            for v in rec:
                text, numeric = _cell(v)
                cls = "" if numeric else ' class="s"'
                cells.append(f"<td{cls}>{html.escape(text)}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</table></div>")
        if len(shown) < len(records):
            out.append(f'<p class="meta">{len(records) - len(shown)} more rows not shown</p>')
        self._parts.append("".join(out))
        return self

    def gallery(
        self,
        images: Iterable[bytes | np.ndarray | None],
        captions: Sequence[str] | None = None,
        size: int = 96,
        limit: int | None = MAX_GALLERY,
        alts: Sequence[str] | None = None,
    ) -> Page:
        """Add a row of thumbnails (``None`` entries show as empty boxes) with captions;
        ``alts``: what a screen reader says for each image (default: its caption), e.g.
        which file's face it is where the caption gives a distance only.

        Arrays are stored as JPEG at twice ``size`` (a 112-pixel face is ~5 KB, not the ~29
        KB of a PNG: a page of 1,000 faces stays a few MB); at most ``limit`` are shown,
        then a line says how many more there are.

        Raises:
            ValueError: more captions than images (nothing is added).
        """
        items = []
        caps = list(captions or [])
        alt_texts = list(alts or [])
        n = 0
        for i, im in enumerate(images):
            n += 1
            if limit is not None and i >= limit:
                continue
            cap = html.escape(caps[i]) if i < len(caps) else ""
            if im is None:
                img = f'<div style="width:{size}px;height:{size}px;background:#eee"></div>'
            else:
                data = _thumbnail(im, 2 * size) if isinstance(im, np.ndarray) else im
                alt = html.escape(alt_texts[i]) if i < len(alt_texts) else cap
                img = f'<img src="{data_uri(data)}" width="{size}" height="{size}" alt="{alt}">'
            items.append(f"<figure>{img}<figcaption>{cap}</figcaption></figure>")
        if len(caps) > n:  # a caller's captions out of step with its images
            raise ValueError(f"gallery: {len(caps)} captions for {n} images")
        self._parts.append(f'<div class="gallery">{"".join(items)}</div>')
        if limit is not None and n > limit:
            self._parts.append(f'<p class="meta">{n - limit} more faces not shown</p>')
        return self

    def render(self) -> str:
        """The whole page as one HTML string."""
        body = "\n".join(self._parts)
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>"
            f"<body><main>\n{body}\n</main></body></html>\n"
        )

    def save(self, path: str | Path) -> Path:
        """Write the page (UTF-8), whole or not at all: a failure while writing leaves the
        previous file as it was (:func:`exprsim.io.write_atomically`). Missing parent
        folders are created; text UTF-8 cannot hold (a file name's undecodable bytes) is
        written as ``\\udce9`` escapes. Returns the path."""
        from exprsim.io import write_atomically

        path = Path(path)
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        data = self.encoded()
        write_atomically(path, lambda fh: fh.write(data))
        return path

    def encoded(self) -> bytes:
        """The page's bytes as :meth:`save` writes them (UTF-8; text it cannot hold as
        ``\\udce9`` escapes)."""
        return self.render().encode("utf-8", "backslashreplace")
