"""Many images through the face front-end, a few at a time, in input order.

:func:`analyze_stream` reads, detects, aligns and assesses the faces of a stream of images
with ``workers`` threads and yields one :class:`ImageFaces` per input, in input order, as
soon as it and every input before it are done. At most ``window`` images are in flight, so
memory stays bounded however long the stream (a folder of 10,000 photos is read lazily).

Why threads: JPEG decoding (OpenCV / PIL), the MediaPipe graphs, ``cv2.warpAffine`` and
torch all release the GIL, so two threads keep two cores busy. Each worker thread builds
its own detector (detectors are not thread-safe), once per thread and detector name. The
process has one pool of worker threads, as large as the largest ``workers`` asked for (each
stream runs at most its own ``workers`` images at once); the pool and its detectors live
until :func:`shutdown_workers` (or the end of the process), so repeated calls pay the
start-up (about a second per MediaPipe graph) once.
"""

from __future__ import annotations

import atexit
import collections
import functools
import logging
import os
import threading
from collections.abc import Generator, Iterable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from exprsim.errors import ImageError
from exprsim.faces.align import AlignConfig
from exprsim.faces.detect import DEFAULT_DETECTOR, Detector
from exprsim.faces.quality import QualityConfig
from exprsim.faces.types import AlignedFace

log = logging.getLogger(__name__)

#: Most worker threads by default (beyond that, MediaPipe and torch threads compete with
#: each other; measured in docs/benchmarks.md).
MAX_DEFAULT_WORKERS = 2


def default_workers() -> int:
    """Worker threads when the caller names none: the cores this process may use
    (:func:`exprsim.faces.litert.available_cores`: CPU set and cgroup quota, not the
    host's core count), at most :data:`MAX_DEFAULT_WORKERS`."""
    from exprsim.faces.litert import available_cores

    return min(MAX_DEFAULT_WORKERS, available_cores())


#: most worker threads per available core: each holds its own detector (~12 MB) and a
#: decoded image, and more threads than this only add memory on a CPU-bound job
WORKERS_PER_CORE = 4


def _whole(workers: object) -> int:
    """``workers`` if it is an integer >= 1 (0, -1 and 2.5 were clamped or cut silently)."""
    from exprsim.errors import ArgumentError, require_positive_int

    return require_positive_int(workers, "workers", ArgumentError)


def cap_workers(workers: int) -> int:
    """``workers`` clamped to ``[1, WORKERS_PER_CORE * available cores]`` (with a warning
    when lowered: ``--workers 100000`` would build a detector per thread)."""
    from exprsim.faces.litert import available_cores

    most = WORKERS_PER_CORE * available_cores()
    if workers > most:
        log.warning("%d workers asked for, %d used (%d cores)", workers, most, available_cores())
        return most
    return max(1, workers)


@dataclass(frozen=True)
class ImageFaces:
    """The faces of one input image.

    Attributes:
        index: position of the input in the stream (0-based).
        source: the file name, the name given with a ``(name, data)`` pair, or
            ``"<bytes #i>"`` / ``"<array #i>"`` (``i``: ``index``).
        faces: as :func:`exprsim.faces.pipeline.analyze_image` returns them (empty when
            the image could not be read).
        error: why the image could not be read, else ``None``.
        timings: seconds spent on this image's ``"detect"`` and ``"align"`` (quality
            included) stages, in its worker thread.
        guided: the faces were searched only near the faces of an earlier frame
            (:class:`TrackGuide`), so a face that has just come in may have been missed
            (:func:`search_near` finds it afterwards).
    """

    index: int
    source: str
    faces: tuple[AlignedFace, ...] = ()
    error: ImageError | None = None
    timings: dict[str, float] = field(default_factory=dict)
    guided: bool = False


def source_name(item: Any, position: int | None = None) -> str:
    """The name an input is reported under (see :class:`ImageFaces`), printable (a file
    name's undecodable bytes and control characters escaped): a path as given, the name
    of a ``(name, data)`` pair, else ``"<bytes>"`` / ``"<array>"``, numbered with the
    input's ``position`` (from 0) when given (``"<array #2>"``), so that the faces of
    several in-memory images can be told apart."""
    from exprsim.errors import printable

    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        return printable(item[0])
    if isinstance(item, str | os.PathLike):  # os.DirEntry too: it was "<array>"
        return printable(os.fsdecode(item))
    from PIL import Image

    name = "bytes" if isinstance(item, bytes | bytearray | memoryview) else "array"
    name = "image" if isinstance(item, Image.Image) else name
    return f"<{name}>" if position is None else f"<{name} #{position}>"


def read_item(item: Any) -> Any:
    """Decode one input: a path, encoded bytes, an array, or a ``(name, path | bytes |
    array)`` pair whose name is used in error messages.

    Raises:
        ImageError: the input cannot be read.
    """
    from PIL import Image

    from exprsim.io import as_rgb8, decode_image, load_image, pixels_within

    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        name, data = item
        if isinstance(data, bytes | bytearray | memoryview):
            return decode_image(bytes(data), name)
        if isinstance(data, str | os.PathLike | Image.Image):
            return load_image(data)
        return as_rgb8(data, name)
    if isinstance(item, np.ndarray):  # read only: no copy (load_image gives the caller one)
        return pixels_within(item)
    return load_image(item)


_local = threading.local()
_pools_lock = threading.RLock()  # re-entrant: see exprsim.forking
#: the process's pool of front-end threads (one per process: a forked child starts its own)
_pool_now: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, size, pool)
#: pools replaced by a larger one (pid, pool): their threads finish the work handed to
#: them, then exit
_retired: list[tuple[int, ThreadPoolExecutor]] = []
#: the detectors each thread built (pid, thread, detector), closed once the thread is gone
_built: list[tuple[int, threading.Thread, Detector]] = []
_exit_hook = False


def _free_pools_lock() -> None:
    """In a forked child: a free :data:`_pools_lock` (a parent thread held it). The
    parent's pools are the parent's: the child's are keyed by its own pid."""
    global _pools_lock
    from exprsim.forking import fresh_lock

    _pools_lock = fresh_lock(_pools_lock)


def _thread_detector(name: str) -> Detector:
    """This thread's own instance of the named detector (built on first use)."""
    from exprsim.faces.detect import create_detector

    cache: dict[str, Detector] | None = getattr(_local, "detectors", None)
    if cache is None:
        cache = _local.detectors = {}
    if name not in cache:
        cache[name] = create_detector(name)
        with _pools_lock:
            _built.append((os.getpid(), threading.current_thread(), cache[name]))
    return cache[name]


def _release_dead() -> None:
    """Close the detectors of worker threads that have exited. A forked child forgets its
    parent's (they are the parent's to close)."""
    pid = os.getpid()
    with _pools_lock:
        dead = [det for p, t, det in _built if p == pid and not t.is_alive()]
        _built[:] = [e for e in _built if e[0] == pid and e[1].is_alive()]
    for det in dead:
        close = getattr(det, "close", None)
        if close is not None:
            try:
                close()
            except Exception as exc:  # a detector that fails to close is still dropped
                log.debug("closing %r: %s", det, exc)


def _pool(workers: int) -> ThreadPoolExecutor:
    """The process's pool of front-end threads, with at least ``workers`` threads.

    One pool per process, as large as the largest request so far: a larger request
    replaces it, and the smaller one's threads exit once the work handed to them is done
    (their detectors are closed by a later call). Each stream runs at most its own
    ``workers`` images at once on it (:class:`_Limited`).
    """
    global _pool_now, _exit_hook
    from exprsim import forking

    forking.in_child(_free_pools_lock)
    with _pools_lock:
        pid = os.getpid()
        now = _pool_now if _pool_now is not None and _pool_now[0] == pid else None
        if now is None or now[1] < workers:
            if now is not None:
                now[2].shutdown(wait=False)
                _retired.append((pid, now[2]))
            pool = ThreadPoolExecutor(workers, thread_name_prefix="exprsim-faces")
            now = _pool_now = (pid, workers, pool)
            if not _exit_hook:
                atexit.register(_shutdown_at_exit)
                _exit_hook = True
        return now[2]


def _take_pools() -> list[ThreadPoolExecutor]:
    """This process's pools, current and retired, forgotten here."""
    global _pool_now
    pid = os.getpid()
    with _pools_lock:
        now = [_pool_now] if _pool_now is not None else []
        pools = [pool for p, pool in _retired if p == pid]
        pools += [pool for p, _, pool in now if p == pid]
        _retired.clear()
        _pool_now = None
    return pools


def _shutdown_at_exit() -> None:
    for pool in _take_pools():
        pool.shutdown(wait=False, cancel_futures=True)


def shutdown_workers(wait: bool = True) -> None:
    """Stop the front end's worker threads and close the detectors they built.

    The threads of :func:`analyze_stream` (and so of ``Embedder.embed_images`` on several
    images) live as long as the process by default, each with its own detector (tens of
    MB), so that later calls skip the start-up. A long-running service can hand them back
    with this; a later call builds them again. Safe at any time: images already handed to
    a thread are finished (``wait``: before this returns), and a stream still running goes
    on with new threads. Detectors of other threads (the shared ones of
    :func:`exprsim.faces.pipeline.analyze_image`) are not touched.
    """
    for pool in _take_pools():
        pool.shutdown(wait=wait)
    _release_dead()


class _Limited:
    """One stream's tasks on the shared pool: at most ``limit`` of them handed to it at
    once; the others wait here, in order, and start as running ones finish (from the pool
    thread that finished one, so the consumer needs not be pulling)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.running = limit, 0
        self.waiting: collections.deque[tuple[Future[Any], Any, tuple[Any, ...]]] = (
            collections.deque()
        )
        self.started: set[Future[Any]] = set()
        self.lock = threading.RLock()

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        with self.lock:
            self.waiting.append((fut, fn, args))
        self._start()
        return fut

    def _start(self) -> None:
        while True:
            # held while handing over: the pool gets a stream's tasks in input order (a
            # guided frame waits for an earlier one, which must be running by then)
            with self.lock:
                if self.running >= self.limit or not self.waiting:
                    return
                fut, fn, args = self.waiting.popleft()
                if not fut.set_running_or_notify_cancel():
                    continue  # cancelled while waiting
                try:
                    inner = _submit(self.limit, fn, *args)
                except BaseException as exc:  # shut down for good: the interpreter exits
                    fut.set_exception(exc)
                    continue
                self.running += 1
                self.started.add(inner)
            inner.add_done_callback(functools.partial(self._done, fut))

    def _done(self, fut: Future[Any], inner: Future[Any]) -> None:
        with self.lock:
            self.running -= 1
            self.started.discard(inner)
        if inner.cancelled():
            fut.set_exception(CancelledError())
        elif inner.exception() is not None:
            fut.set_exception(inner.exception())
        else:
            fut.set_result(inner.result())
        self._start()

    def cancel(self) -> None:
        """Drop every task not started yet (the stream stopped early)."""
        with self.lock:
            waiting, started = list(self.waiting), list(self.started)
            self.waiting.clear()
        for fut, _, _ in waiting:
            fut.cancel()
        for inner in started:
            inner.cancel()  # still queued in the pool: never runs


def _submit(workers: int, fn: Any, *args: Any) -> Future[Any]:
    """``fn(*args)`` on the process's pool; on a new one if that was shut down meanwhile
    (:func:`shutdown_workers`, or a larger pool replacing it)."""
    for _ in range(3):
        pool = _pool(workers)
        try:
            return pool.submit(fn, *args)
        except RuntimeError:
            with _pools_lock:
                replaced = _pool_now is None or _pool_now[2] is not pool
            if not replaced:
                raise
    return _pool(workers).submit(fn, *args)


class TrackGuide:
    """Detection guided by the faces of the last full pass, for video streams.

    Every ``redetect_every``-th frame runs the full detector; each frame between two full
    passes searches only around the faces the last one found
    (:meth:`~exprsim.faces.detect.BaseDetector.detect_near`; it waits for that frame, so
    the result depends neither on thread timing nor on the number of threads). A frame
    whose full pass found no face runs the full detector too. A region that lost its face
    falls back to the full detector for that frame, so a face seen before is never dropped
    by the shortcut; a *new* face is found at the next full pass at the latest
    (``redetect_every`` sampled frames). Hints never come from a guided frame, so a guided
    frame's small framing error does not carry over to the next one.

    Args:
        redetect_every: full detection on every this-many-th frame (1: always, no guide).
        margin: how far around a hint box its search region reaches, as a fraction of the
            box's size on each side.
        lag: ignored (a ``DeprecationWarning``): hints came from the frame ``lag`` back,
            and the answers depended on it.
    """

    #: full passes remembered (a few boxes each): more than any stream's window of frames
    #: in flight spans; a frame further behind would get a full pass itself
    KEPT_PASSES = 4096

    def __init__(
        self, redetect_every: int = 5, margin: float = 0.5, lag: int | None = None
    ) -> None:
        if lag is not None:
            import warnings

            warnings.warn(
                "TrackGuide's lag is ignored: hints come from the last full pass",
                DeprecationWarning,
                stacklevel=2,
            )
        if redetect_every < 1:
            raise ValueError("redetect_every must be at least 1")
        self.every, self.margin = int(redetect_every), float(margin)
        self._boxes: dict[int, np.ndarray | None] = {}
        self._events: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._floor = 0  # full passes before this frame are forgotten
        self.guided = 0  # frames detected around hints only
        self.fallbacks = 0  # guided frames that needed the full detector after all

    def _event(self, index: int) -> threading.Event:
        with self._lock:
            return self._event_held(index)

    def _event_held(self, index: int) -> threading.Event:
        """Frame ``index``'s event (made now if new), with ``_lock`` held."""
        ev = self._events.get(index)
        if ev is None:
            ev = self._events[index] = threading.Event()
            if self._closed:
                ev.set()
        return ev

    def hints(self, index: int, timeout: float = 60.0) -> np.ndarray | None:
        """``(K, 4)`` boxes to search around in frame ``index``, or ``None``: full pass."""
        if self.every == 1 or index % self.every == 0:
            return None
        # the last full pass (it may still be running: every earlier frame is, or is done,
        # so waiting for it is safe)
        j = (index // self.every) * self.every
        with self._lock:  # the floor and the event at once: done() may move the floor
            if j < self._floor:  # forgotten (far behind the frames in flight): full pass
                return None
            ev = self._event_held(j)
        if not ev.wait(timeout):
            log.warning("frame %d: guide frame %d not done after %.0f s", index, j, timeout)
            return None
        with self._lock:
            boxes = self._boxes.get(j)
        return boxes if boxes is not None and len(boxes) else None

    def done(self, index: int, boxes: np.ndarray | None) -> None:
        """Record frame ``index``'s face boxes (``None``: unreadable) for later frames (only
        a full pass's are kept: no frame takes hints from another)."""
        if index % self.every:
            return
        with self._lock:
            self._boxes[index] = boxes
            floor = index - self.KEPT_PASSES * self.every
            if floor > self._floor:
                for old in [k for k in self._boxes if k < floor]:
                    del self._boxes[old]
                for old in [k for k in self._events if k < floor]:
                    del self._events[old]
                self._floor = floor
        self._event(index).set()

    def close(self) -> None:
        """Release every waiting frame (the stream stopped early)."""
        with self._lock:
            self._closed = True
            events = list(self._events.values())
        for ev in events:
            ev.set()

    def detect(self, det: Any, image: np.ndarray, index: int) -> list[Any]:
        """Frame ``index``'s faces through ``det``, guided when it can be."""
        return self.detect_guided(det, image, index)[0]

    def detect_guided(self, det: Any, image: np.ndarray, index: int) -> tuple[list[Any], bool]:
        """:meth:`detect`, and whether the faces were searched near the hints only (no
        full pass: a face that came in since may have been missed)."""
        hints = self.hints(index) if hasattr(det, "detect_near") else None
        if hints is not None:
            with self._lock:
                self.guided += 1
            faces = det.detect_near(image, hints, self.margin)
            if faces is not None:
                return list(faces), True
            with self._lock:
                self.fallbacks += 1
        return list(det.detect(image)), False


class _GuidedFrame:
    """One frame's detector for :func:`~exprsim.faces.pipeline.analyze_image`."""

    def __init__(self, det: Any, guide: TrackGuide, index: int) -> None:
        self.det, self.guide, self.index = det, guide, index
        self.name = getattr(det, "name", "")
        #: the plain detector, for a search of another image than this frame (the
        #: orientation check's look at the frame turned by 180 degrees)
        self.unguided = det
        self.guided = False  # the frame's faces were searched near the hints only

    def detect(self, image: np.ndarray) -> list[Any]:
        faces, self.guided = self.guide.detect_guided(self.det, image, self.index)
        return faces


class _NearOnly:
    """A detector for :func:`search_near`: faces around the hint boxes only (none when
    the region holds none; no full pass)."""

    def __init__(self, det: Any, hints: np.ndarray, margin: float) -> None:
        self.det, self.hints, self.margin = det, hints, margin
        self.name = getattr(det, "name", "")
        self.unguided = det

    def detect(self, image: np.ndarray) -> list[Any]:
        if hasattr(self.det, "detect_near"):
            return list(self.det.detect_near(image, self.hints, self.margin) or [])
        # a detector without a region search: every face, kept when its centre is in a region
        grow = (self.hints[:, 2:] - self.hints[:, :2]) * self.margin
        low, high = self.hints[:, :2] - grow, self.hints[:, 2:] + grow
        keep = []
        for face in self.det.detect(image):
            centre = (np.asarray(face.box[:2], np.float64) + face.box[2:]) / 2
            if ((low <= centre) & (centre <= high)).all(axis=1).any():
                keep.append(face)
        return keep


def search_near(
    image: np.ndarray,
    hints: np.ndarray,
    detector: str | Detector,
    align_config: AlignConfig | None = None,
    quality_config: QualityConfig | None = None,
    margin: float = 0.5,
    timings: dict[str, float] | None = None,
) -> list[AlignedFace]:
    """The faces of ``image`` around the ``(K, 4)`` ``hints`` only (each grown by
    ``margin`` x its size on every side), aligned and assessed as
    :func:`~exprsim.faces.pipeline.analyze_image` does; empty when none is there.

    For a face a guided frame may have missed (:attr:`ImageFaces.guided`): the video
    pipeline looks for a face that a full pass found in the frames before it. A detector
    name runs on the calling thread's own instance (as the worker threads do).
    """
    from exprsim.faces.pipeline import analyze_image

    det: Any = _thread_detector(detector) if isinstance(detector, str) else detector
    near: Any = _NearOnly(det, np.asarray(hints, np.float64).reshape(-1, 4), margin)
    return analyze_image(image, near, align_config, quality_config, timings=timings)


def _analyze_one(
    index: int,
    item: Any,
    detector: str | Detector,
    align_config: AlignConfig | None,
    quality_config: QualityConfig | None,
    guide: TrackGuide | None = None,
) -> ImageFaces:
    from exprsim.faces.pipeline import analyze_image
    from exprsim.io import out_of_memory

    boxes = None
    try:
        name = source_name(item, index)
        try:
            image = read_item(item)
        except ImageError as exc:
            return ImageFaces(index, name, (), exc)
        det: Any = _thread_detector(detector) if isinstance(detector, str) else detector
        if guide is not None:
            det = _GuidedFrame(det, guide, index)
        timings: dict[str, float] = {}
        try:
            faces = analyze_image(image, det, align_config, quality_config, timings=timings)
        except Exception as exc:  # this image alone: the batch goes on
            if not out_of_memory(exc):
                raise
            h, w = image.shape[:2]
            return ImageFaces(
                index, name, (), ImageError(name, f"not enough memory to analyse it ({w}x{h})")
            )
        boxes = np.array([af.face.box for af in faces], np.float64).reshape(-1, 4)
        guided = isinstance(det, _GuidedFrame) and det.guided
        return ImageFaces(index, name, tuple(faces), None, timings, guided)
    finally:
        if guide is not None:  # always: later frames wait for this one
            guide.done(index, boxes)


def analyze_stream(
    items: Iterable[Any],
    detector: str | Detector | None = None,
    align_config: AlignConfig | None = None,
    quality_config: QualityConfig | None = None,
    workers: int | None = None,
    window: int | None = None,
    guide: TrackGuide | None = None,
) -> Generator[ImageFaces, None, None]:
    """Detect, align and assess the faces of every input, ``workers`` images at a time.

    Args:
        items: paths, encoded bytes, ``(H, W, 3)`` uint8 RGB arrays, or ``(name, data)``
            pairs; read lazily (a generator is consumed as work frees up).
        detector: a registry name or ``None`` (the default detector): every worker thread
            uses its own instance. A detector *instance* is not thread-safe, so it runs
            in the calling thread, one image at a time.
        align_config, quality_config: as :func:`exprsim.faces.pipeline.analyze_image`.
        workers: worker threads (default :func:`default_workers`); 1 runs everything in
            the calling thread.
        window: most images read but not yet yielded (default ``4 * workers``).
        guide: consecutive video frames: search near the faces of the last full pass
            (:class:`TrackGuide`).

    Yields:
        One :class:`ImageFaces` per input, in input order. An unreadable input yields an
        entry with ``error`` set; other errors propagate.
    """
    from exprsim.faces.pipeline import resolve_detector

    workers = default_workers() if workers is None else cap_workers(_whole(workers))
    if detector is not None and not isinstance(detector, str):
        workers = 1  # one instance, not thread-safe
    if workers == 1:
        det = resolve_detector(detector)
        try:
            for i, item in enumerate(items):
                yield _analyze_one(i, item, det, align_config, quality_config, guide)
        finally:
            if guide is not None:
                guide.close()
        return
    name = detector if isinstance(detector, str) else DEFAULT_DETECTOR
    window = max(workers, window if window is not None else 4 * workers)
    _release_dead()  # detectors of threads a larger pool replaced
    tasks = _Limited(workers)
    queue: collections.deque[Future[ImageFaces]] = collections.deque()
    try:
        for i, item in enumerate(items):
            queue.append(
                tasks.submit(_analyze_one, i, item, name, align_config, quality_config, guide)
            )
            while len(queue) >= window or (queue and queue[0].done()):
                yield queue.popleft().result()
        while queue:
            yield queue.popleft().result()
    finally:
        tasks.cancel()  # stopped early (an error, Ctrl-C, the consumer broke off)
        if guide is not None:  # frames still running must not wait for cancelled ones
            guide.close()
