"""Video analysis (FEENet's video pipeline): frames -> faces -> persons -> smoothed
expressions -> per-person statistics and summaries.

:func:`analyze_video` does it all and returns a :class:`VideoAnalysis`:

1. frames sampled by :class:`exprsim.video.frames.FrameReader` (5 fps by default);
2. every face detected (detector registry; the full detector on every
   ``redetect_every``-th sampled frame, the others searched near the faces of an earlier
   frame, :class:`exprsim.faces.stream.TrackGuide`), aligned and scored; faces failing the
   quality check (sharpness < 3.0 or ``|yaw|`` > 50 degrees by default) stay in the table
   with their reasons but get no expression embedding;
3. faces grouped into persons (:mod:`exprsim.video.tracks`: IoU tracks + dlib descriptors
   clustered with DBSCAN; tracks only when dlib is absent);
4. accepted faces embedded, then median-pooled per person over 3 sampled faces and
   re-normalised;
5. top-3 emotions from the kNN classifier (when its reference set matches the model),
   reference-face tags (when references are given), per-person statistics and an
   agglomerative (Ward, Euclidean) summary of each person's expressions.

With ``VideoConfig(embedding="pvae")`` the summaries use the perceptual VAE's
identity-neutralised expression codes instead (Mikheeva et al.; :mod:`exprsim.pvae.codes`):
every accepted face also gets a MediaPipe face mesh, each person's neutral face is estimated
(``neutral="auto"``: the median mesh features of the person's faces the kNN classifier rates
most neutral, at least :data:`NEUTRAL_MIN_PROB`; otherwise the model's population-mean
fallback), and the codes are median-smoothed per person like the embeddings (not
re-normalised). Emotions and tags still come from the embedding model.

Ctrl-C during decoding stops reading and returns what was analysed so far
(:attr:`VideoAnalysis.interrupted`) with ``keep_on_interrupt=True`` (the CLI, the web app);
by default the partial analysis is raised with it (:class:`VideoInterrupted`, a
``KeyboardInterrupt``), so that a loop over videos stops. A Ctrl-C in a later stage
(embedding the last batch, person grouping, smoothing, emotions, tags, codes, summaries)
skips the stages left and returns what is complete: every face read (with its embedding
when it was computed); when the person grouping did not finish, each face track is a
person of its own; what was not computed is left empty (no emotion columns, NaN
embeddings, no summary); a warning names the interrupted stage.

Time on screen adds up the seconds each of a person's sampled frames stands for
(:func:`sample_seconds`: the time until the next sampled frame, so that a
variable-frame-rate clip is measured by its real timestamps).
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from exprsim.equality import array_equality
from exprsim.errors import ExprsimError, ModelError, printable
from exprsim.faces.detect import DEFAULT_DETECTOR
from exprsim.faces.types import Quality
from exprsim.interrupts import hold_interrupts
from exprsim.video.frames import DEFAULT_FPS, MAX_FRAME_PIXELS, FrameReader, VideoInfo
from exprsim.video.tracks import DEFAULT_EPS, DEFAULT_MIN_SAMPLES
from exprsim.wording import count

if TYPE_CHECKING:  # pragma: no cover
    from exprsim.apps.summarize import Summary

#: Bytes of decoded images that guided frames waiting for a search back (faces that came
#: in unseen, found at the next full detection) may hold: 256 MiB (97 frames of 720p, 43
#: of 1080p, 10 of 4K), whatever ``redetect_every`` is.
BACK_SEARCH_BYTES = 256 << 20
#: Guided frames kept waiting even when their images take more than
#: :data:`BACK_SEARCH_BYTES`: the ``redetect_every - 1`` of the default ``redetect_every``
#: (5), so that the default search is never shortened.
BACK_SEARCH_FRAMES = 4
#: ``cv2.imencode`` parameters of the face thumbnails kept in memory (JPEG quality 90).
THUMB_JPEG = [1, 90]  # cv2.IMWRITE_JPEG_QUALITY, 90

log = logging.getLogger(__name__)

IDENTITY_METHODS = ("auto", "dlib", "iou")
EXPRESSION_SPACES = ("model", "pvae")
NEUTRAL_METHODS = ("auto", "none")
#: Smallest kNN "neutral" probability for a face to serve as its person's neutral reference.
NEUTRAL_MIN_PROB = 0.5
#: Faces (the most neutral ones) whose median mesh features form a person's neutral reference.
NEUTRAL_TOP = 3


@dataclass(frozen=True)
class VideoConfig:
    """How a video is analysed.

    Attributes:
        fps: sampled frames per second of video (ignored when ``every`` is set).
        every: sample every N-th decoded frame instead.
        max_frames: stop after this many sampled frames.
        detector: detector registry name.
        sharpness_threshold, max_abs_yaw: quality thresholds (FEENet: 3.0 and 50 degrees).
        identity: ``"auto"`` (dlib when installed, else IoU tracks), ``"dlib"`` or ``"iou"``.
        eps, min_samples: DBSCAN parameters on dlib descriptors.
        workers: front-end threads detecting and aligning frames ahead of the rest
            (:func:`exprsim.faces.stream.analyze_stream`; 1 = the calling thread only).
        redetect_every: the full detector runs on every this-many-th sampled frame (and on
            the frames after one where it found no face); the others search only around
            the faces of that last full pass (:class:`exprsim.faces.stream.TrackGuide`: the
            same faces whatever ``workers``), falling back to the full detector when a face
            is not where it was. A face
            entering the frame is found by the next full detection, and then searched for
            in the guided frames before it (so a short appearance keeps all its faces);
            that search reaches back over the guided frames kept in memory, at most
            :data:`BACK_SEARCH_BYTES` of images (but 4 frames at least). Someone who is on
            screen only between two full detections (fewer than ``redetect_every`` sampled
            frames) while someone else is tracked is not found at all: the price of the
            guided frames' speed. 1 = the full detector on every frame.
        descriptor_stride, descriptor_max_stride: describe the 1st face of each track,
            then the faces ``stride``, ``2 * stride``, ``4 * stride``, ... further on, the gap
            capped at ``max_stride`` faces (:func:`descriptor_gap`).
        min_iou, max_gap: IoU tracking (link threshold; sampled frames a track may miss).
        smooth_window: median window (sampled faces of one person), odd: centred on
            each face (1: no smoothing; an even window is refused).
        n_summary: clusters in each person's expression summary.
        summary_method: :data:`exprsim.apps.summarize.SUMMARY_METHODS` key (``"ward"``:
            Ward linkage, Euclidean, as in FEENet).
        tag_threshold: reference-face tagging distance threshold (``None``: the model's
            calibrated one).
        thumb_size: side of the face thumbnails kept for the report.
        batch_size: crops per embedding batch.
        embedding: expression space of the summaries: ``"model"`` (the embedding model) or
            ``"pvae"`` (perceptual-VAE codes of face meshes; needs ``pvae_model``).
        pvae_model: perceptual-VAE run folder (``exprsim train --config configs/pvae-m2.json``).
        neutral: ``"auto"`` (estimate each person's neutral face from the kNN emotions) or
            ``"none"`` (always the model's fallback neutral face).
        source_fps: frame rate of a source that declares none (raw ``.h264``/``.h265``
            streams, otherwise read at 25 fps with a warning; folders of frames, default
            25); a file that declares its rate keeps it (:class:`FrameReader`).
        max_pixels: largest frame read, in pixels (default
            :data:`~exprsim.video.frames.MAX_FRAME_PIXELS`, 8K video passes); a video with
            larger frames is refused before they are decoded (:class:`FrameReader`).
    """

    fps: float | None = DEFAULT_FPS
    every: int | None = None
    max_frames: int | None = None
    detector: str = DEFAULT_DETECTOR
    sharpness_threshold: float = 3.0
    max_abs_yaw: float = 50.0
    identity: str = "auto"
    eps: float = DEFAULT_EPS
    min_samples: int = DEFAULT_MIN_SAMPLES
    descriptor_stride: int = 5
    min_iou: float = 0.3
    max_gap: int = 2
    smooth_window: int = 3
    n_summary: int = 10
    summary_method: str = "ward"
    tag_threshold: float | None = None
    thumb_size: int = 64
    descriptor_max_stride: int = 25
    workers: int = 2
    batch_size: int = 64
    embedding: str = "model"
    pvae_model: str | None = None
    neutral: str = "auto"
    redetect_every: int = 5
    source_fps: float | None = None
    max_pixels: int = MAX_FRAME_PIXELS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@array_equality
@dataclass(frozen=True)
class VideoFace:
    """One detected face in one sampled frame.

    Attributes:
        slot: sampled-frame number (0, 1, ...).
        frame: source frame number.
        time: seconds from the start of the video.
        face_index: rank in its frame (largest box first).
        box: ``(4,)`` float32 ``x1, y1, x2, y2`` pixels.
        score: detector confidence.
        quality: sharpness, pose, accept/reject.
        thumb_jpeg: the aligned crop of an accepted face (``thumb_size``), JPEG-encoded
            (about 2 KB instead of 12 KB: memory stays nearly flat over long videos), else
            ``None``; :attr:`thumb` decodes it.
        frame_file: the name of the frame's image file when the video is a folder of
            frames, ``""`` for a video file.
    """

    slot: int
    frame: int
    time: float
    face_index: int
    box: np.ndarray
    score: float
    quality: Quality
    thumb_jpeg: bytes | None = field(default=None, repr=False)  # 2 KB of escaped bytes
    frame_file: str = ""

    @property
    def thumb(self) -> np.ndarray | None:
        """``(S, S, 3)`` uint8 RGB thumbnail of an accepted face, else ``None``."""
        if self.thumb_jpeg is None:
            return None
        import cv2

        bgr = cv2.imdecode(np.frombuffer(self.thumb_jpeg, np.uint8), cv2.IMREAD_COLOR)
        return np.ascontiguousarray(bgr[:, :, ::-1])


@dataclass(frozen=True)
class StageTimes:
    """Wall-clock seconds per stage and how much each stage processed.

    Attributes:
        decode, detect, align, identity, embed, cluster: seconds (``align`` includes the
            quality check; ``identity`` the dlib descriptors; ``cluster`` tracking,
            DBSCAN, smoothing, classification, tagging and summaries).
        mesh: seconds of face meshes and perceptual-VAE codes (``embedding="pvae"``).
        frames: sampled frames; decoded: frames decoded; faces: detected faces;
        accepted: faces embedded; descriptors: dlib descriptors computed.
        total: wall-clock seconds of the whole analysis.
    """

    decode: float = 0.0
    detect: float = 0.0
    align: float = 0.0
    identity: float = 0.0
    embed: float = 0.0
    cluster: float = 0.0
    mesh: float = 0.0
    frames: int = 0
    decoded: int = 0
    faces: int = 0
    accepted: int = 0
    descriptors: int = 0
    total: float = 0.0

    def rows(self) -> list[dict[str, Any]]:
        """One row per stage: ``stage, seconds, items, per_second`` (items/s)."""
        items = {
            "decode": (self.decoded, "decoded frames"),
            "detect": (self.frames, "sampled frames"),
            "align": (self.faces, "faces"),
            "identity": (self.descriptors, "descriptors"),
            "embed": (self.accepted, "faces"),
            "cluster": (self.faces, "faces"),
            **({"mesh": (self.accepted, "faces")} if self.mesh > 0 else {}),
            "total": (self.frames, "sampled frames"),
        }
        out = []
        for stage, (n, unit) in items.items():
            sec = float(getattr(self, stage))
            out.append(
                {
                    "stage": stage,
                    "seconds": round(sec, 3),
                    "items": n,
                    "unit": unit,
                    "per_second": round(n / sec, 1) if sec > 0 else float("nan"),
                    "sampled_frames_per_second": round(self.frames / sec, 1)
                    if sec > 0
                    else float("nan"),
                }
            )
        return out


@dataclass(frozen=True)
class TaggedMoment:
    """A run of consecutive faces of one person carrying the same tag."""

    tag: str
    start: float
    end: float
    n_faces: int


@dataclass(frozen=True)
class PersonStats:
    """Statistics of one person.

    Attributes:
        person: id (0, 1, ... by first appearance).
        frames_present: sampled frames with this person's face (any quality).
        appearance_rate: ``frames_present / frames sampled``.
        time_on_screen: the seconds of video its sampled frames stand for
            (:func:`sample_seconds`; ``frames_present`` x the sample period on a
            constant-frame-rate clip), at most the video's duration.
        first_seen, last_seen: seconds.
        faces_accepted: faces passing the quality check (embedded).
        rejected: reason -> count among this person's faces.
        emotion_shares: class -> share of accepted faces whose top emotion it is.
        tagged_moments: runs of tagged faces.
    """

    person: int
    frames_present: int
    appearance_rate: float
    time_on_screen: float
    first_seen: float
    last_seen: float
    faces_accepted: int
    rejected: dict[str, int]
    emotion_shares: dict[str, float]
    tagged_moments: tuple[TaggedMoment, ...]

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "person": self.person,
            "frames_present": self.frames_present,
            "appearance_rate": round(self.appearance_rate, 4),
            "time_on_screen_s": round(self.time_on_screen, 3),
            "first_seen_s": round(self.first_seen, 3),
            "last_seen_s": round(self.last_seen, 3),
            "faces_accepted": self.faces_accepted,
        }
        row.update({f"rejected_{k}": v for k, v in sorted(self.rejected.items())})
        # exact: shares rounded one by one did not add up to 1 (3/7, 3/7, 1/7: 1.0001)
        row.update({f"share_{k}": float(v) for k, v in self.emotion_shares.items()})
        row["tagged_moments"] = "; ".join(
            f"{m.tag} {m.start:.1f}-{m.end:.1f}s" for m in self.tagged_moments
        )
        return row


@dataclass(frozen=True)
class PersonSummary:
    """Expression summary of one person.

    Attributes:
        person: id.
        faces: indices (into :attr:`VideoAnalysis.faces`) of the summarised faces.
        summary: the clustering; ``summary.clusters[k].members`` index into ``faces``.
    """

    person: int
    faces: tuple[int, ...]
    summary: Summary

    @property
    def representatives(self) -> list[int]:
        """Face index (into :attr:`VideoAnalysis.faces`) of each cluster's representative."""
        return [self.faces[m] for m in self.summary.representatives]


#: the files :meth:`VideoAnalysis.save` writes into its folder, by result key
REPORT_FILES: dict[str, str] = {
    "faces_parquet": "faces.parquet",
    "faces_csv": "faces.csv",
    "persons_csv": "persons.csv",
    "json": "analysis.json",
    "html": "report.html",
}


#: the folder a report is written into before its files move into place (the pid of its
#: writer, then mkdtemp's random part)
PARTIAL_REPORT = r"\.exprsim-partial-(?P<pid>\d+)-\w+"
#: the file a report's temporary folder gets once every file in it is whole and on disk
#: (JSON: the names to move into place, and whether a ``report.html`` belongs to the run)
REPORT_COMPLETE = ".complete"


def finish_killed_saves(out_dir: str | Path) -> int:
    """Finish the saves of reports killed while their files were moved into ``out_dir``.

    :meth:`VideoAnalysis.save` moves its files into place one by one once all of them are
    whole; a process killed among those renames leaves files of two runs side by side. A
    temporary folder in ``out_dir`` of a process that no longer runs, marked
    :data:`REPORT_COMPLETE`, has the files it still holds moved into place, which makes
    the folder that run's report. Other temporary folders (a run killed before its files
    were whole) are left for :func:`~exprsim.io.sweep_temporaries`. Returns how many saves
    were finished.
    """
    from exprsim.io import left_by_killed, sync_folder

    out = Path(out_dir)
    done = 0
    for entry in left_by_killed(out, PARTIAL_REPORT):
        if not entry.is_dir(follow_symlinks=False):
            continue
        tmp = Path(entry.path)
        try:
            mark = json.loads((tmp / REPORT_COMPLETE).read_text())
            names = [str(n) for n in mark["files"] if str(n) in REPORT_FILES.values()]
            html = bool(mark["html"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # killed before its files were whole: the earlier run's stay
        try:
            for name in names:
                if (tmp / name).is_file():  # the ones not moved yet
                    os.replace(tmp / name, out / name)
            if not html:
                (out / REPORT_FILES["html"]).unlink(missing_ok=True)
            sync_folder(out)
            (tmp / REPORT_COMPLETE).unlink()
        except OSError as exc:  # the save that follows says what is wrong with the folder
            log.warning("%s: cannot finish the report of a killed run (%s)", out, exc)
            continue
        done += 1
        log.warning("%s: finished moving the report of a run killed while it saved it", out)
    return done


@array_equality
@dataclass(frozen=True)
class VideoAnalysis:
    """Everything :func:`analyze_video` found.

    Attributes:
        info: the video's properties.
        config: the configuration used.
        n_sampled: sampled frames analysed.
        sample_period: seconds of video per sampled frame.
        faces: every detected face, in time order.
        persons: ``(N,)`` int64 person per face (-1: unassigned).
        tracks: ``(N,)`` int64 IoU track per face.
        embeddings: ``(N, 16)`` float32 raw embeddings (NaN rows for rejected faces).
        smoothed: ``(N, 16)`` float32 median-pooled, re-normalised (NaN for rejected).
        classes: emotion class names (empty when no classifier was available).
        emotions: ``(N, C)`` float32 class probabilities of the smoothed embeddings
            (NaN rows for rejected faces; ``C = 0`` without a classifier).
        tags: per face the tags below the threshold (nearest first).
        person_stats: one entry per person.
        summaries: one entry per person with accepted faces.
        rejected: reason -> count over all faces (``"blur"``, ``"yaw"``, ``"pose"``).
        identity_method: ``"dlib"`` or ``"iou"``.
        model: ``name@version`` of the embedder.
        timings: seconds per stage.
        expression_space: ``"model"`` or ``"pvae"`` (what the summaries cluster).
        codes: ``(N, K)`` float32 median-smoothed perceptual-VAE codes (NaN where the face
            was rejected or its mesh failed), or ``None`` in the ``"model"`` space.
        neutral_faces: person -> face indices whose mesh features formed the person's
            neutral reference (empty tuple: the fallback neutral face was used).
        interrupted: stopped by Ctrl-C (partial result).
        truncated: the stream ended early or with a decoder error (partial result).
        warnings: what went wrong along the way.
    """

    info: VideoInfo
    config: VideoConfig
    n_sampled: int
    sample_period: float
    faces: tuple[VideoFace, ...]
    persons: np.ndarray
    tracks: np.ndarray
    embeddings: np.ndarray
    smoothed: np.ndarray
    classes: tuple[str, ...]
    emotions: np.ndarray
    tags: tuple[tuple[str, ...], ...]
    person_stats: tuple[PersonStats, ...]
    summaries: tuple[PersonSummary, ...]
    rejected: dict[str, int]
    identity_method: str
    model: str
    timings: StageTimes
    interrupted: bool = False
    truncated: bool = False
    warnings: tuple[str, ...] = field(default_factory=tuple)
    expression_space: str = "model"
    codes: np.ndarray | None = None
    neutral_faces: dict[int, tuple[int, ...]] = field(default_factory=dict)

    @property
    def n_persons(self) -> int:
        return len(self.person_stats)

    def __repr__(self) -> str:  # sizes, not every face (7.8 KB a face: 140 MB for an hour)
        flags = "".join(
            f", {name}=True" for name in ("interrupted", "truncated") if getattr(self, name)
        )
        return (
            f"VideoAnalysis({count(len(self.faces), 'face')} in "
            f"{count(self.n_sampled, 'sampled frame')} ({self.sample_period:g} s each), "
            f"{count(self.n_persons, 'person')}, model={self.model!r}, "
            f"expression_space={self.expression_space!r}{flags})"
        )

    def top_emotions(self, i: int, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable emotions of face ``i`` (empty when not available), those
        of probability 0 left out (which of them came next was only the classes' order)."""
        if not self.classes or not self.faces[i].quality.ok:
            return []
        p = self.emotions[i]
        order = np.argsort(-p, kind="stable")[:k]
        return [(self.classes[j], float(p[j])) for j in order if p[j] > 0]

    def to_frame(self) -> Any:
        """One row per face: time, person, box, quality, top-3 emotions, tags, ``e0..e15``
        (smoothed embedding; empty for rejected faces), ``frame_file`` (the frame's image
        file in a folder of frames, empty for a video file) and, in the ``"pvae"`` space,
        ``c0..c{K-1}`` (smoothed codes) as a ``pandas.DataFrame``
        (:data:`FACE_TABLE_COLUMNS` first)."""
        import pandas as pd

        rows = []
        for i, f in enumerate(self.faces):
            q = f.quality
            # values written whole, as the quality check saw them (a sharpness of 6.4395
            # written as 6.44 read as passing a threshold of 6.4397 it had failed)
            row: dict[str, Any] = {
                "time": float(f.time),
                "frame": f.frame,
                "slot": f.slot,
                "face": f.face_index,
                "person": int(self.persons[i]),
                "track": int(self.tracks[i]),
                "x1": float(f.box[0]),
                "y1": float(f.box[1]),
                "x2": float(f.box[2]),
                "y2": float(f.box[3]),
                "score": float(f.score),
                "sharpness": float(q.sharpness),
                "yaw": float(q.yaw),
                "pitch": float(q.pitch),
                "roll": float(q.roll),
                "quality_ok": bool(q.ok),
                "reasons": ",".join(q.reasons),
            }
            top = self.top_emotions(i)
            for r in range(3):
                row[f"emotion_{r + 1}"] = top[r][0] if r < len(top) else None
                row[f"p_{r + 1}"] = float(top[r][1]) if r < len(top) else float("nan")
            row["tags"] = ",".join(self.tags[i])
            row.update({f"e{d}": float(v) for d, v in enumerate(self.smoothed[i])})
            row["frame_file"] = printable(f.frame_file)
            if self.codes is not None:
                row.update({f"c{d}": float(v) for d, v in enumerate(self.codes[i])})
            rows.append(row)
        frame = pd.DataFrame(rows)
        if not rows:
            frame = pd.DataFrame(columns=FACE_TABLE_COLUMNS)
        return frame

    def persons_frame(self) -> Any:
        """One row per person (:meth:`PersonStats.to_dict`) as a ``pandas.DataFrame``
        (with its header when nobody was seen)."""
        import pandas as pd

        if not self.person_stats:
            return pd.DataFrame(
                columns=[
                    *PERSON_TABLE_COLUMNS,
                    *(f"share_{c}" for c in self.classes),
                    "tagged_moments",
                ]
            )
        return pd.DataFrame([p.to_dict() for p in self.person_stats])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready overview (no per-face rows)."""
        return {
            "video": self.info.to_dict(),
            "config": self.config.to_dict(),
            "model": self.model,
            "expression_space": self.expression_space,
            "neutral_faces": {str(p): list(v) for p, v in self.neutral_faces.items()},
            "frames_sampled": self.n_sampled,
            "sample_period_s": self.sample_period,
            "faces": len(self.faces),
            "faces_accepted": int(sum(f.quality.ok for f in self.faces)),
            "rejected": self.rejected,
            "identity_method": self.identity_method,
            "persons": [p.to_dict() for p in self.person_stats],
            "summaries": {
                str(s.person): [
                    # "representative": a row of faces.csv, as representative_face (it was
                    # the position among the person's summarised faces, beside it)
                    {
                        **s.summary.cluster_dict(c),
                        "representative": s.faces[c.representative],
                        "representative_face": s.faces[c.representative],
                    }
                    for c in s.summary.clusters
                ]
                for s in self.summaries
            },
            "emotion_classes": list(self.classes),
            "timings": self.timings.rows(),
            "interrupted": self.interrupted,
            "truncated": self.truncated,
            "warnings": list(self.warnings),
        }

    def save(self, out_dir: str | Path, html: bool = True) -> dict[str, Path]:
        """Write ``faces.parquet``, ``faces.csv``, ``persons.csv``, ``analysis.json`` and
        (``html``) the self-contained ``report.html`` into ``out_dir``; returns the paths.

        All or nothing: the files are written into a temporary folder inside ``out_dir``,
        synced and marked complete, then moved into place, so an interruption before they
        are whole leaves the previous run's files as they were. A kill among the renames
        (milliseconds) leaves files of two runs side by side until the next save into
        ``out_dir`` or :func:`finish_killed_saves` (``exprsim video`` calls it first) moves
        the rest into place. Without ``html``, a ``report.html`` of an earlier run is
        removed. ``analysis.json`` is strict JSON (``null`` for a value that is not a
        number).

        Raises:
            OSError: a file could not be written or moved; ``moved_into_place`` (an
                attribute of the error) is how many files of this run were already moved
                into ``out_dir`` (0: the earlier run's files are whole).
        """
        import shutil
        import tempfile

        from exprsim.io import json_ready, save_table, sweep_temporaries, sync_file, sync_folder

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        finish_killed_saves(out)  # a run killed among its renames: its report, whole
        sweep_temporaries(out, PARTIAL_REPORT)  # a killed run's
        names = {k: v for k, v in REPORT_FILES.items() if html or k != "html"}
        tmp = Path(tempfile.mkdtemp(prefix=f".exprsim-partial-{os.getpid()}-", dir=out))
        moved = 0
        try:
            frame = self.to_frame()
            save_table(frame, tmp / names["faces_parquet"])
            save_table(frame, tmp / names["faces_csv"])
            save_table(self.persons_frame(), tmp / names["persons_csv"])
            text = json.dumps(json_ready(self.to_dict()), indent=2, allow_nan=False)
            (tmp / names["json"]).write_text(text)
            if html:
                from exprsim.video.report import video_page

                video_page(self).save(tmp / names["html"])
            for name in names.values():
                sync_file(tmp / name)  # on disk before the renames: whole after a power cut
            mark = {"files": list(names.values()), "html": html}
            (tmp / REPORT_COMPLETE).write_text(json.dumps(mark))
            sync_file(tmp / REPORT_COMPLETE)
            sync_folder(tmp)  # the mark and the files are this run's report from here on
            for name in names.values():
                os.replace(tmp / name, out / name)
                moved += 1
            sync_folder(out)
            if not html:
                (out / REPORT_FILES["html"]).unlink(missing_ok=True)
        except OSError as exc:
            exc.moved_into_place = moved  # type: ignore[attr-defined]
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return {key: out / name for key, name in names.items()}


#: Leading columns of :meth:`VideoAnalysis.persons_frame` (all of them when nobody was seen,
#: with one ``share_<emotion>`` per class and ``tagged_moments``).
PERSON_TABLE_COLUMNS: tuple[str, ...] = (
    "person",
    "frames_present",
    "appearance_rate",
    "time_on_screen_s",
    "first_seen_s",
    "last_seen_s",
    "faces_accepted",
)


#: Columns of :meth:`VideoAnalysis.to_frame` (all of them when there are no faces; in the
#: ``"pvae"`` space the codes ``c0..`` follow).
FACE_TABLE_COLUMNS: tuple[str, ...] = (
    "time",
    "frame",
    "slot",
    "face",
    "person",
    "track",
    "x1",
    "y1",
    "x2",
    "y2",
    "score",
    "sharpness",
    "yaw",
    "pitch",
    "roll",
    "quality_ok",
    "reasons",
    "emotion_1",
    "p_1",
    "emotion_2",
    "p_2",
    "emotion_3",
    "p_3",
    "tags",
    *(f"e{d}" for d in range(16)),
    "frame_file",
)


# ----------------------------------------------------------------------------- helpers


def default_classifier(embedder: Any) -> tuple[Any, tuple[str, ...]]:
    """The shipped kNN emotion classifier if it was built with ``embedder``'s model.

    Returns:
        ``(classifier, classes)``, or ``(None, ())`` with a logged warning when the reference
        set is missing or belongs to another model.
    """
    from exprsim.apps.classify import load_reference_set

    try:
        ref = load_reference_set()
    except ModelError as exc:
        log.warning("emotion columns left empty: %s", exc)
        return None, ()
    differ = ref.mismatch(embedder)
    if differ is not None:
        log.warning(
            "emotion columns left empty: the reference set was made with %s, the embedder is %s",
            *differ,
        )
        return None, ()
    return ref.classifier(), tuple(ref.classes)


def load_tag_references(db: str | Path, embedder: Any = None) -> tuple[np.ndarray, list[str]]:
    """Reference faces stored in a face database (``exprsim tag add``).

    Returns:
        ``(R, 16)`` float32 embeddings and their ``R`` tag names.

    Read only: the database is opened as it is (``create=False``), so a mistyped or empty
    file is refused, never turned into an exprsim database.

    Raises:
        ExprsimError: no such database, a folder or an empty file, no references in it, or
            another model's references.
    """
    from exprsim.index.backends import check_db_file
    from exprsim.index.store import FaceIndex

    path = str(db)  # a SQLite file or a postgresql:// URI
    check_db_file(path, "add references with `exprsim tag add NAME IMAGE... --db DB`")
    with FaceIndex(path, embedder=embedder, create=False) as index:
        shown = str(index.path)  # a PostgreSQL URI's password not shown (it was)
        refs = index_tag_references(index, embedder, shown)
    if refs is None:
        raise ExprsimError(
            f"{shown} holds no reference faces: add some with "
            "`exprsim tag add NAME IMAGE... --db DB`"
        )
    return refs


def index_tag_references(
    index: Any, embedder: Any = None, name: str = "the index"
) -> tuple[np.ndarray, list[str]] | None:
    """The reference faces of an open :class:`~exprsim.index.store.FaceIndex` as
    :func:`load_tag_references` gives them, or ``None`` when it holds none.

    Raises:
        ExprsimError: references made with another model than ``embedder``'s (``name``
            names the database in the message).
    """
    refs = index.tag_references()
    if not refs:
        return None
    if embedder is not None:
        from exprsim.models.identity import embedder_digest, mismatch

        model = embedder.config.name_version
        models = {r["model"] for r in refs if r.get("model")}
        differ: tuple[str, str] | None = None
        if models and models != {model}:  # references of other names
            differ = ", ".join(sorted(models)), model
        elif models and index.model == model:  # of this name: of the index's content?
            stored = getattr(index, "model_digest", None)
            differ = mismatch(model, stored, model, embedder_digest(embedder))
        if differ is not None:
            from exprsim.index.store import reembed_hint

            made, said = differ
            raise ExprsimError(
                f"{name}: references were made with {made}, the embedder is {said} "
                f"({reembed_hint(them=True)})"
            )
    emb = np.stack([np.asarray(r["embedding"], np.float32) for r in refs])
    return emb, [str(r["name"]) for r in refs]


def _identity_encoder(method: str) -> Any:
    """dlib's descriptor or ``None`` (IoU fallback); raises when ``"dlib"`` is demanded."""
    if method not in IDENTITY_METHODS:
        raise ExprsimError(f"unknown identity method {method!r}; known: {IDENTITY_METHODS}")
    if method == "iou":
        return None
    from exprsim.errors import BackendUnavailableError
    from exprsim.faces.identity import IdentityEncoder

    try:
        return IdentityEncoder(purpose="grouping faces into persons by identity")
    except BackendUnavailableError as exc:
        if method == "dlib":
            raise
        log.warning("identity grouping falls back to IoU tracking: %s", exc)
        return None


def _moments(times: list[float], tags: list[tuple[str, ...]], gap: float) -> list[TaggedMoment]:
    """Runs of faces carrying a tag; a run breaks when the tag is missing or after ``gap`` s."""
    out: list[TaggedMoment] = []
    open_runs: dict[str, list[float]] = {}
    for t, tg in zip(times, tags, strict=True):
        for name in list(open_runs):
            run = open_runs[name]
            if name not in tg or t - run[-1] > gap:
                out.append(TaggedMoment(name, run[0], run[-1], len(run)))
                del open_runs[name]
        for name in tg:
            open_runs.setdefault(name, []).append(t)
    for name, run in open_runs.items():
        out.append(TaggedMoment(name, run[0], run[-1], len(run)))
    return sorted(out, key=lambda m: (m.start, m.tag))


# ----------------------------------------------------------------------------- main entry


def analyze_video(
    source: str | Path,
    embedder: Any = None,
    config: VideoConfig | None = None,
    classifier: Any = "auto",
    tag_references: tuple[np.ndarray, list[str]] | None = None,
    detector: Any = None,
    progress: bool = False,
    pvae: Any = None,
    on_frame: Callable[[int, int | None], None] | None = None,
    keep_on_interrupt: bool = False,
) -> VideoAnalysis:
    """Analyse the faces and expressions of a video (see module docstring).

    Args:
        source: a video file (anything FFmpeg reads) or a folder of frames.
        embedder: an ``Embedder`` (default: ``exprsim.load_model()``).
        config: sampling, thresholds, identity and summary settings.
        classifier: an ``ExpressionKNN`` fitted on this model's embeddings (its
            ``classes_`` name the columns), ``"auto"`` for the shipped reference set when
            it matches the model, or ``None`` for no emotion columns.
        tag_references: ``((R, 16) embeddings, R names)`` of reference faces
            (:func:`load_tag_references`), or ``None``.
        detector: a detector instance (default: ``config.detector`` from the registry).
        progress: show a tqdm bar (sampled frames, frames/s) on stderr.
        pvae: a :class:`~exprsim.pvae.codes.PVAEEncoder` for ``embedding="pvae"`` (default:
            loaded from ``config.pvae_model``).
        on_frame: called after every sampled frame with (frames done, expected total or
            ``None``): progress for callers without a terminal (the web app).
        keep_on_interrupt: a Ctrl-C returns the partial analysis (``interrupted`` set);
            ``False``: it is raised (:class:`VideoInterrupted`, carrying the partial
            analysis), so that a loop over videos stops at one press.

    Returns:
        A :class:`VideoAnalysis` (partial when interrupted or the stream was truncated).

    Raises:
        VideoError: the video cannot be opened, or not one of its frames decodes.
        ExprsimError: bad configuration, or ``tag_references`` that are not a pair of
            ``(R, D)`` finite, non-zero rows of the model's width and ``R`` names (checked
            before any frame is read).
        VideoInterrupted: a Ctrl-C, without ``keep_on_interrupt``.
    """
    cfg = config or VideoConfig()
    _check_config(cfg, detector)
    t_start = time.perf_counter()
    if cfg.embedding == "pvae" and pvae is None:
        pvae = load_pvae_encoder(cfg.pvae_model)
    if tag_references is not None:  # before the frames are read (was: after all of them)
        tag_references = _checked_references(tag_references, embedder)
    reader, collected = _open(source, cfg, embedder, detector)
    if tag_references is not None and embedder is None:  # the shipped model's width
        opened = (reader, collected.mesher)
        tag_references = _checked_references(tag_references, collected.embedder, opened)
    n_sampled, interrupted = _read_frames(reader, collected, progress, on_frame)
    late = _Late(classifier=classifier)
    read = _Read(collected, reader, cfg, collected.embedder, n_sampled)
    try:
        _late_stages(late, read, tag_references, pvae)
    except KeyboardInterrupt:
        log.warning("interrupted during %s: keeping what is complete", late.stage)
    held = interrupted or late.stage != "done"
    # after a Ctrl-C, a second one must not lose the partial result while it is put together
    with hold_interrupts("the partial result") if held else contextlib.nullcontext():
        analysis = _analysis(late, read, interrupted, t_start)
    if held and not keep_on_interrupt:
        raise VideoInterrupted(analysis)
    return analysis


class VideoInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`analyze_video` (without ``keep_on_interrupt``): ``analysis``
    is what was complete (:attr:`VideoAnalysis.interrupted` set)."""

    def __init__(self, analysis: VideoAnalysis) -> None:
        super().__init__(f"video analysis interrupted after {analysis.n_sampled} frames")
        self.analysis = analysis


def _open(
    source: str | Path, cfg: VideoConfig, embedder: Any, detector: Any
) -> tuple[FrameReader, _FaceCollector]:
    """The video opened (before the embedding model: an unreadable file fails at once), the
    model loaded and the frame stages set up; on any failure on the way, the video (and the
    face mesher of ``embedding="pvae"``) is closed before the error goes on."""
    reader = FrameReader(
        source,
        fps=cfg.fps,
        every=cfg.every,
        max_frames=cfg.max_frames,
        source_fps=cfg.source_fps,
        max_pixels=cfg.max_pixels,
    )
    mesher = None
    try:
        if cfg.embedding == "pvae":
            from exprsim.faces.landmarks import MeshLandmarker

            mesher = MeshLandmarker()
        if embedder is None:
            from exprsim.models.embedder import load_model

            embedder = load_model()
        return reader, _FaceCollector(cfg, embedder, detector, mesher)
    except BaseException:
        reader.close()
        if mesher is not None:
            mesher.close()
        raise


def _analysis(late: _Late, read: _Read, interrupted: bool, t_start: float) -> VideoAnalysis:
    """The :class:`VideoAnalysis` of what was read and of the stages after reading."""
    collected, reader, cfg, n_sampled = read.collected, read.reader, read.cfg, read.n_sampled
    return VideoAnalysis(
        info=reader.info,
        config=_sampling_used(cfg, reader),
        n_sampled=n_sampled,
        sample_period=reader.sample_period,
        faces=tuple(collected.faces),
        model=read.embedder.config.name_version,
        timings=collected.timings(reader, n_sampled, time.perf_counter() - t_start),
        interrupted=interrupted or late.stage != "done",
        truncated=reader.truncated,
        warnings=_warnings(reader, n_sampled, interrupted, late, cfg),
        expression_space=cfg.embedding,
        **_late_fields(late, read),
    )


def _sampling_used(cfg: VideoConfig, reader: FrameReader) -> VideoConfig:
    """``cfg`` with the sampling the reader used: every image of a folder of frames
    (``fps=None, every=1``) unless ``every`` was given."""
    if (reader.fps, reader.every) == (cfg.fps if cfg.every is None else None, cfg.every):
        return cfg
    return replace(cfg, fps=reader.fps, every=reader.every)


#: The stages after reading, in order (:attr:`_Late.stage`).
LATE_STAGES = (
    "embedding",
    "emotion classifier",
    "person grouping",
    "smoothing",
    "emotions",
    "tags",
    "expression codes",
    "person statistics",
    "summaries",
)


@dataclass
class _Late:
    """Results of the stages after reading, each stored as soon as it is complete, so that
    a Ctrl-C in a later stage keeps them (:func:`_late_fields` fills in the rest).

    Attributes:
        classifier: as given to :func:`analyze_video` (``"auto"`` until resolved).
        stage: the stage running (:data:`LATE_STAGES`), ``"done"`` when all finished.
        ident: the :class:`~exprsim.video.tracks.IdentityResult`; the others: the
            :class:`VideoAnalysis` fields of the same names (``None``: not computed).
    """

    classifier: Any = None
    stage: str = LATE_STAGES[0]
    classes: tuple[str, ...] = ()
    ident: Any = None
    smoothed: np.ndarray | None = None
    emotions: np.ndarray | None = None
    tags: list[tuple[str, ...]] | None = None
    codes: np.ndarray | None = None
    neutral_faces: dict[int, tuple[int, ...]] = field(default_factory=dict)
    stats: list[PersonStats] | None = None
    summaries: list[PersonSummary] = field(default_factory=list)


@dataclass(frozen=True)
class _Read:
    """What reading left for the stages after it."""

    collected: _FaceCollector
    reader: FrameReader
    cfg: VideoConfig
    embedder: Any
    n_sampled: int


def _late_stages(
    late: _Late,
    read: _Read,
    tag_references: tuple[np.ndarray, list[str]] | None,
    pvae: Any,
) -> None:
    """Stages 4-6 after reading, into ``late``: the last embedding batch, the emotion
    classifier, then (timed as ``cluster``) persons, smoothing, emotions, tags,
    perceptual-VAE codes, per-person statistics and summaries."""
    collected, embedder = read.collected, read.embedder
    collected.flush()
    late.stage = "emotion classifier"  # after decoding: an undecodable video fails first
    if isinstance(late.classifier, str) and late.classifier == "auto":
        late.classifier, late.classes = default_classifier(embedder)
    elif late.classifier is not None:
        late.classes = tuple(str(c) for c in late.classifier.classes_)
    t0 = time.perf_counter()
    try:
        _person_stages(late, read, tag_references, pvae)
    finally:
        collected.sec["cluster"] += time.perf_counter() - t0
    late.stage = "done"


def _person_stages(
    late: _Late,
    read: _Read,
    tag_references: tuple[np.ndarray, list[str]] | None,
    pvae: Any,
) -> None:
    """Stages 4-6 (see :func:`_late_stages`), each result stored in ``late`` at once."""
    collected, reader, cfg, embedder = read.collected, read.reader, read.cfg, read.embedder
    n_sampled = read.n_sampled
    faces = collected.faces
    accepted = np.array([f.quality.ok for f in faces], dtype=bool)
    late.stage = "person grouping"
    late.ident = _persons(collected, cfg, n_sampled, accepted)
    persons = late.ident.persons
    late.stage = "smoothing"
    raw = _raw_embeddings(collected, embedder.embedding_dim)
    late.smoothed = _smooth(raw, late.ident, accepted, cfg.smooth_window)
    late.stage = "emotions"
    late.emotions = _emotions(late.classifier, late.smoothed, accepted, len(late.classes))
    late.stage = "tags"
    late.tags = _tags(tag_references, late.smoothed, accepted, cfg, embedder)
    if collected.mesher is not None:  # embedding == "pvae": the encoder was loaded before
        late.stage = "expression codes"
        late.codes, late.neutral_faces = _codes_stage(
            pvae, collected, persons, accepted, late.emotions, late.classes, cfg
        )
    late.stage = "person statistics"
    late.stats = _person_stats(
        faces,
        persons,
        late.emotions,
        late.classes,
        late.tags,
        _seconds(collected, reader),
        n_sampled,
        reader.sample_period,
        cfg,
        _duration(reader),
    )
    late.stage = "summaries"
    values = late.smoothed if late.codes is None else late.codes
    _person_summaries(faces, late.stats, persons, values, cfg, late.summaries)


def _late_fields(late: _Late, read: _Read) -> dict[str, Any]:
    """The :class:`VideoAnalysis` fields of the stages after reading: ``late``'s results,
    and for a stage a Ctrl-C cut short the simplest valid stand-in that needs no further
    heavy work: each face track as its own person, NaN smoothed embeddings, no emotion
    columns, no tags, no codes, statistics counted from what is there, the summaries done."""
    collected, reader, cfg, n_sampled = read.collected, read.reader, read.cfg, read.n_sampled
    embedder = read.embedder
    faces = collected.faces
    accepted = np.array([f.quality.ok for f in faces], dtype=bool)
    ident = late.ident if late.ident is not None else _track_persons(collected, accepted)
    raw = _raw_embeddings(collected, embedder.embedding_dim)
    smoothed = late.smoothed if late.smoothed is not None else np.full_like(raw, np.nan)
    emotions, classes = late.emotions, late.classes
    if emotions is None:
        emotions, classes = np.zeros((len(faces), 0), np.float32), ()
    no_tags: list[tuple[str, ...]] = [()] * len(faces)
    tags = late.tags if late.tags is not None else no_tags
    stats = late.stats
    if stats is None:
        seconds = _seconds(collected, reader)
        period, duration = reader.sample_period, _duration(reader)
        stats = _person_stats(
            faces, ident.persons, emotions, classes, tags, seconds, n_sampled, period, cfg, duration
        )
    rejected = Counter(r for f in faces for r in f.quality.reasons)
    return {
        "persons": ident.persons,
        "tracks": ident.tracks,
        "embeddings": raw,
        "smoothed": smoothed,
        "classes": classes,
        "emotions": emotions,
        "tags": tuple(tags),
        "person_stats": tuple(stats),
        "summaries": tuple(late.summaries),
        "rejected": dict(sorted(rejected.items())),
        "identity_method": ident.method,
        "codes": late.codes,
        "neutral_faces": late.neutral_faces,
    }


def _warnings(
    reader: FrameReader, n_sampled: int, interrupted: bool, late: _Late, cfg: VideoConfig
) -> tuple[str, ...]:
    """The reader's warnings, then those of a Ctrl-C while reading and after it."""
    warnings = list(reader.warnings)
    if interrupted:
        warnings.append(f"interrupted after {n_sampled} sampled frames")
    if late.stage != "done":
        warnings.append(_late_warning(late, cfg))
    return tuple(warnings)


def _late_warning(late: _Late, cfg: VideoConfig) -> str:
    """The warning of a Ctrl-C during ``late.stage``: the stage, and what was left out."""
    left = LATE_STAGES[LATE_STAGES.index(late.stage) :]
    left = tuple(
        s
        for s in left
        if s not in ("emotion classifier", "person statistics")
        and (s != "expression codes" or cfg.embedding == "pvae")
    )
    text = f"interrupted during {late.stage}; not done: {', '.join(left)}"
    if late.ident is None:
        text += "; each face track is counted as a person of its own"
    return text


# ----------------------------------------------------------------------------- stages


class _FaceCollector:
    """Stages 2-3 frame by frame: faces (:func:`~exprsim.faces.pipeline.analyze_image`),
    IoU tracks, identity descriptors, face meshes, and the accepted crops embedded in
    batches of ``cfg.batch_size``."""

    def __init__(self, cfg: VideoConfig, embedder: Any, detector: Any, mesher: Any) -> None:
        from exprsim.faces.detect import check_detector
        from exprsim.faces.quality import QualityConfig
        from exprsim.video.tracks import TrackLinker

        self.cfg = cfg
        self.embedder = embedder
        # a name: each front-end thread builds its own (resolved here so that an unknown or
        # missing detector fails before the video is read); an instance: used as is
        self.detector = detector if detector is not None else cfg.detector
        if isinstance(self.detector, str):
            check_detector(self.detector)
        self.encoder = _identity_encoder(cfg.identity)
        self.mesher = mesher
        self.align_cfg = embedder.config.preprocess.align_config()
        self.quality_cfg = QualityConfig(
            sharpness_threshold=cfg.sharpness_threshold, max_abs_yaw=cfg.max_abs_yaw
        )
        self.linker = TrackLinker(cfg.min_iou, cfg.max_gap)
        self.faces: list[VideoFace] = []
        self.sample_times: list[float] = []  # seconds of every sampled frame, by slot
        self.tracks: list[int] = []
        self.track_counts: Counter[int] = Counter()
        self.next_described: Counter[int] = Counter()  # track -> face count due a descriptor
        self.n_described: Counter[int] = Counter()
        self.descriptors: dict[int, np.ndarray] = {}
        self.embeddings: dict[int, np.ndarray] = {}
        self.meshes: dict[int, np.ndarray] = {}
        self.pending: list[tuple[int, np.ndarray]] = []
        self.looks: dict[int, np.ndarray] = {}  # track -> appearance of its last face
        self.last_descriptor: dict[int, np.ndarray] = {}  # track -> its latest descriptor
        self.described_at: dict[int, int] = {}  # track -> the face of its latest descriptor
        self.sec = dict.fromkeys(("detect", "align", "identity", "embed", "cluster", "mesh"), 0.0)

    def add_frame(self, slot: int, frame: Any, found: Any) -> None:
        """Take the faces found in one sampled frame (an
        :class:`~exprsim.faces.stream.ImageFaces`) and link them to tracks."""
        self.sample_times.append(frame.time)  # first: a face's slot always has its time
        for stage, sec in found.timings.items():
            self.sec[stage] += sec
        faces = found.faces
        boxes = np.stack([af.face.box for af in faces]) if faces else np.zeros((0, 4))
        ids = self.linker.update(slot, boxes)
        for j, af in enumerate(faces):
            track, descriptor = self._check_identity(frame, af, ids[j])
            self._add_face(slot, frame, j, af, track, descriptor)
        if len(self.pending) >= self.cfg.batch_size:
            self.flush()

    def _check_identity(self, frame: Any, af: Any, track: int) -> tuple[int, np.ndarray | None]:
        """The face's track, split when dlib calls the face another person than the
        track's last descriptor (module docstring of :mod:`exprsim.video.tracks`); and the
        descriptor computed on the way, if any. A face is described when it suddenly looks
        unlike the track's previous face (a cut: the track ends before it), or when its
        track is due a descriptor (a change the looks did not show, such as a dissolve:
        the later half of the faces since the last descriptor go with the new track)."""
        from exprsim.video.tracks import APPEARANCE_JUMP, SAME_PERSON, appearance

        look = appearance(af.crop)
        before = self.looks.get(track)
        descriptor = None
        if self.encoder is not None:
            jump = before is not None and look @ before < APPEARANCE_JUMP
            if jump or self.track_counts[track] == self.next_described[track]:
                t0 = time.perf_counter()
                descriptor = self.encoder.descriptor(frame.image, af.face.box)
                self.sec["identity"] += time.perf_counter() - t0
                last = self.last_descriptor.get(track)
                if last is not None and float(np.linalg.norm(descriptor - last)) > SAME_PERSON:
                    track = self.linker.split(track) if jump else self._split_back(track)
        self.looks[track] = look
        return track, descriptor

    def _split_back(self, track: int) -> int:
        """End ``track`` where its look changed unseen: between its last described face
        and now, so the later half of the faces in between start the new track (halfway:
        the best guess without a look at each); returns the new track's id."""
        new = self.linker.split(track)
        since = range(self.described_at[track] + 1, len(self.faces))
        later = [k for k in since if self.tracks[k] == track]
        moved = later[len(later) // 2 :]
        for k in moved:
            self.tracks[k] = new
        # the face being added is the new track's first descriptor (due at this count)
        self.track_counts[new] = self.next_described[new] = len(moved)
        return new

    def _add_face(
        self, slot: int, frame: Any, j: int, af: Any, track: int, descriptor: Any = None
    ) -> None:
        i = len(self.faces)
        f, q = af.face, af.quality
        thumb = None
        mesh = None
        if q.ok:
            thumb = _thumb(af.crop, self.cfg.thumb_size)
            if self.mesher is not None:
                t0 = time.perf_counter()
                mesh = self.mesher.mesh(frame.image, f.box)
                self.sec["mesh"] += time.perf_counter() - t0
        # the face is recorded whole, then queued: a Ctrl-C between two steps must not leave
        # a queued crop without its face (the partial report is written from these lists)
        box = f.box.astype(np.float32)
        self.faces.append(
            VideoFace(slot, frame.index, frame.time, j, box, float(f.score), q, thumb, frame.file)
        )
        self.tracks.append(track)
        if mesh is not None:
            self.meshes[i] = mesh
        if q.ok:
            self.pending.append((i, af.crop))
        due = self.track_counts[track] == self.next_described[track]
        if descriptor is not None:  # computed by _check_identity (always, when due)
            self.descriptors[i] = descriptor
            self.last_descriptor[track] = descriptor
            self.described_at[track] = i
            if due:
                self.next_described[track] += descriptor_gap(
                    self.n_described[track],
                    self.cfg.descriptor_stride,
                    self.cfg.descriptor_max_stride,
                )
                self.n_described[track] += 1
        self.track_counts[track] += 1

    def flush(self) -> None:
        """Embed the accepted crops waiting for a batch."""
        if not self.pending:
            return
        from exprsim.models.embedder import embed_aligned

        t0 = time.perf_counter()
        emb = embed_aligned(self.embedder, np.stack([c for _, c in self.pending]))
        for (i, _), e in zip(self.pending, emb, strict=True):
            self.embeddings[i] = e
        self.pending.clear()
        self.sec["embed"] += time.perf_counter() - t0

    def timings(self, reader: FrameReader, n_sampled: int, total: float) -> StageTimes:
        return StageTimes(
            decode=reader.decode_seconds,
            frames=n_sampled,
            decoded=reader.n_decoded,
            faces=len(self.faces),
            accepted=sum(f.quality.ok for f in self.faces),
            descriptors=len(self.descriptors),
            total=total,
            **self.sec,
        )


def _read_frames(
    reader: FrameReader,
    collector: _FaceCollector,
    progress: bool,
    on_frame: Callable[[int, int | None], None] | None,
) -> tuple[int, bool]:
    """Stage 1: decode the sampled frames into ``collector``.

    Returns:
        ``(sampled frames analysed, interrupted by Ctrl-C)``; closes the reader (and the
        collector's face mesher) in every case.
    """
    try:
        return _decode_frames(reader, collector, progress, on_frame)
    finally:
        reader.close()
        if collector.mesher is not None:
            collector.mesher.close()


def _decode_frames(
    reader: FrameReader,
    collector: _FaceCollector,
    progress: bool,
    on_frame: Callable[[int, int | None], None] | None,
) -> tuple[int, bool]:
    """:func:`_read_frames` without the closing."""
    from exprsim.progress import progress_bar

    interrupted = False
    bar = progress_bar(
        total=reader.expected_samples(),
        enabled=progress,
        desc="video",
        unit="frame",
        dynamic_ncols=True,
    )
    from exprsim.faces.stream import TrackGuide, analyze_stream

    frames: collections.deque[Any] = collections.deque()

    def images() -> Iterator[np.ndarray]:
        for frame in reader:
            frames.append(frame)  # held until its faces come back (a few frames at most)
            yield frame.image

    guide = TrackGuide(redetect_every=collector.cfg.redetect_every)
    found = analyze_stream(
        images(),
        collector.detector,
        collector.align_cfg,
        collector.quality_cfg,
        workers=collector.cfg.workers,
        guide=guide,
    )
    search = _BackSearch(collector)

    def add(ready: list[tuple[int, Any, Any]]) -> None:
        for slot, frame, item in ready:
            collector.add_frame(slot, frame, item)
            bar.update(1)
            if on_frame is not None:
                on_frame(slot + 1, bar.total)

    try:
        for slot, item in enumerate(found):
            add(search.push(slot, frames.popleft(), item))
        add(search.drain())
    except KeyboardInterrupt:
        interrupted = True
        with hold_interrupts("the frames already analysed"):
            add(search.drain())  # analysed in full: kept
        log.warning(
            "interrupted after %d sampled frames: keeping the partial analysis",
            len(collector.sample_times),
        )
    finally:
        # a Ctrl-C inside add_frame leaves that frame's faces (some at least): count it
        n_sampled = len(collector.sample_times)
        found.close()  # cancels frames still in flight
        log.info(
            "detection guided by earlier frames on %d of %d sampled frames (%d fell back); "
            "%d face(s) found afterwards in guided frames",
            guide.guided,
            n_sampled,
            guide.fallbacks,
            search.found,
        )
        bar.close()
    return n_sampled, interrupted


class _BackSearch:
    """Faces that guided detection missed, found afterwards.

    A guided frame (:attr:`~exprsim.faces.stream.ImageFaces.guided`) searches only near
    faces already seen, so someone who comes in just after a full detection is first found
    at the next one, up to ``redetect_every - 1`` sampled frames late, and a short
    appearance would then have too few faces to be a person. So guided frames wait here
    (at most ``redetect_every - 1``) before they are collected; when the next full
    detection finds a face that no face of the frame before it overlaps, the waiting
    frames are searched around it (:func:`~exprsim.faces.stream.search_near`), latest
    first, each around the face found in the one after it, until it is not found.

    The waiting frames hold their full images, so they are capped (:meth:`cap`): images of
    :data:`BACK_SEARCH_BYTES` at most, but never fewer than :data:`BACK_SEARCH_FRAMES`
    frames (all the default ``redetect_every`` needs). With a large ``redetect_every`` the
    search then reaches back only over the frames kept (logged once).
    """

    def __init__(self, collector: _FaceCollector) -> None:
        self.collector = collector
        self.limit = max(0, collector.cfg.redetect_every - 1)
        self.waiting: list[tuple[int, Any, Any]] = []  # (slot, frame, ImageFaces)
        self.found = 0  # faces found afterwards
        self.capped = False  # the cap shortened the search (logged once)

    def cap(self, image: np.ndarray) -> int:
        """Guided frames kept waiting, for frames the size of ``image``: ``limit``, or fewer
        when their images would take more than :data:`BACK_SEARCH_BYTES`."""
        room = BACK_SEARCH_BYTES // max(1, int(image.nbytes))
        return min(self.limit, max(BACK_SEARCH_FRAMES, room))

    def push(self, slot: int, frame: Any, item: Any) -> list[tuple[int, Any, Any]]:
        """The frames ready to be collected, in order, after sampled frame ``slot``."""
        if getattr(item, "guided", False) and self.limit:
            self.waiting.append((slot, frame, item))
            keep = self.cap(frame.image)
            if len(self.waiting) > keep and keep < self.limit and not self.capped:
                self.capped = True
                log.info(
                    "the search for faces missed by guided detection reaches back %d sampled "
                    "frames, not redetect_every - 1 = %d (their images would take more than "
                    "%d MB)",
                    keep,
                    self.limit,
                    BACK_SEARCH_BYTES >> 20,
                )
            ready = self.waiting[:-keep]
            self.waiting = self.waiting[-keep:]
            return ready
        if self.waiting:
            for af in item.faces:
                self._search_back(af.face.box)
        return [*self.drain(), (slot, frame, item)]

    def drain(self) -> list[tuple[int, Any, Any]]:
        """The waiting frames (the stream ended, or stopped)."""
        ready, self.waiting = self.waiting, []
        return ready

    def _search_back(self, box: np.ndarray) -> None:
        """Look for the face at ``box`` (of the frame after the waiting ones) in the
        waiting frames, latest first, while it is found and was not there already."""
        from exprsim.faces.detect import box_iou
        from exprsim.faces.stream import search_near

        c = self.collector
        hint = np.asarray(box, np.float64).reshape(1, 4)
        for k in range(len(self.waiting) - 1, -1, -1):
            slot, frame, item = self.waiting[k]
            have = np.array([af.face.box for af in item.faces], np.float64).reshape(-1, 4)
            if len(have) and box_iou(hint, have).max() >= c.cfg.min_iou:
                return  # seen there: not a face that came in unseen
            timings = dict(item.timings)
            got = search_near(
                frame.image, hint, c.detector, c.align_cfg, c.quality_cfg, timings=timings
            )
            if len(have):  # not one of the faces already there
                got = [af for af in got if box_iou(af.face.box[None], have).max() < 0.3]
            if not got:
                return
            best = max(got, key=lambda af: float(box_iou(af.face.box[None], hint)[0, 0]))
            faces = sorted(
                (*item.faces, best),
                key=lambda af: (-af.face.width * af.face.height, float(af.face.box[0])),
            )
            self.waiting[k] = (slot, frame, replace(item, faces=tuple(faces), timings=timings))
            self.found += 1
            hint = np.asarray(best.face.box, np.float64).reshape(1, 4)


def _persons(
    collected: _FaceCollector, cfg: VideoConfig, n_sampled: int, accepted: np.ndarray
) -> Any:
    """Stage 4a: faces grouped into persons (the
    :func:`~exprsim.video.tracks.cluster_identities` result, persons of rejected faces only
    unassigned)."""
    from exprsim.video.tracks import cluster_identities

    slots, boxes = _slots_and_boxes(collected.faces)
    ident = cluster_identities(
        slots,
        boxes,
        np.array(collected.tracks, dtype=np.int64),
        collected.descriptors if collected.encoder is not None else None,
        eps=cfg.eps,
        min_samples=min(cfg.min_samples, max(1, n_sampled)),
    )
    return replace(ident, persons=_drop_rejected_only(ident.persons, accepted))


def _track_persons(collected: _FaceCollector, accepted: np.ndarray) -> Any:
    """The stand-in for a person grouping cut short by Ctrl-C: each face track is a person
    of its own (no descriptors, no DBSCAN; method ``"iou"``), numbered by first appearance;
    tracks of rejected faces only are unassigned."""
    from exprsim.video.tracks import cluster_identities

    slots, boxes = _slots_and_boxes(collected.faces)
    tracks = np.array(collected.tracks, dtype=np.int64)
    ident = cluster_identities(slots, boxes, tracks, None, min_samples=1)
    return replace(ident, persons=_drop_rejected_only(ident.persons, accepted))


def _slots_and_boxes(faces: list[VideoFace]) -> tuple[np.ndarray, np.ndarray]:
    """``(N,)`` int64 sampled-frame numbers and ``(N, 4)`` boxes of the faces."""
    slots = np.array([f.slot for f in faces], dtype=np.int64)
    boxes = np.stack([f.box for f in faces]) if faces else np.zeros((0, 4), np.float32)
    return slots, boxes


def _raw_embeddings(collected: _FaceCollector, dim: int) -> np.ndarray:
    """``(N, dim)`` float32 embeddings of the faces (NaN rows where none was computed:
    rejected faces, and accepted ones whose batch a Ctrl-C cut short)."""
    raw = np.full((len(collected.faces), dim), np.nan, dtype=np.float32)
    for i, e in collected.embeddings.items():
        raw[i] = e
    return raw


def _smooth(raw: np.ndarray, ident: Any, accepted: np.ndarray, window: int) -> np.ndarray:
    """Stage 4b: each person's accepted embeddings median-smoothed over ``window`` faces of
    one track (:func:`~exprsim.video.tracks.smooth_tracks`) and re-normalised (NaN rows for
    rejected faces)."""
    from exprsim.video.tracks import smooth_tracks

    smoothed = np.full_like(raw, np.nan)
    for p in np.unique(ident.persons):
        idx = np.flatnonzero((ident.persons == p) & accepted)
        if len(idx) == 0:
            continue
        # unassigned faces (p < 0) have no neighbours to pool with
        smoothed[idx] = smooth_tracks(raw[idx], ident.tracks[idx], window if p >= 0 else 1)
    return smoothed


def _drop_rejected_only(persons: np.ndarray, accepted: np.ndarray) -> np.ndarray:
    """Persons made only of rejected detections (most likely not faces) become unassigned
    (-1), and the others are numbered 0, 1, ... again in the same order, so that every
    person id in the face table is a person of the report."""
    out = np.full_like(persons, -1)
    kept = [p for p in np.unique(persons) if p >= 0 and accepted[persons == p].any()]
    for new, p in enumerate(kept):
        out[persons == p] = new
    return out


def _emotions(
    classifier: Any, smoothed: np.ndarray, accepted: np.ndarray, n_classes: int
) -> np.ndarray:
    """Stage 5a: ``(N, C)`` float32 class probabilities of the smoothed embeddings (NaN rows
    for rejected faces)."""
    emotions = np.full((len(smoothed), n_classes), np.nan, dtype=np.float32)
    acc_idx = np.flatnonzero(accepted)
    if classifier is not None and len(acc_idx):
        emotions[acc_idx] = classifier.predict_proba(smoothed[acc_idx]).astype(np.float32)
    return emotions


def _checked_references(
    refs: Any, embedder: Any, opened: tuple[Any, ...] = ()
) -> tuple[np.ndarray, list[str]]:
    """``analyze_video``'s ``tag_references``, checked (:func:`exprsim.apps.tag.check_references`)
    against the embedder's width (when known), and normalised (one warning, not one per
    check); what was ``opened`` already (the reader, the face mesher) is closed when they
    are refused."""
    from exprsim.apps.tag import check_references

    try:
        return _references(refs, embedder, check_references)
    except BaseException:
        for thing in opened:
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.close()
        raise


def _references(refs: Any, embedder: Any, check: Any) -> tuple[np.ndarray, list[str]]:
    if not isinstance(refs, tuple | list) or len(refs) != 2:
        raise ExprsimError(
            "tag_references must be a pair ((R, D) embeddings, R names), as "
            "load_tag_references gives them"
        )
    emb, names = refs
    dim = getattr(embedder, "embedding_dim", None)
    return check(emb, names, dim if isinstance(dim, int) else None).astype(np.float32), names


def _tags(
    tag_references: tuple[np.ndarray, list[str]] | None,
    smoothed: np.ndarray,
    accepted: np.ndarray,
    cfg: VideoConfig,
    embedder: Any,
) -> list[tuple[str, ...]]:
    """Stage 5b: per face the reference-face tags below the threshold (nearest first)."""
    tags: list[tuple[str, ...]] = [()] * len(smoothed)
    acc_idx = np.flatnonzero(accepted)
    if tag_references is None or not len(acc_idx):
        return tags
    from exprsim.apps.tag import match_tags, model_threshold

    ref_emb, ref_names = tag_references
    threshold = cfg.tag_threshold if cfg.tag_threshold is not None else model_threshold(embedder)
    matches = match_tags(smoothed[acc_idx], ref_emb, ref_names, threshold)
    for i, (tg, _) in zip(acc_idx, matches, strict=True):
        tags[int(i)] = tg
    return tags


def _codes_stage(
    encoder: Any,
    collected: _FaceCollector,
    persons: np.ndarray,
    accepted: np.ndarray,
    emotions: np.ndarray,
    classes: tuple[str, ...],
    cfg: VideoConfig,
) -> tuple[np.ndarray, dict[int, tuple[int, ...]]]:
    """Stage 5c (``embedding="pvae"``): smoothed perceptual-VAE codes and neutral faces."""
    t0 = time.perf_counter()
    tracks = np.array(collected.tracks, dtype=np.int64)
    codes, neutral_faces = _pvae_codes(
        encoder, collected.meshes, (persons, tracks), accepted, emotions, classes, cfg
    )
    collected.sec["mesh"] += time.perf_counter() - t0
    missing = int(accepted.sum()) - len(collected.meshes)
    if missing:
        log.info("%d accepted faces got no face mesh (no perceptual-VAE code)", missing)
    return codes, neutral_faces


def _check_config(cfg: VideoConfig, detector: Any = None) -> None:
    """Refuse a bad configuration (and ``detector``: an instance without ``detect`` or
    closed, or an unknown or unavailable name, ``cfg.detector`` when ``None``) before the
    video is opened."""
    if detector is None or isinstance(detector, str):
        from exprsim.faces.detect import check_detector

        check_detector(detector if detector is not None else cfg.detector)
    elif not callable(getattr(detector, "detect", None)):
        raise ExprsimError(
            f"detector must be a registry name or an object with detect(image), "
            f"got {type(detector).__name__}"
        )
    elif callable(getattr(detector, "check_open", None)):
        detector.check_open()  # a closed detector fails before the video is opened
    if cfg.identity not in IDENTITY_METHODS:
        raise ExprsimError(f"unknown identity method {cfg.identity!r}; known: {IDENTITY_METHODS}")
    _check_numbers(cfg)
    if cfg.smooth_window > 1 and cfg.smooth_window % 2 == 0:
        raise ExprsimError(
            f"smooth_window must be odd (a median window centred on each face: 1, 3, 5, ...), "
            f"got {cfg.smooth_window}"
        )
    if cfg.redetect_every < 1 or cfg.workers < 1:
        raise ExprsimError(
            f"redetect_every and workers must be at least 1, got {cfg.redetect_every} "
            f"and {cfg.workers}"
        )
    if cfg.embedding not in EXPRESSION_SPACES:
        raise ExprsimError(
            f"unknown embedding {cfg.embedding!r}; expected one of {', '.join(EXPRESSION_SPACES)}"
        )
    if cfg.neutral not in NEUTRAL_METHODS:
        raise ExprsimError(
            f"unknown neutral method {cfg.neutral!r}; expected one of {', '.join(NEUTRAL_METHODS)}"
        )


def _check_numbers(cfg: VideoConfig) -> None:
    """The numeric fields of ``cfg`` as the CLI takes them: whole numbers where counts are
    meant, finite thresholds (NaN compares false with everything, so a NaN threshold would
    pass or reject every face without a word)."""
    from exprsim.errors import require_int, require_number
    from exprsim.faces.quality import MAX_YAW

    for name, least in (
        ("smooth_window", 1),
        ("n_summary", 1),
        ("min_samples", 1),
        ("descriptor_stride", 1),
        ("descriptor_max_stride", 1),
        ("batch_size", 1),
        ("thumb_size", 8),
        ("max_gap", 0),
    ):
        require_int(getattr(cfg, name), name, least)

    require_number(cfg.sharpness_threshold, "sharpness_threshold", "a finite number >= 0", 0)
    require_number(cfg.max_abs_yaw, "max_abs_yaw", f"a number in [0, {MAX_YAW:g}]", 0, MAX_YAW)
    require_number(cfg.eps, "eps", "a finite number > 0", 0, low_open=True)
    require_number(cfg.min_iou, "min_iou", "a number in [0, 1]", 0, 1)
    if cfg.tag_threshold is not None:
        rule = "None or a finite number > 0"
        require_number(cfg.tag_threshold, "tag_threshold", rule, 0, low_open=True)


def load_pvae_encoder(path: str | None) -> Any:
    """:func:`exprsim.pvae.codes.load_pvae` with an error saying how to get a run folder."""
    from exprsim.pvae.codes import is_pvae_run, load_pvae

    if path is None or not is_pvae_run(path):
        if path is None:
            where = "no pvae_model given"
        elif not os.path.exists(path):  # said as what it is, not as a folder of another kind
            where = f"{printable(str(path))}: no such folder"
        else:
            where = f"{printable(str(path))} is not a perceptual-VAE run"
        raise ModelError(
            f"embedding 'pvae' needs a trained perceptual VAE ({where}); train one with "
            "`exprsim train --config configs/pvae-m2.json --out runs/pvae-m2` and pass that folder"
        )
    return load_pvae(path)


def _pvae_codes(
    encoder: Any,
    meshes: dict[int, np.ndarray],
    who: tuple[np.ndarray, np.ndarray],
    accepted: np.ndarray,
    emotions: np.ndarray,
    classes: tuple[str, ...],
    cfg: VideoConfig,
) -> tuple[np.ndarray, dict[int, tuple[int, ...]]]:
    """Smoothed perceptual-VAE codes ``(N, K)`` (NaN without a mesh) and neutral faces;
    ``who``: the ``(N,)`` person and track of each face (codes are smoothed per track)."""
    from exprsim.pvae.features import mesh_features
    from exprsim.video.tracks import smooth_tracks

    persons, tracks = who
    n = len(persons)
    k = encoder.config.latent_dim
    codes = np.full((n, k), np.nan, dtype=np.float32)
    neutral_faces: dict[int, tuple[int, ...]] = {}
    col = classes.index("neutral") if "neutral" in classes else None
    for p in np.unique(persons):
        idx = np.array([i for i in np.flatnonzero(persons == p) if accepted[i] and i in meshes])
        if len(idx) == 0:
            continue
        feats = mesh_features(np.stack([meshes[int(i)] for i in idx]))
        neutral = None
        if cfg.neutral == "auto" and col is not None and p >= 0:
            prob = emotions[idx, col]
            order = np.argsort(-prob, kind="stable")[:NEUTRAL_TOP]
            order = order[prob[order] >= NEUTRAL_MIN_PROB]
            if len(order):
                neutral = np.median(feats[order], axis=0)
                neutral_faces[int(p)] = tuple(int(idx[o]) for o in order)
            else:
                neutral_faces[int(p)] = ()
        raw = encoder.encode_features(feats, neutral)
        window = cfg.smooth_window if p >= 0 else 1
        codes[idx] = smooth_tracks(raw, tracks[idx], window, normalize=False)
    return codes, neutral_faces


def descriptor_gap(k: int, stride: int, max_stride: int) -> int:
    """Faces of a track between its ``k``-th and ``k+1``-th identity descriptor: ``stride``,
    then doubling (``2 * stride``, ``4 * stride``, ...) up to ``max_stride``.

    A track's identity is settled by its first few descriptors; later ones only watch for
    a track that jumps to another person, so they can be sparse. On a 1-minute single-person
    clip at 5 fps this takes 14 descriptors (at faces 0, 5, 15, 35, 60, ...) instead of 60.
    """
    stride = max(1, stride)
    return int(min(max(stride, max_stride), stride * 2 ** min(k, 30)))


def _thumb(crop: np.ndarray, size: int) -> bytes:
    """The crop at ``size`` px, JPEG-encoded (quality 90; see :class:`VideoFace`)."""
    import cv2

    if crop.shape[0] != size:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(crop[:, :, ::-1]), THUMB_JPEG)
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 image
        raise ExprsimError("could not encode a face thumbnail")
    return buf.tobytes()


def sample_seconds(
    times: Sequence[float],
    period: float,
    jitter: float = 0.0,
    decoded: Sequence[float] | None = None,
    sampled_at: Sequence[int] | None = None,
    finished: bool = False,
    last_duration: float = math.nan,
) -> np.ndarray:
    """Seconds of video each sampled frame stands for (time on screen adds them up).

    A sampled frame stands for the time until the next sampled frame: each decoded frame
    from it up to the next sampled one is shown until the next decoded frame (its real
    timestamps), so a stretch where the source itself has few frames (a screen recording,
    a low-light phone clip) counts in full. Only a hole counts at most ``2 * period``: a gap
    between two decoded frames longer than ``2 * period`` and more than twice the gaps
    around it (frames missing from a stream, not a lower frame rate). The last decoded
    frame of a source read to its end (``finished``) stands for its own duration where the
    file gives one (``last_duration``: a GIF's held last frame), else for the gap before
    it.

    After an early stop (Ctrl-C, ``max_frames``, a stop from ``on_frame``) the last of
    ``times`` stands for no more than in a complete read: up to the next sampled frame when
    that was decoded (a Ctrl-C leaves frames decoded ahead of the ones collected), else for
    ``period``, or for the time through its own decoded frames when that is longer (every
    N-th frame of a variable-rate clip); the frames decoded after it are its own, and a
    complete read would have sampled the next frame about one period after it.

    A sampled frame's time within ``jitter`` of ``period`` counts as ``period`` exactly:
    on a constant-frame-rate clip the sampled frames are the first source frames at or
    after each multiple of the period, so their gaps wander by up to a source frame around
    it (:attr:`FrameReader.sample_jitter`), and time on screen stays the number of sampled
    frames x ``period``. Out-of-order timestamps count as 0 s.

    Args:
        times: seconds of each sampled frame, in order.
        period: seconds of video per sampled frame (:attr:`FrameReader.sample_period`).
        jitter: see above.
        decoded: seconds of every decoded frame (:attr:`FrameReader.decoded_times`);
            ``None``: only the sampled frames are known (``times``).
        sampled_at: the position in ``decoded`` of each sampled frame
            (:attr:`FrameReader.sampled_at`).
        finished: the source was read to its end (:attr:`FrameReader.finished`).
        last_duration: seconds the last decoded frame is shown
            (:attr:`FrameReader.last_duration`; NaN: unknown).

    Returns:
        ``(len(times),)`` float64 seconds.
    """
    t = np.asarray(times, dtype=np.float64)
    if decoded is None or sampled_at is None:
        d, at, finished = t, np.arange(len(t)), False
    else:
        d = np.asarray(decoded, dtype=np.float64)
        at = np.asarray(sampled_at, dtype=np.int64)
    if len(t) == 0:
        return np.zeros(0)
    pos = at[: len(t)]
    spans = _decoded_spans(d, float(period), finished, last_duration)
    total = np.concatenate([[0.0], np.cumsum(spans)])
    more = len(at) > len(t)  # sampled frames decoded but not collected (a Ctrl-C)
    ends = np.append(pos[1:], at[len(t)] if more else len(d))
    out = total[ends] - total[pos]
    if not (finished or more):  # stopped before the next sampled frame was decoded
        own = total[len(d) - 1] - total[pos[-1]]  # to the last frame decoded
        out[-1] = min(out[-1], max(own, float(period)))
    out[np.abs(out - period) <= jitter] = period
    return out


def _decoded_spans(
    d: np.ndarray, period: float, finished: bool, last_duration: float = math.nan
) -> np.ndarray:
    """Seconds each decoded frame (times ``d``) is shown (see :func:`sample_seconds`)."""
    gaps = np.clip(np.diff(d), 0.0, None)
    before = np.concatenate([[0.0], gaps[:-1]])
    after = np.concatenate([gaps[1:], [0.0]])
    hole = (gaps > 2.0 * period) & (gaps > 2.0 * np.maximum(before, after))
    gaps = np.where(hole, 2.0 * period, gaps)
    if finished and math.isfinite(last_duration) and last_duration > 0:
        last = float(last_duration)
    else:
        last = float(gaps[-1]) if finished and len(gaps) else period
    return np.append(gaps, last)


def _seconds(collected: _FaceCollector, reader: FrameReader) -> np.ndarray:
    """:func:`sample_seconds` of the frames sampled so far."""
    times = collected.sample_times
    if len(reader.sampled_at) < len(times):  # pragma: no cover - every slot was read
        return sample_seconds(times, reader.sample_period, reader.sample_jitter)
    return sample_seconds(
        times,
        reader.sample_period,
        reader.sample_jitter,
        reader.decoded_times,
        reader.sampled_at,
        reader.finished,
        reader.last_duration,
    )


def _duration(reader: FrameReader) -> float:
    """The cap on time on screen: the video's declared duration, or the time its decoded
    frames span when that is longer (recordings joined end to end, whose timestamps restart
    and are timed on, outlast what the first one declares); when none is declared (raw
    streams), the frames decoded at the source rate; else ``inf``."""
    duration = reader.info.duration
    if math.isfinite(duration) and duration > 0:
        decoded = np.asarray(reader.decoded_times, dtype=np.float64)
        if len(decoded) < 2:
            return duration
        spans = _decoded_spans(decoded, reader.sample_period, reader.finished, reader.last_duration)
        return max(duration, float(spans.sum()))
    fps = reader.info.fps
    if reader.n_decoded and math.isfinite(fps) and fps > 0:
        return reader.n_decoded / fps
    return math.inf


def _person_stats(
    faces: list[VideoFace],
    persons: np.ndarray,
    emotions: np.ndarray,
    classes: tuple[str, ...],
    tags: list[tuple[str, ...]],
    seconds: np.ndarray,
    n_sampled: int,
    period: float,
    cfg: VideoConfig,
    duration: float = math.inf,
) -> list[PersonStats]:
    """Statistics of every person with at least one accepted face (a "person" made only of
    rejected detections is most likely not a face at all); ``seconds``: what each sampled
    frame stands for (:func:`sample_seconds`), adding up to the time on screen."""
    stats = []
    for p in sorted(int(v) for v in np.unique(persons) if v >= 0):
        idx = np.flatnonzero(persons == p)
        slots = sorted({faces[i].slot for i in idx})
        acc = [int(i) for i in idx if faces[i].quality.ok]
        if not acc:
            continue
        rejected = Counter(r for i in idx for r in faces[int(i)].quality.reasons)
        shares: dict[str, float] = {}
        if classes and acc:
            top = Counter(int(np.argmax(emotions[i])) for i in acc)
            shares = {c: top.get(k, 0) / len(acc) for k, c in enumerate(classes)}
        times = [faces[i].time for i in idx]
        moments = _moments(
            [faces[i].time for i in acc], [tags[i] for i in acc], gap=(cfg.max_gap + 1.5) * period
        )
        on_screen = sum(float(seconds[s]) if s < len(seconds) else period for s in slots)
        stats.append(
            PersonStats(
                person=p,
                frames_present=len(slots),
                appearance_rate=len(slots) / n_sampled if n_sampled else 0.0,
                time_on_screen=min(on_screen, duration),
                first_seen=float(min(times)),
                last_seen=float(max(times)),
                faces_accepted=len(acc),
                rejected=dict(sorted(rejected.items())),
                emotion_shares=shares,
                tagged_moments=tuple(moments),
            )
        )
    return stats


def _person_summaries(
    faces: list[VideoFace],
    stats: list[PersonStats],
    persons: np.ndarray,
    values: np.ndarray,
    cfg: VideoConfig,
    out: list[PersonSummary],
) -> None:
    """Stage 6: the expression summary of each person of ``stats`` with accepted faces whose
    ``values`` (smoothed embeddings or codes) are finite, appended to ``out`` one by one (a
    Ctrl-C keeps those done)."""
    from exprsim.apps.summarize import summarize

    for st in stats:
        idx = np.flatnonzero(persons == st.person)
        usable = [int(i) for i in idx if faces[i].quality.ok and np.isfinite(values[i]).all()]
        if usable:
            k = max(1, min(cfg.n_summary, len(usable)))
            summary = summarize(values[usable], n_clusters=k, method=cfg.summary_method)
            out.append(PersonSummary(st.person, tuple(usable), summary))
