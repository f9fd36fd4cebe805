"""Background video jobs for the web app: upload -> job id -> progress -> report.

One worker thread runs the jobs in order (the model is shared); at most ``max_queued``
jobs wait or run at once, more are refused. Each job has its own folder
``<out_root>/<job id>/``: the upload (under the client's safe name, deleted when the job
ends), then the report and tables, and ``job.json`` with the outcome, so that finished
jobs are still found after the server restarts.

While a job waits or runs, its server holds a lock on ``<job folder>/.active`` (``flock``):
a job folder with neither ``job.json`` nor a held lock was left by a server that stopped
before the job ended; :meth:`VideoJobs.recover` (run at start-up) marks such a job failed,
saying so, and deletes its upload. With ``keep_days``, finished jobs older than that are
deleted (:meth:`VideoJobs.prune`: at start-up, whenever a job is submitted or ends, and
when an expired job is asked for).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import math
import os
import queue
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from exprsim.errors import ArgumentError

log = logging.getLogger(__name__)

#: a job id: 16 hex digits (anything else names no job, and never a folder)
_JOB_ID = re.compile(r"^[0-9a-f]{16}$")

#: finished jobs kept in memory; older ones are read back from their ``job.json``
_KEEP_IN_MEMORY = 256

#: the lock file a job's server holds while the job waits or runs
ACTIVE = ".active"

#: a job's statuses once it has ended
FINISHED = ("done", "failed")

#: the name of a job folder being made starts with this (:func:`_new_job_folder`)
_NEW = ".new-"

#: a job folder being made (:func:`_new_job_folder`) without its ``.active`` yet is left
#: alone this many seconds; older, it was left by a server that stopped while making it
_HALF_MADE_GRACE_S = 600.0
#: a job folder without any ``.active`` file was made by an exprsim from before the job
#: locks (a server of which may still run it, during an upgrade side by side): left alone
#: while its newest file is younger than this, then taken as abandoned
_UNLOCKED_JOB_GRACE_S = 24 * 3600.0

#: a clock this far behind a job's end is taken to have been set back: the job's age then
#: counts from now (:meth:`VideoJobs.prune`), not from a date years ahead
_CLOCK_SLACK_S = 3600.0

#: the error of a job whose server stopped before it ended (:meth:`VideoJobs.recover`)
INTERRUPTED = "the server stopped before this job ended; upload the video again"


def _try_lock(fh: IO[bytes]) -> bool:
    """Lock the open file ``fh`` (``flock``, not waiting); ``False`` when another process
    holds it. Where ``fcntl`` is missing (not POSIX) nothing is locked: ``True``."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return True
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True  # closing the file releases the lock


@contextlib.contextmanager
def _held(path: Path) -> Iterator[IO[bytes] | None]:
    """``path`` opened and locked (:func:`_try_lock`), or ``None`` when another process
    holds it."""
    with open(path, "a+b") as fh:
        yield fh if _try_lock(fh) else None


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
        keep_days: float | None = None,
        max_minutes: float | None = None,
    ) -> None:
        """``tags``: gives the reference faces each job tags its faces with, read when the
        job starts (``None``: no tags). ``keep_days``: finished jobs older than that many
        days are deleted, report and all (``None``: kept for good). ``max_minutes``: a job
        analyses the first that many minutes of its video at most (``None``: all of it)."""
        if max_queued < 1:
            raise ArgumentError(f"max_queued must be >= 1, got {max_queued}")
        if keep_days is not None and not keep_days > 0:
            raise ArgumentError(f"keep_days must be > 0, got {keep_days}")
        self.embedder = embedder
        self.tags = tags
        self.out_root = out_root
        self.max_queued = max_queued
        self.keep_days = keep_days
        self.max_minutes = max_minutes
        self._jobs: dict[str, VideoJob] = {}
        self._active: dict[str, IO[bytes]] = {}  # the held .active lock of each live job
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
            job_id = secrets.token_hex(8)
            out_dir = self.out_root / job_id
            shown = safe_name(name or source.name, default="video")
            moved = out_dir / "input" / shown
            try:
                active = _new_job_folder(out_dir)
            except OSError:
                source.unlink(missing_ok=True)
                raise
            try:
                os.replace(source, moved)
            except OSError:
                active.close()
                shutil.rmtree(out_dir, ignore_errors=True)
                source.unlink(missing_ok=True)
                raise
            self._active[job_id] = active
            self._pending += 1
            job = VideoJob(job_id, moved, out_dir, name=shown)
            self._jobs[job.id] = job
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, daemon=True)
                self._worker.start()
        self._queue.put(job)
        self.prune()
        return job

    def get(self, job_id: str) -> VideoJob | None:
        """The job with that id: in memory, else a finished one read from its folder
        (``None`` for an expired one, deleted now: see ``keep_days``)."""
        if not _JOB_ID.match(job_id):
            return None
        with self._lock:
            job = self._jobs.get(job_id)
        job = job if job is not None else self._load(job_id)
        if job is not None and job.status in FINISHED and self._expired(job.out_dir):
            self._delete(job.out_dir)
            return None
        return job

    def _job_dirs(self) -> list[Path]:
        try:
            return [d for d in self.out_root.iterdir() if _JOB_ID.match(d.name) and d.is_dir()]
        except OSError:  # no job yet (or an unreadable folder: nothing to clean there)
            return []

    def _expired(self, out_dir: Path) -> bool:
        """Whether the finished job in ``out_dir`` is older than ``keep_days`` (judged by
        its ``job.json``, written when it ended)."""
        if self.keep_days is None:
            return False
        outcome = out_dir / "job.json"
        try:
            ended = outcome.stat().st_mtime
            now = time.time()
            if ended - now > _CLOCK_SLACK_S:  # written while the clock ran ahead
                os.utime(outcome)
                ended = now
        except OSError:
            return False  # not finished (or not ours to judge)
        return now - ended > self.keep_days * 86400

    def _delete(self, out_dir: Path) -> None:
        with self._lock:
            self._jobs.pop(out_dir.name, None)
        shutil.rmtree(out_dir, ignore_errors=True)

    def prune(self) -> int:
        """Delete the finished jobs older than ``keep_days``; returns how many."""
        if self.keep_days is None:
            return 0
        gone = 0
        for out_dir in self._job_dirs():
            with self._lock:
                live = out_dir.name in self._active
            if not live and self._expired(out_dir):
                self._delete(out_dir)
                gone += 1
        if gone:
            log.info("video jobs: %d older than %g days deleted", gone, self.keep_days)
        return gone

    def recover(self) -> int:
        """Mark failed the jobs a stopped server left unfinished (a job folder without
        ``job.json`` whose ``.active`` lock nobody holds) and delete their uploads; returns
        how many. A job another running server holds is left alone. Job folders a stopped
        server left half made are deleted."""
        from exprsim.io import sweep_temporaries
        from exprsim.video.pipeline import PARTIAL_REPORT

        self._sweep_half_made()
        found = 0
        for out_dir in self._job_dirs():
            with self._lock:
                if out_dir.name in self._jobs or (out_dir / "job.json").exists():
                    continue
            if _finished_before_outcomes(out_dir):
                continue  # recorded done: not a job a stopped server left
            if _unlocked_and_recent(out_dir):
                log.warning(
                    "video job %s: made by an earlier exprsim, which may still run it; left "
                    "as it is (stop that server, and this one marks it failed after a day)",
                    out_dir.name,
                )
                continue
            try:
                with _held(out_dir / ACTIVE) as fh:
                    if fh is None or (out_dir / "job.json").exists():
                        continue  # another server's live job (or it just ended)
                    uploads = sorted(p.name for p in (out_dir / "input").glob("*"))
                    name = uploads[0] if uploads else ""
                    job = VideoJob(out_dir.name, out_dir / "input", out_dir, name=name)
                    job.status, job.error = "failed", INTERRUPTED
                    shutil.rmtree(out_dir / "input", ignore_errors=True)
                    sweep_temporaries(out_dir, PARTIAL_REPORT)  # a report half saved
                    _write_outcome(job)
                (out_dir / ACTIVE).unlink(missing_ok=True)
                found += 1
            except OSError as exc:
                log.warning("video job %s: cannot mark it interrupted (%s)", out_dir.name, exc)
        if found:
            log.info("video jobs: %d left unfinished by a stopped server marked failed", found)
        return found

    def _load(self, job_id: str) -> VideoJob | None:
        """A finished job read back from its ``job.json``; ``None`` when there is none, or
        it is unreadable (not JSON, not a JSON object, fields of the wrong kind). A status
        that is not a finished one (another program's or a newer exprsim's record: a job
        "running" for ever, polled for ever; one without a status was "no such job") is
        read as failed, saying so."""
        out_dir = self.out_root / job_id
        try:
            data = json.loads((out_dir / "job.json").read_text())
            if not isinstance(data, dict):
                return None
            status, error = data.get("status"), data.get("error")
            if status not in FINISHED:
                status, error = "failed", f"its record says {_shown(status)}: {_FOREIGN_RECORD}"
            total = data.get("total")
            return VideoJob(
                job_id,
                out_dir / "input",
                out_dir,
                name=str(data.get("name") or ""),
                status=str(status),
                done=int(data.get("done") or 0),
                total=total if _is_count(total) else None,
                error=str(error) if error is not None else "",
                summary=dict(data.get("summary") or {}),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _sweep_half_made(self) -> None:
        """Delete the job folders a stopped server left half made: an ``.active`` nobody
        holds, or none in a folder older than :data:`_HALF_MADE_GRACE_S` (a younger one
        is being made: its ``.active`` arrives locked, see :func:`_new_job_folder`)."""
        try:
            half = [d for d in self.out_root.glob(f"{_NEW}*") if _JOB_ID.match(d.name[len(_NEW) :])]
        except OSError:
            return
        for folder in half:
            try:  # never created here: a missing lock file is not a free one
                fh = open(folder / ACTIVE, "r+b")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                with contextlib.suppress(OSError):
                    if not _changed_within(folder.stat().st_mtime, _HALF_MADE_GRACE_S):
                        shutil.rmtree(folder, ignore_errors=True)
                continue
            except OSError:
                continue
            with fh:
                if _try_lock(fh):  # not another server's folder being made
                    shutil.rmtree(folder, ignore_errors=True)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._pending -= 1
                    self._forget_old()
                    fh = self._active.pop(job.id, None)
                if fh is not None:  # job.json is written: the job is no longer live
                    (job.out_dir / ACTIVE).unlink(missing_ok=True)
                    fh.close()
                self.prune()

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.status in FINISHED]
        for j in finished[: max(0, len(finished) - _KEEP_IN_MEMORY)]:
            del self._jobs[j.id]  # still found through its job.json

    def _run(self, job: VideoJob) -> None:
        """Analyse the job's video; its outcome is shown (``job.status``) only once its
        ``job.json`` is written: a client that saw ``done`` or ``failed`` finds it on disk,
        also after a restart."""
        job.status = "running"
        outcome = dataclasses.replace(job)  # filled here; ``job`` runs on meanwhile
        try:
            self._analyze(job, outcome)
        finally:
            shutil.rmtree(job.source.parent, ignore_errors=True)
            outcome.done, outcome.total = job.done, job.total
            if outcome.status not in FINISHED:  # stopped by what is not an Exception
                outcome.status, outcome.error = "failed", INTERRUPTED
            try:
                _write_outcome(outcome)
            except OSError as exc:
                log.warning("video job %s: cannot write its job.json (%s)", job.id, exc)
            job.summary, job.error, job.status = outcome.summary, outcome.error, outcome.status

    def _max_frames(self) -> int | None:
        """Sampled frames of :attr:`max_minutes` of video at the default rate."""
        from exprsim.video.frames import DEFAULT_FPS

        if self.max_minutes is None:
            return None
        return max(1, math.ceil(self.max_minutes * 60 * DEFAULT_FPS))

    def _analyze(self, job: VideoJob, outcome: VideoJob) -> None:
        """The analysis of :meth:`_run`: its tables and report in the job folder, its
        status, error and summary in ``outcome`` (a failure is said there, never raised,
        except ``BaseException`` s that are not ``Exception`` s)."""
        from exprsim.errors import ExprsimError
        from exprsim.video.pipeline import VideoConfig, analyze_video
        from exprsim.web.uploads import DISK_FULL

        cap = self._max_frames()

        def on_frame(done: int, total: int | None) -> None:
            job.done, job.total = done, total if total is None or cap is None else min(total, cap)

        try:
            refs = self.tags() if self.tags is not None else None
            analysis = analyze_video(
                job.source,
                self.embedder,
                VideoConfig(max_frames=cap),
                tag_references=refs,
                on_frame=on_frame,
                keep_on_interrupt=True,
            )
            # its warnings name the file: the client's name, never the server's path
            shown = tuple(w.replace(str(job.source), job.name) for w in analysis.warnings)
            shown += _cap_warning(analysis, cap, self.max_minutes)
            analysis = dataclasses.replace(analysis, warnings=shown)
            analysis.save(job.out_dir)
            accepted = sum(f.quality.ok for f in analysis.faces)
            outcome.summary = {
                "frames": analysis.n_sampled,
                "faces": accepted,
                "persons": analysis.n_persons,
            }
            outcome.status = "done"
        except ExprsimError as exc:
            # the message names the file: show the client's name, never the server's path
            outcome.status = "failed"
            outcome.error = str(exc).replace(str(job.source), job.name)
        except Exception as exc:  # never kill the server; say what happened
            outcome.status = "failed"
            if isinstance(exc, OSError) and exc.errno in DISK_FULL:
                log.warning("video job %s: the disk is full (%s)", job.id, exc)
                outcome.error = f"the server's disk is full ({exc.strerror or 'no space left'})"
            else:
                log.exception("video job %s failed", job.id)
                outcome.error = f"internal error ({type(exc).__name__})"


def _cap_warning(analysis: Any, cap: int | None, minutes: float | None) -> tuple[str, ...]:
    """The warning of an analysis stopped by the server's frame cap (``cap`` sampled
    frames, ``minutes`` at the default rate), when the video went on after it."""
    if cap is None or minutes is None or analysis.n_sampled < cap:
        return ()
    seconds = analysis.n_sampled * analysis.sample_period
    duration = float(analysis.info.duration)
    if math.isfinite(duration) and duration <= seconds + analysis.sample_period:
        return ()  # the video ended there
    return (
        f"analysis stopped after {cap} sampled frames ({seconds:.0f} s of video): the "
        f"server analyses at most {minutes:g} minutes at the default rate (exprsim serve "
        "--max-video-minutes)",
    )


def _new_job_folder(out_dir: Path) -> IO[bytes]:
    """Make the job folder ``out_dir`` with its ``input/`` folder and its ``.active`` lock
    held (returned: closed when the job ends). Made under a temporary name and renamed, so
    that no other server's :meth:`VideoJobs.recover` sees it before its lock is held; the
    lock file itself is locked under another name, then renamed ``.active``, so that it is
    never there unlocked (:meth:`VideoJobs._sweep_half_made`). Where ``fcntl`` is missing
    (not POSIX), nothing is locked.

    Raises:
        OSError: the folder cannot be made, or its lock is held by another process.
    """
    tmp = out_dir.with_name(f"{_NEW}{out_dir.name}")
    fh = None
    try:
        tmp.mkdir(parents=True)
        fh = open(tmp / f"{ACTIVE}.new", "xb")  # noqa: SIM115 - held until the job ends
        if not _try_lock(fh):
            raise OSError(errno.EAGAIN, "the new job folder's lock is held by another process")
        os.rename(tmp / f"{ACTIVE}.new", tmp / ACTIVE)  # the lock follows the file
        (tmp / "input").mkdir()
        os.rename(tmp, out_dir)
    except BaseException:
        if fh is not None:
            fh.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return fh


def _finished_before_outcomes(out_dir: Path) -> bool:
    """Record as done (its ``job.json``, with the summary its ``analysis.json`` gives) a job
    folder an exprsim before ``job.json`` finished: a whole ``report.html`` and
    ``analysis.json``, and no upload or lock left. It was marked failed ("the server
    stopped before this job ended") over a complete report. Whether it was so recorded."""
    if (out_dir / ACTIVE).exists() or (out_dir / "input").exists():
        return False
    try:
        doc = json.loads((out_dir / "analysis.json").read_text(encoding="utf-8"))
        finished = (out_dir / "report.html").is_file() and isinstance(doc, dict)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    if not finished:
        return False
    persons = doc.get("persons")

    def number(value: Any) -> int:
        return int(value) if isinstance(value, int | float) and math.isfinite(value) else 0

    job = VideoJob(out_dir.name, out_dir / "input", out_dir, status="done")
    job.summary = {
        "frames": number(doc.get("frames_sampled")),
        "faces": number(doc.get("faces_accepted")),
        "persons": len(persons) if isinstance(persons, list) else 0,
    }
    job.done = job.summary["frames"]
    try:
        _write_outcome(job)
    except OSError as exc:
        log.warning("video job %s: cannot record it done (%s)", out_dir.name, exc)
        return True  # left as it is, not marked failed
    log.info("video job %s: finished by an earlier exprsim; recorded done", out_dir.name)
    return True


#: why a job whose ``job.json`` holds no finished status is shown as failed
_FOREIGN_RECORD = "written by another program or a newer exprsim, not a finished job of this one"


def _shown(value: object) -> str:
    """A ``job.json`` value in a message: short, printable."""
    from exprsim.errors import printable

    return "no status" if value is None else f"status {printable(str(value))[:40]!r}"


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _unlocked_and_recent(out_dir: Path) -> bool:
    """Whether the job folder has no ``.active`` file but still its upload (an exprsim
    before the job locks made it: a job of this one has its lock until it ends, and its
    upload is gone when it ends) and a file in it changed within
    :data:`_UNLOCKED_JOB_GRACE_S`."""
    if (out_dir / ACTIVE).exists() or not any((out_dir / "input").glob("*")):
        return False
    with contextlib.suppress(OSError):
        for p in (out_dir, *out_dir.rglob("*")):
            if _changed_within(p.stat().st_mtime, _UNLOCKED_JOB_GRACE_S):
                return True
    return False


def _changed_within(mtime: float, seconds: float) -> bool:
    """Whether a file of time ``mtime`` changed within the last ``seconds``: a time ahead
    of the clock by more than :data:`_CLOCK_SLACK_S` was written while it ran ahead, not
    now (such a job was left alone, and said so at every start, until that date)."""
    now = time.time()
    return now - seconds < mtime <= now + _CLOCK_SLACK_S


def _write_outcome(job: VideoJob) -> None:
    """The job's ``job.json``, whole or not at all (a full disk must not leave an empty
    one: that job would read as no job at all)."""
    from exprsim.io import write_json

    write_json(job.out_dir / "job.json", job.to_dict())
