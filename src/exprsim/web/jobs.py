"""Background video jobs for the web app: upload -> job id -> progress -> report."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class VideoJob:
    """One video analysis.

    Attributes:
        id: random job id (also the report folder's name).
        status: ``queued``, ``running``, ``done`` or ``failed``.
        done, total: sampled frames processed and expected (``total`` may be ``None``).
        error: why it failed (one line).
        out_dir: where ``report.html`` and the tables are written.
    """

    id: str
    source: Path
    out_dir: Path
    status: str = "queued"
    done: int = 0
    total: int | None = None
    error: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "done": self.done,
            "total": self.total,
            "error": self.error,
            "summary": self.summary,
            "report": f"/api/videos/{self.id}/report" if self.status == "done" else None,
        }


class VideoJobs:
    """Runs video analyses one at a time in a worker thread (the model is shared)."""

    def __init__(self, embedder: Any, out_root: Path) -> None:
        self.embedder = embedder
        self.out_root = out_root
        self._jobs: dict[str, VideoJob] = {}
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()

    def submit(self, source: Path) -> VideoJob:
        job = VideoJob(secrets.token_hex(8), source, self.out_root / secrets.token_hex(8))
        with self._lock:
            self._jobs[job.id] = job
        threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return job

    def get(self, job_id: str) -> VideoJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _run(self, job: VideoJob) -> None:
        from exprsim.errors import ExprsimError
        from exprsim.video.pipeline import analyze_video

        with self._run_lock:
            job.status = "running"

            def on_frame(done: int, total: int | None) -> None:
                job.done, job.total = done, total

            try:
                analysis = analyze_video(job.source, self.embedder, on_frame=on_frame)
                analysis.save(job.out_dir)
                accepted = sum(f.quality.ok for f in analysis.faces)
                job.summary = {
                    "frames": analysis.n_sampled,
                    "faces": accepted,
                    "persons": analysis.n_persons,
                }
                job.status = "done"
            except ExprsimError as exc:
                job.status, job.error = "failed", str(exc)
            except Exception as exc:  # never kill the server; say what happened
                log.exception("video job %s failed", job.id)
                job.status, job.error = "failed", f"internal error ({type(exc).__name__})"
