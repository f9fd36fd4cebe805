"""Background video jobs for the web app: upload -> job id -> progress -> report.

One worker thread runs the jobs in order (the model is shared); at most ``max_queued``
jobs wait or run at once, more are refused. Each job has its own folder
``<out_root>/<job id>/``: the upload (under the client's safe name, deleted when the job
ends), then the report and tables, and ``job.json`` with the outcome, so that finished
jobs are still found after the server restarts.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: a job id: 16 hex digits (anything else names no job, and never a folder)
_JOB_ID = re.compile(r"^[0-9a-f]{16}$")

#: finished jobs kept in memory; older ones are read back from their ``job.json``
_KEEP_IN_MEMORY = 256


class QueueFullError(Exception):
    """Too many video jobs are waiting; try again later."""


@dataclass
class VideoJob:
    """One video analysis.

    Attributes:
        id: random job id (16 hex digits; also the job folder's name).
        source: the uploaded video (inside the job folder; deleted when the job ends).
        out_dir: the job folder: ``report.html``, the tables and ``job.json``.
        name: the client's file name (safe to show).
        status: ``queued``, ``running``, ``done`` or ``failed``.
        done, total: sampled frames processed and expected (``total`` may be ``None``).
        error: why it failed (one line, without server paths).
    """

    id: str
    source: Path
    out_dir: Path
    name: str = ""
    status: str = "queued"
    done: int = 0
    total: int | None = None
    error: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "done": self.done,
            "total": self.total,
            "error": self.error,
            "summary": self.summary,
            "report": f"/api/videos/{self.id}/report" if self.status == "done" else None,
        }


class VideoJobs:
    """Runs video analyses one at a time in a worker thread (the model is shared)."""

    def __init__(
        self,
        embedder: Any,
        out_root: Path,
        max_queued: int = 8,
        tags: Callable[[], tuple[np.ndarray, list[str]] | None] | None = None,
    ) -> None:
        """``tags``: gives the reference faces each job tags its faces with, read when the
        job starts (``None``: no tags)."""
        if max_queued < 1:
            raise ValueError(f"max_queued must be >= 1, got {max_queued}")
        self.embedder = embedder
        self.tags = tags
        self.out_root = out_root
        self.max_queued = max_queued
        self._jobs: dict[str, VideoJob] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[VideoJob] = queue.Queue()
        self._pending = 0  # queued or running
        self._worker: threading.Thread | None = None

    def submit(self, source: Path, name: str = "") -> VideoJob:
        """Queue the video at ``source`` (moved into the job's folder).

        Raises:
            QueueFullError: ``max_queued`` jobs are already waiting or running (``source``
                is deleted).
        """
        from exprsim.web.uploads import safe_name

        with self._lock:
            if self._pending >= self.max_queued:
                source.unlink(missing_ok=True)
                raise QueueFullError(
                    f"{self._pending} video jobs are already queued or running; "
                    "try again when one has finished"
                )
            self._pending += 1
            job_id = secrets.token_hex(8)
            out_dir = self.out_root / job_id
            shown = safe_name(name or source.name, default="video")
            (out_dir / "input").mkdir(parents=True)
            moved = out_dir / "input" / shown
            os.replace(source, moved)
            job = VideoJob(job_id, moved, out_dir, name=shown)
            self._jobs[job.id] = job
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, daemon=True)
                self._worker.start()
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> VideoJob | None:
        """The job with that id: in memory, else a finished one read from its folder."""
        if not _JOB_ID.match(job_id):
            return None
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None else self._load(job_id)

    def _load(self, job_id: str) -> VideoJob | None:
        """A finished job read back from its ``job.json``; ``None`` when there is none, or
        it is unreadable (not JSON, not a JSON object, fields of the wrong kind)."""
        out_dir = self.out_root / job_id
        try:
            data = json.loads((out_dir / "job.json").read_text())
            if not isinstance(data, dict):
                return None
            return VideoJob(
                job_id,
                out_dir / "input",
                out_dir,
                name=str(data.get("name", "")),
                status=str(data["status"]),
                done=int(data.get("done", 0)),
                total=data.get("total"),
                error=str(data.get("error", "")),
                summary=dict(data.get("summary", {})),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._pending -= 1
                    self._forget_old()

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.status in ("done", "failed")]
        for j in finished[: max(0, len(finished) - _KEEP_IN_MEMORY)]:
            del self._jobs[j.id]  # still found through its job.json

    def _run(self, job: VideoJob) -> None:
        from exprsim.errors import ExprsimError
        from exprsim.video.pipeline import analyze_video

        job.status = "running"

        def on_frame(done: int, total: int | None) -> None:
            job.done, job.total = done, total

        try:
            refs = self.tags() if self.tags is not None else None
            analysis = analyze_video(
                job.source, self.embedder, tag_references=refs, on_frame=on_frame
            )
            analysis.save(job.out_dir)
            accepted = sum(f.quality.ok for f in analysis.faces)
            job.summary = {
                "frames": analysis.n_sampled,
                "faces": accepted,
                "persons": analysis.n_persons,
            }
            job.status = "done"
        except ExprsimError as exc:
            # the message names the file: show the client's name, never the server's path
            job.status, job.error = "failed", str(exc).replace(str(job.source), job.name)
        except Exception as exc:  # never kill the server; say what happened
            log.exception("video job %s failed", job.id)
            job.status, job.error = "failed", f"internal error ({type(exc).__name__})"
        finally:
            shutil.rmtree(job.source.parent, ignore_errors=True)
            try:
                (job.out_dir / "job.json").write_text(json.dumps(job.to_dict()))
            except OSError:
                log.warning("video job %s: cannot write its job.json", job.id)
