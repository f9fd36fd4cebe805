"""Many images through the face front-end, a few at a time, in input order.

:func:`analyze_stream` reads, detects, aligns and assesses the faces of a stream of images
with ``workers`` threads and yields one :class:`ImageFaces` per input, in input order, as
soon as it and every input before it are done. At most ``window`` images are in flight, so
memory stays bounded however long the stream (a folder of 10,000 photos is read lazily).

Why threads: JPEG decoding (OpenCV / PIL), the MediaPipe graphs, ``cv2.warpAffine`` and
torch all release the GIL, so two threads keep two cores busy. Each worker thread builds
its own detector (detectors are not thread-safe), once per thread and detector name; the
pool and its detectors live as long as the process, so repeated calls pay the start-up
(about a second per MediaPipe graph) once.
"""

from __future__ import annotations

import atexit
import collections
import os
import threading
from collections.abc import Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exprsim.errors import ImageError
from exprsim.faces.align import AlignConfig
from exprsim.faces.detect import DEFAULT_DETECTOR, Detector
from exprsim.faces.quality import QualityConfig
from exprsim.faces.types import AlignedFace

#: Worker threads by default: the machine's cores, at most 2 (beyond that, MediaPipe and
#: torch threads compete with each other; measured in docs/benchmarks.md).
DEFAULT_WORKERS = max(1, min(2, os.cpu_count() or 1))


@dataclass(frozen=True)
class ImageFaces:
    """The faces of one input image.

    Attributes:
        index: position of the input in the stream (0-based).
        source: the file name, the name given with a ``(name, data)`` pair, or
            ``"<bytes>"`` / ``"<array>"``.
        faces: as :func:`exprsim.faces.pipeline.analyze_image` returns them (empty when
            the image could not be read).
        error: why the image could not be read, else ``None``.
        timings: seconds spent on this image's ``"detect"`` and ``"align"`` (quality
            included) stages, in its worker thread.
    """

    index: int
    source: str
    faces: tuple[AlignedFace, ...] = ()
    error: ImageError | None = None
    timings: dict[str, float] = field(default_factory=dict)


def source_name(item: Any) -> str:
    """The name an input is reported under (see :class:`ImageFaces`)."""
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        return item[0]
    if isinstance(item, str | Path):
        return str(item)
    return "<bytes>" if isinstance(item, bytes | bytearray) else "<array>"


def read_item(item: Any) -> Any:
    """Decode one input: a path, encoded bytes, an array, or a ``(name, path | bytes |
    array)`` pair whose name is used in error messages.

    Raises:
        ImageError: the input cannot be read.
    """
    from exprsim.io import as_rgb8, decode_image, load_image

    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        name, data = item
        if isinstance(data, bytes | bytearray):
            return decode_image(bytes(data), name)
        if isinstance(data, str | Path):
            return load_image(data)
        return as_rgb8(data, name)
    return load_image(item)


_local = threading.local()
_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _thread_detector(name: str) -> Detector:
    """This thread's own instance of the named detector (built on first use)."""
    from exprsim.faces.detect import create_detector

    cache: dict[str, Detector] | None = getattr(_local, "detectors", None)
    if cache is None:
        cache = _local.detectors = {}
    if name not in cache:
        cache[name] = create_detector(name)
    return cache[name]


def _pool(workers: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``workers`` threads (one per process: safe after fork)."""
    key = (os.getpid(), workers)
    with _pools_lock:
        if key not in _pools:
            _pools[key] = ThreadPoolExecutor(workers, thread_name_prefix="exprsim-faces")
        return _pools[key]


@atexit.register
def _shutdown_pools() -> None:
    for pool in _pools.values():
        pool.shutdown(wait=False, cancel_futures=True)


def _analyze_one(
    index: int,
    item: Any,
    detector: str | Detector,
    align_config: AlignConfig | None,
    quality_config: QualityConfig | None,
) -> ImageFaces:
    from exprsim.faces.pipeline import analyze_image

    name = source_name(item)
    try:
        image = read_item(item)
    except ImageError as exc:
        return ImageFaces(index, name, (), exc)
    det = _thread_detector(detector) if isinstance(detector, str) else detector
    timings: dict[str, float] = {}
    faces = analyze_image(image, det, align_config, quality_config, timings=timings)
    return ImageFaces(index, name, tuple(faces), None, timings)


def analyze_stream(
    items: Iterable[Any],
    detector: str | Detector | None = None,
    align_config: AlignConfig | None = None,
    quality_config: QualityConfig | None = None,
    workers: int | None = None,
    window: int | None = None,
) -> Generator[ImageFaces, None, None]:
    """Detect, align and assess the faces of every input, ``workers`` images at a time.

    Args:
        items: paths, encoded bytes, ``(H, W, 3)`` uint8 RGB arrays, or ``(name, data)``
            pairs; read lazily (a generator is consumed as work frees up).
        detector: a registry name or ``None`` (the default detector): every worker thread
            uses its own instance. A detector *instance* is not thread-safe, so it runs
            in the calling thread, one image at a time.
        align_config, quality_config: as :func:`exprsim.faces.pipeline.analyze_image`.
        workers: worker threads (default :data:`DEFAULT_WORKERS`); 1 runs everything in
            the calling thread.
        window: most images read but not yet yielded (default ``4 * workers``).

    Yields:
        One :class:`ImageFaces` per input, in input order. An unreadable input yields an
        entry with ``error`` set; other errors propagate.
    """
    from exprsim.faces.pipeline import resolve_detector

    workers = DEFAULT_WORKERS if workers is None else max(1, int(workers))
    if detector is not None and not isinstance(detector, str):
        workers = 1  # one instance, not thread-safe
    if workers == 1:
        det = resolve_detector(detector)
        for i, item in enumerate(items):
            yield _analyze_one(i, item, det, align_config, quality_config)
        return
    name = detector if isinstance(detector, str) else DEFAULT_DETECTOR
    window = max(workers, window if window is not None else 4 * workers)
    pool = _pool(workers)
    queue: collections.deque[Future[ImageFaces]] = collections.deque()
    try:
        for i, item in enumerate(items):
            queue.append(pool.submit(_analyze_one, i, item, name, align_config, quality_config))
            while len(queue) >= window or (queue and queue[0].done()):
                yield queue.popleft().result()
        while queue:
            yield queue.popleft().result()
    finally:
        for fut in queue:  # stopped early (an error, Ctrl-C, the consumer broke off)
            fut.cancel()
