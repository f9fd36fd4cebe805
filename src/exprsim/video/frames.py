"""Video frames: decode a container (PyAV) or read an image sequence, keep timestamps.

:class:`FrameReader` yields :class:`Frame` objects (RGB array + source frame number +
seconds from the start of the video) sampled either by rate (``fps``, default 5: one
frame per 0.2 s of stream time, the first frame at or after each multiple of the period,
with half a source frame of tolerance) or every ``every``-th decoded frame. Frames not
sampled are decoded (H.264 cannot skip them) but never converted to RGB.

Supported inputs: anything FFmpeg demuxes (mp4/mov with H.264/H.265, webm/mkv with VP8/VP9,
avi, ...) and folders of images (in natural order: sorted by name, numbers by value, so
``frame2.png`` comes before ``frame10.png``, :func:`natural_key`; their timestamps are
``index / sequence_fps``, and each :class:`Frame` keeps its file name). A folder is a
sequence of chosen frames, so every image is used unless ``every`` is given (``fps``
applies to video files only).

The video stream read is the file's first one that is not an attached picture (the cover
art of an MP3/M4A, or a poster image: one still frame, FFmpeg's ``attached_pic``
disposition); a file with no other video stream has "no video stream".

Frames are turned as a player shows them: the display matrix of the stream (phones store
frames sideways; front cameras store them mirrored) is applied as FFmpeg's own autorotate
applies it (quarter turns and mirror images), and a still image file is turned by its EXIF
orientation as :func:`exprsim.io.load_image` turns it. Pixels that are not square (a
sample aspect ratio other than 1:1: anamorphic DVD and broadcast video) are stretched, as
players stretch them, to the size shown (the wider side grows), so faces are seen with
their true proportions and face boxes are in that size (:attr:`VideoInfo.width`,
:attr:`VideoInfo.height`). An animated WebP, which FFmpeg does not decode, is read with
Pillow.

Times keep increasing: where the timestamps jump back (recordings joined end to end, a
recorder restart), the frames after the jump are timed on from the frame before it, with a
warning. A frame of more than ``max_pixels`` pixels (:data:`MAX_FRAME_PIXELS` by default)
is refused before its pixels are converted (the frame size in the header is checked before
any frame is decoded).

Raw elementary streams (``.h264``, ``.h265``, ``.hevc``: no container) carry no timestamps
and no frame rate that FFmpeg reads; it times their frames at 25 fps whatever their real
rate. For such a file (and one that declares no rate at all) the reader assumes
:data:`ASSUMED_FPS` with a warning, or takes the rate from ``source_fps`` when given (frame
``i`` at ``i / source_fps`` seconds).

Corrupt or truncated streams end the iteration cleanly: packets the decoder cannot decode
are skipped and counted (:attr:`FrameReader.bad_packets`, with a warning at the end), a
demuxer error stops reading with a logged warning, and a stream that ends more than a
second before its declared duration is reported as truncated. Both are kept in :attr:`FrameReader.warnings` and
:attr:`FrameReader.truncated`, and everything yielded so far stays valid. A file that
cannot be opened at all (e.g. an mp4 whose index, stored at the end, was cut off) raises
:class:`VideoError`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import re
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from exprsim.equality import array_equality
from exprsim.errors import ExprsimError, printable, require_positive_int
from exprsim.handles import HoldsHandle

log = logging.getLogger(__name__)


def _pipe_reader(path: Path) -> BinaryIO | None:
    """``path``'s read end as a file when it is a named pipe, once a writer opened it
    (waited for at most :data:`exprsim.io.PIPE_WAIT_S`: FFmpeg's own open waited for ever,
    and a Ctrl-C then read as "Interrupted system call"); ``None`` for anything else,
    which FFmpeg opens by name. (A second open by name would wait for a writer again,
    after a quick writer had written everything and gone.)

    Raises:
        VideoError: nothing opened the pipe for writing in time.
    """
    import os
    import stat
    import threading

    from exprsim.io import PIPE_WAIT_S

    try:
        if not stat.S_ISFIFO(os.stat(path).st_mode):
            return None
    except (OSError, ValueError):
        return None
    held: list[int] = []
    opened = threading.Event()

    def open_reader() -> None:  # blocks until a writer opens the pipe
        with contextlib.suppress(OSError):
            held.append(os.open(path, os.O_RDONLY))
        opened.set()

    threading.Thread(target=open_reader, daemon=True, name="exprsim-pipe").start()
    if opened.wait(PIPE_WAIT_S) and held:
        return os.fdopen(held[0], "rb")
    with contextlib.suppress(OSError):  # release the waiting open: its writer a moment
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    opened.wait(1.0)
    for fd in held:
        os.close(fd)
    raise VideoError(
        f"{printable(str(path))}: a pipe that nothing wrote to within {PIPE_WAIT_S:g} s"
    )


#: Default sampling rate (sampled frames per second of video).
DEFAULT_FPS = 5.0
#: Frame rate assumed for image sequences (folders of images).
DEFAULT_SEQUENCE_FPS = 25.0
#: Frame rate assumed, with a warning, for a video file that declares none (FFmpeg's own
#: assumption for raw streams).
ASSUMED_FPS = 25.0
#: rate of an animation's frames that declare no duration (browsers show such GIF frames
#: about 10 per second)
ANIMATION_FPS = 10.0
#: FFmpeg's ``AVFMT_NOTIMESTAMPS`` demuxer flag: the format stores no timestamps (raw
#: elementary streams); FFmpeg makes them up from an assumed rate.
_AVFMT_NOTIMESTAMPS = 0x0080
#: FFmpeg's ``AV_DISPOSITION_ATTACHED_PIC`` stream flag: a still picture stored with the
#: file (album art, a poster), not a video.
_AV_DISPOSITION_ATTACHED_PIC = 0x0400
#: FFmpeg's ``AV_DISPOSITION_DEFAULT``: the stream a player picks
_AV_DISPOSITION_DEFAULT = 0x0001


#: sampling rates accepted: one frame per ~3 hours to 1,000 per second (more than any
#: source has: every frame is taken); beyond, the sampling arithmetic overflows
MIN_FPS, MAX_FPS = 1e-4, 1000.0

#: Largest frame read by default, in pixels: 8K video (7680 x 4320, 33 M pixels) and 8K
#: 360-degree video (8192 x 4096) pass; a 199 KB mp4 of 8192 x 8192 frames (67 M) would
#: hold gigabytes in frame threads and analysis workers.
MAX_FRAME_PIXELS = 50_000_000


class VideoError(ExprsimError):
    """A video that cannot be opened, has no video stream, or has no frame that decodes."""


@array_equality
@dataclass(frozen=True)
class Frame:
    """One sampled frame.

    Attributes:
        index: source frame number (0-based, decode order; a packet that could not be
            decoded counts as one lost frame, and so do the frames before the first one
            that decodes, counted from its timestamp: a stream cut in the middle of a group
            of pictures).
        time: seconds from the start of the video: of the container, as players count
            (a video stream that starts after the audio starts later than 0), from the
            timestamps (increasing: after a jump back of the timestamps, timed on from
            the frame before the jump).
        image: ``(H, W, 3)`` uint8 RGB.
        file: the image file's name for a frame of a folder, ``""`` for a video file.
    """

    index: int
    time: float
    image: np.ndarray
    file: str = ""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about the video (before decoding it).

    Attributes:
        source: path of the file or folder.
        width, height: frame size in pixels, as shown (square pixels, display rotation
            applied), the size of every frame read from a video file. For a
            video file whose display matrix turns its frames, the container's stored size
            until the first frame is decoded, the shown size from then on.
        fps: source frame rate (NaN when unknown; ``source_fps`` when the file declares
            none and it was given, :class:`FrameReader`).
        duration: the video stream's declared length in seconds (its own duration, else
            the container's less the time before the stream's first timestamp; NaN when
            unknown).
        n_frames: declared number of frames (0 when unknown).
        codec: codec name (``"images"`` for a folder).
    """

    source: str
    width: int
    height: int
    fps: float
    duration: float
    n_frames: int
    codec: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "duration": self.duration,
            "n_frames": self.n_frames,
            "codec": self.codec,
        }


class FrameReader(HoldsHandle):
    """Iterate over the sampled frames of a video file or image folder.

    Args:
        source: a video file or a folder of images.
        fps: sampled frames per second of a video file (ignored when ``every`` is given,
            and for folders, whose images are all used unless ``every`` is given).
        every: take every ``every``-th decoded frame instead (1 = all frames).
        max_frames: stop after this many sampled frames (an integer >= 1; ``None``: no
            limit).
        sequence_fps: frame rate given to image sequences.
        source_fps: frame rate of a source that declares none, in ``(0, 1000]``: a video
            file without timestamps of its own (a raw ``.h264``/``.h265`` stream) or without
            a frame rate, whose frame ``i`` is then at ``i / source_fps`` seconds, and a
            folder of images (instead of ``sequence_fps``). ``None``: such a file is read at
            :data:`ASSUMED_FPS` with a warning. A file that declares its rate keeps it (a
            warning says that ``source_fps`` was ignored).
        max_pixels: refuse frames (and images of a folder) with more pixels than this: a
            file whose header says so on creation, a frame of a size changed later when it
            is decoded (reading stops there, with a warning).

    Attributes:
        info: :class:`VideoInfo` (read when the reader is created).
        warnings: problems met while decoding (corrupt data, truncation).
        truncated: the stream ended early or with a decoder error.
        n_decoded: frames decoded so far (sampled or not).
        bad_packets: packets skipped because they could not be decoded (each one a lost
            frame: the frame numbers after it count it).
        leading_lost: frames before the first one that decodes (a stream cut in the middle
            of a group of pictures), counted from its timestamp; the frame numbers count
            them.
        decoded_times: seconds of every decoded frame (sampled or not), in order.
        sampled_at: the position in :attr:`decoded_times` of every sampled frame.
        finished: the whole source was read (not stopped by ``max_frames`` or a close).
        decode_seconds: time spent decoding and converting frames.

    A reader is iterated once (a second iteration raises :class:`VideoError`: create
    another reader); iterating to the end, or :meth:`close` (or leaving its ``with``
    block), releases the file.

    Raises:
        VideoError: an option of the wrong type or out of range, or the source does not
            exist, cannot be opened, has no video stream or frames over ``max_pixels`` (on
            creation); not one of its frames decodes, the first one is over
            ``max_pixels``, or the reader was already iterated or closed (when iterated).
    """

    not_pickled = (
        "a FrameReader does not pickle (it holds an open video): pass the video's path "
        "and open FrameReader(path) where it is read"
    )
    not_copied = (
        "a FrameReader is not copied (a copy would share its open video): open "
        "FrameReader(path) again"
    )
    refusal = VideoError

    def __init__(
        self,
        source: str | Path,
        fps: float | None = DEFAULT_FPS,
        every: int | None = None,
        max_frames: int | None = None,
        sequence_fps: float = DEFAULT_SEQUENCE_FPS,
        source_fps: float | None = None,
        max_pixels: int = MAX_FRAME_PIXELS,
    ) -> None:
        self.max_pixels = require_positive_int(max_pixels, "max_pixels", VideoError)
        # every option is checked, type first, before the file is opened
        if every is not None:
            every = require_positive_int(every, "every", VideoError)
        if max_frames is not None:
            max_frames = require_positive_int(max_frames, "max_frames", VideoError)
        if every is None:
            fps = _rate(fps, "fps", f"[{MIN_FPS:g}, {MAX_FPS:g}]", MIN_FPS)
        if source_fps is not None:
            source_fps = _rate(source_fps, "source_fps", f"(0, {MAX_FPS:g}]", 0.0, open_low=True)
        sequence_fps = _rate(sequence_fps, "sequence_fps", f"(0, {MAX_FPS:g}]", 0.0, True)
        self.source = Path(source)
        self.fps = None if every is not None else fps
        self.every = every
        self.max_frames = max_frames
        self.source_fps = source_fps
        self.sequence_fps = sequence_fps if source_fps is None else source_fps
        #: the frames were asked for (:meth:`__iter__`), or the reader closed: both once
        self._iterated = False
        self._closed = False
        #: held around each read from the file and by :meth:`close`: a close (from another
        #: thread, or before an iterator taken earlier is used again) never frees the
        #: decoder under a read (PyAV then crashed the process)
        self._reading = threading.RLock()
        #: frame ``i`` is at ``i / info.fps`` (a file without timestamps, rate from source_fps)
        self._index_times = False
        self.warnings: list[str] = []
        self.truncated = False
        self.n_decoded = 0
        self.bad_packets = 0
        self.leading_lost = 0
        #: the earliest timestamp of the packets read before the first frame decoded
        self._packet_pts: int | None = None
        #: seconds of every decoded frame (sampled or not), and the place in it of every
        #: sampled frame: what each sampled frame stands for (time on screen)
        self.decoded_times: array[float] = array("d")
        self.sampled_at: list[int] = []
        #: the whole source was read (not stopped by ``max_frames`` or an early close)
        self.finished = False
        #: seconds the last decoded frame is shown, when the file says (a GIF's held last
        #: frame); NaN when it does not
        self.last_duration = math.nan
        #: seconds by which the video stream starts after the container (an audio track
        #: that starts first); frame times count from the container's start, as players do
        self._lead = Fraction(0)
        self.decode_seconds = 0.0
        self._files: list[Path] | None = None
        self._container: Any = None
        self._stream: Any = None  # the video stream read (not an attached picture)
        #: a still image file's EXIF orientation (1-8), which then turns its frame; 0: the
        #: frames' display matrix does
        self._orientation = 0
        #: the stream's sample aspect ratio when its pixels are not square (frames are
        #: stretched to the size shown); ``None``: square pixels
        self._pixel_aspect: Fraction | None = None
        self._resized = False  # a frame of another size than the first was scaled (warned)
        self._animated: Any = None  # an animated WebP, read with Pillow
        if not self.source.exists():
            raise VideoError(f"{self.source}: no such file or folder")
        if self.source.is_dir():
            self.info = self._open_folder()
            if self.every is None:  # a folder of frames: every image was chosen by someone
                self.every, self.fps = 1, None
        else:
            self.info = self._open_container()

    # ------------------------------------------------------------------ opening

    def _open_folder(self) -> VideoInfo:
        import os

        from exprsim.io import IMAGE_SUFFIXES, image_entry, is_hidden

        # a broken link or an entry that cannot be examined keeps its place: it fails as a
        # frame, with a warning, as a corrupt one does (it was left out without a word, and
        # the frames after it moved one frame earlier)
        with os.scandir(self.source) as entries:
            self._files = sorted(
                (
                    Path(e.path)
                    for e in entries
                    if not is_hidden(e.name)
                    and Path(e.name).suffix.lower() in IMAGE_SUFFIXES
                    and image_entry(e)
                ),
                key=lambda p: natural_key(p.name),
            )
        if not self._files:
            raise VideoError(f"{self.source}: folder holds no images")
        return self._open_files("images")

    def _open_files(self, codec: str) -> VideoInfo:
        """The frames of :attr:`_files`, read with :func:`~exprsim.io.load_image` (a folder
        of frames, or one still image)."""
        from exprsim.io import load_image

        assert self._files is not None
        first, error = None, None
        for path in self._files:  # the frame size comes from the first readable image
            try:
                first = load_image(path, max_pixels=self.max_pixels)
                break
            except ExprsimError as exc:
                error = error or exc
                continue
        if first is None:
            raise VideoError(
                f"{self.source}: none of its {len(self._files)} images can be read ({error})"
            )
        n = len(self._files)
        return VideoInfo(
            str(self.source),
            int(first.shape[1]),
            int(first.shape[0]),
            self.sequence_fps,
            n / self.sequence_fps,
            n,
            codec,
        )

    def _open_container(self) -> VideoInfo:
        try:
            import av
        except ImportError as exc:  # pragma: no cover - extra not installed
            raise VideoError("reading video needs PyAV: pip install 'exprsim[video]'") from exc
        # a named pipe: its reader as a file (given PIPE_WAIT_S for a writer, not for ever)
        opened = _pipe_reader(self.source)
        try:
            container = av.open(opened if opened is not None else str(self.source))
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            if opened is not None:
                opened.close()
            raise VideoError(f"{self.source}: cannot open video ({exc})") from exc
        stream = video_stream(container)
        if stream is None:
            container.close()
            raise VideoError(f"{self.source}: no video stream")
        stream.thread_type = "AUTO"  # frame + slice threads: decoding uses every core
        self._container, self._stream = container, stream
        ctx = stream.codec_context
        still = _is_image_demuxer(container)
        # an animated WebP: FFmpeg before 8 reads it with an image demuxer and the "webp"
        # codec, FFmpeg 8 (PyAV 19, Python 3.12 only) with a "webp_anim" demuxer and codec
        if (still and str(ctx.name) == "webp") or str(ctx.name) == "webp_anim":
            animated = self._open_animated()
            if animated is not None:
                return animated
        if still and self._pillow_reads():  # one picture: read as every other command reads
            codec = str(ctx.name)  # it (FFmpeg's chroma upsampling differs by up to 46 levels)
            self._close_container()
            self._files = [self.source]
            return self._open_files(codec)
        self._pixel_aspect = _pixel_aspect(stream)
        width, height = _shown_size(int(ctx.width), int(ctx.height), self._pixel_aspect)
        if self._pixel_aspect is not None:
            log.info(
                "%s: pixels are not square (sample aspect ratio %s): frames are stretched to "
                "%dx%d, as players show them; face boxes are in that size",
                self.source,
                self._pixel_aspect,
                width,
                height,
            )
        self._check_pixels(width, height)
        rate = stream.average_rate or stream.guessed_rate
        fps = self._source_rate(container, stream, float(rate) if rate else math.nan)
        self._lead = _stream_lead(container, stream)
        duration = _stream_length(container, stream)
        if still:  # turned as load_image turns it (FFmpeg's own EXIF reading differs)
            self._orientation = _file_orientation(self.source)
            if self._orientation >= 5:  # a quarter turn: shown the other way round
                width, height = height, width
        return VideoInfo(
            str(self.source),
            width,
            height,
            fps,
            duration,
            int(stream.frames or 0),
            str(ctx.name),
        )

    def _check_pixels(self, width: int, height: int) -> None:
        """Refuse (closing the file) frames over :attr:`max_pixels`, from the header."""
        if width * height > self.max_pixels:
            self.close()
            raise VideoError(f"{self.source}: {_too_large(width, height, self.max_pixels)}")

    def _pillow_reads(self) -> bool:
        """Whether Pillow opens the source (a still picture :func:`~exprsim.io.load_image`
        decodes; FFmpeg keeps the ones only it reads)."""
        img = _pillow_open(self.source)
        if img is None:
            return False
        img.close()
        return True

    def _open_animated(self) -> VideoInfo | None:
        """An animated WebP (FFmpeg decodes none of its frames), opened with Pillow instead
        of FFmpeg; ``None`` for a still WebP (FFmpeg reads it)."""
        from exprsim.io import exif_orientation

        img = _pillow_open(self.source)
        if img is None or not getattr(img, "is_animated", False):
            if img is not None:
                img.close()
            return None
        self._close_container()  # FFmpeg's: Pillow reads the frames
        self._animated = img
        self._check_pixels(*img.size)
        self._orientation = exif_orientation(img, str(self.source))
        width, height = img.size if self._orientation < 5 else img.size[::-1]
        n = int(getattr(img, "n_frames", 1))
        # frame times come from the frames, decoded one after another: no rate up front
        return VideoInfo(str(self.source), width, height, math.nan, math.nan, n, "webp")

    def _source_rate(self, container: Any, stream: Any, fps: float) -> float:
        """The source frame rate: ``fps`` (what the container says) when the file declares a
        rate and has timestamps of its own; else ``source_fps`` when given (frame times then
        count frames at that rate), else ``fps`` as FFmpeg assumed it, with a warning."""
        try:
            flags = int(container.format.flags or 0)
        except (AttributeError, TypeError, ValueError):  # pragma: no cover - other PyAV
            flags = 0
        declared = math.isfinite(fps) and fps > 0 and not flags & _AVFMT_NOTIMESTAMPS
        if declared:
            if self.source_fps is not None:
                self._warn(
                    f"{self.source}: source_fps {self.source_fps:g} ignored: the file declares "
                    f"its frame rate ({fps:.3f} fps) and timestamps"
                )
            return fps
        if self.source_fps is not None:
            self._index_times = True
            return self.source_fps
        guess = float(stream.guessed_rate) if stream.guessed_rate else math.nan
        hint = (
            f"; the video stream's own timing information suggests {guess:g} fps"
            if math.isfinite(guess) and guess > 0 and abs(guess - ASSUMED_FPS) > 0.01
            else ""
        )
        self._warn(
            f"{self.source}: frame rate not declared by the file; assuming {ASSUMED_FPS:g} fps, "
            f"so times may be wrong{hint} (give the real rate: --source-fps, source_fps= in Python)"
        )
        return fps

    # ------------------------------------------------------------------ sampling

    def expected_samples(self) -> int | None:
        """Number of frames that will be sampled if the stream is complete (estimate)."""
        info = self.info
        if self.every is not None:
            n = info.n_frames or (
                round(info.duration * info.fps)
                if math.isfinite(info.duration) and math.isfinite(info.fps)
                else 0
            )
            est = math.ceil(n / self.every) if n else None
        elif math.isfinite(info.duration):
            assert self.fps is not None
            tol = 0.5 / info.fps if math.isfinite(info.fps) and info.fps > 0 else 0.0
            est = max(1, math.ceil((info.duration - tol) * self.fps - 1e-6))
            if math.isfinite(info.fps):
                est = min(est, info.n_frames or est)
        else:
            est = None
        if est is not None and self.max_frames is not None:
            est = min(est, self.max_frames)
        return est

    @property
    def sample_period(self) -> float:
        """Seconds of video per sampled frame."""
        if self.every is not None:
            src = self.info.fps if math.isfinite(self.info.fps) else self.sequence_fps
            return self.every / src
        assert self.fps is not None
        src = self.info.fps
        return max(1.0 / self.fps, 1.0 / src if math.isfinite(src) and src > 0 else 0.0)

    @property
    def sample_jitter(self) -> float:
        """Seconds by which the time between two consecutive sampled frames of a
        constant-frame-rate stream may differ from :attr:`sample_period`.

        Sampling by rate below the source's takes the first source frame at or after each
        multiple of the period (half a frame early at most), so the gaps wander by up to one source
        frame around the period (at 5 fps of a 24 fps clip: 5, 5, 4, 5, 5 frames); every
        N-th frame has no such rounding. A quarter of a source frame is added for rounded
        timestamps (Matroska stores milliseconds).
        """
        src = self.info.fps
        frame = 1.0 / (src if math.isfinite(src) and src > 0 else ASSUMED_FPS)
        rounded = self.fps is not None and 1.0 / self.fps > frame * (1.0 + 1e-9)
        return (1.25 if rounded else 0.25) * frame

    def _selector(self) -> Any:
        """A function ``(index, time) -> bool`` deciding which decoded frames to keep."""
        if self.every is not None:
            every = self.every
            return lambda i, t: i % every == 0
        assert self.fps is not None
        period = 1.0 / self.fps
        src = self.info.fps
        tol = 0.5 / src if math.isfinite(src) and src > 0 else 1e-3
        state = {"k": 0}

        def take(_i: int, t: float) -> bool:
            if t >= state["k"] * period - tol:
                state["k"] = math.floor((t + tol) / period) + 1
                return True
            return False

        return take

    # ------------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[Frame]:
        """The sampled frames, once: a second iteration, or one after :meth:`close`, raises
        :class:`VideoError` (the counters and warnings describe the one reading; create
        another reader to read the video again)."""
        where = printable(str(self.source))
        if self._iterated:
            raise VideoError(f"{where}: a FrameReader is read once; create another")
        if self._closed:
            raise VideoError(f"{where}: the FrameReader is closed; create another")
        self._iterated = True
        if self._files is not None:
            return self._iter_folder()
        if self._animated is not None:
            return self._iter_animated()
        return self._iter_container()

    def _iter_folder(self) -> Iterator[Frame]:
        from exprsim.io import load_image

        assert self._files is not None
        take = self._selector()
        n_out = 0
        for i, path in enumerate(self._files):
            self._check_open()
            t = i / self.sequence_fps
            self.n_decoded += 1
            self.decoded_times.append(t)
            if not take(i, t):
                continue
            start = time.perf_counter()
            try:
                image = load_image(path, max_pixels=self.max_pixels)
            except ExprsimError as exc:
                self._warn(f"{path}: unreadable frame skipped ({exc})")
                continue
            self.decode_seconds += time.perf_counter() - start
            self.sampled_at.append(len(self.decoded_times) - 1)
            yield Frame(i, t, image, path.name)
            n_out += 1
            if self.max_frames is not None and n_out >= self.max_frames:
                return
        self.finished = True

    def _iter_animated(self) -> Iterator[Frame]:
        """The frames of an animated WebP, read with Pillow, at their own times."""
        from exprsim.io import apply_orientation, pil_to_rgb8

        img = self._animated
        take = self._selector()
        n_out, stalled = 0, False
        exact = Fraction(-1)  # the time of the frame before, exactly (its float is noisy)
        try:
            for i in range(self.info.n_frames):
                start = time.perf_counter()
                try:
                    with self._reading:
                        self._check_open()
                        img.seek(i)
                        img.load()  # frames decode one after another; the time comes with it
                except (OSError, EOFError, ValueError) as exc:
                    self.truncated = True
                    self._warn(
                        f"{self.source}: reading stopped after {i} frames ({exc}); "
                        "keeping what was read"
                    )
                    break
                self.n_decoded += 1
                stamp = Fraction(img.info.get("timestamp") or 0) / 1000
                if self.decoded_times and stamp <= exact:
                    # frames that declare no duration: timed at the GIF convention's rate
                    if not stalled:
                        self._warn(
                            f"{self.source}: frame {i} does not come after the frame before "
                            f"it (no duration declared); such frames are timed "
                            f"{1.0 / ANIMATION_FPS:g} s apart"
                        )
                    stalled = True
                    stamp = exact + 1 / Fraction(ANIMATION_FPS)
                exact, t = stamp, float(stamp)  # the nearest double: 0.3, not 0.1 + 0.2
                shown = float(img.info.get("duration") or 0) / 1000.0  # a held last frame
                self.last_duration = shown if shown > 0 else math.nan
                self.decoded_times.append(t)
                if not take(i, t):
                    self.decode_seconds += time.perf_counter() - start
                    continue
                image = apply_orientation(pil_to_rgb8(img, str(self.source)), self._orientation)
                self.decode_seconds += time.perf_counter() - start
                self.sampled_at.append(len(self.decoded_times) - 1)
                yield Frame(i, t, image)
                n_out += 1
                if self.max_frames is not None and n_out >= self.max_frames:
                    return
            self.finished = True
        finally:
            self.close()
        if self.n_decoded == 0:
            raise VideoError(f"{self.source}: no frame could be decoded")

    def _iter_container(self) -> Iterator[Frame]:
        container, stream = self._container, self._stream
        # exact: a float time base made 1.4000000000000001 of 1.4 s (pts 14336 x 1/10240)
        tb = Fraction(stream.time_base) if stream.time_base is not None else Fraction(0)
        src_fps = self.info.fps if math.isfinite(self.info.fps) else ASSUMED_FPS
        by_index = self._index_times or not tb
        start_pts = stream.start_time or 0
        lead = Fraction(0) if by_index else self._lead
        clock = _Clock(self.source, start_pts, tb, src_fps, by_index, self._warn, lead)
        take = self._selector()
        n_out = 0
        decoder = self._decode_skipping_bad_packets(container, stream)
        last_shown = 1.0 / src_fps
        try:
            while True:
                start = time.perf_counter()
                frame = self._next_frame(decoder)
                if frame is None:
                    break
                if self.n_decoded == 0 and not by_index and frame.pts is not None:
                    first = max(start_pts, self._packet_start(start_pts))
                    self._count_leading(float((frame.pts - first) * tb), src_fps)
                # an undecodable packet is a lost frame: the numbers stay the source's
                i = self.n_decoded + self.bad_packets + self.leading_lost
                self.n_decoded += 1
                if not self._within_limit(frame, n_out):
                    break
                if self.n_decoded == 1:
                    self._show_size(frame)
                t = clock.time(i, frame.pts)
                shown = float(int(getattr(frame, "duration", None) or 0) * tb)
                last_shown = shown if shown > 0 else 1.0 / src_fps
                self.last_duration = shown if shown > 0 else math.nan
                self.decoded_times.append(float(t))
                if not take(i, t):
                    self.decode_seconds += time.perf_counter() - start
                    continue
                image = self._upright(self._square(frame.to_ndarray(format="rgb24")), frame)
                image = self._first_size(image, i)
                self.decode_seconds += time.perf_counter() - start
                self.sampled_at.append(len(self.decoded_times) - 1)
                yield Frame(i, float(t), image)
                n_out += 1
                if self.max_frames is not None and n_out >= self.max_frames:
                    return
            self.finished = True
        finally:
            self.close()
        # compared with the stream's own length: times count from the container's start;
        # the last frame lasts its own duration where the file gives one (a GIF's hold)
        self._check_end(clock.last - float(lead) + last_shown)

    def _packet_start(self, default: int) -> int:
        """The earliest timestamp of the packets read before the first frame came out
        (``default`` when none had one)."""
        return default if self._packet_pts is None else self._packet_pts

    def _count_leading(self, first: float, src_fps: float) -> None:
        """Frames before the first decoded one (``first`` seconds after the stream's first
        timestamp) that the decoder dropped without an error (a stream cut in the middle of
        a group of pictures: its first frames refer to a keyframe that is not there); the
        frame numbers count them, as they count undecodable packets.

        The stream's first timestamp is its start time, but never earlier than the first
        packet read: only a packet that was read can have been dropped. AVI stores no
        presentation times: its start time is the first packet's decode time (a frame
        counter from 0), and FFmpeg gives a codec with a one-frame decoder delay (B-frames,
        H.264) presentation times from 1, so the first frame of a complete AVI is 1 frame
        after its start time but at the first packet's timestamp."""
        lost = round(first * src_fps)
        if first > 0.5 / src_fps and lost > 0:
            self.leading_lost = lost
            self._warn(
                f"{self.source}: the first {lost} frame(s) do not decode (the stream starts "
                "in the middle of a group of pictures: cut without re-encoding?); frame "
                "numbers count them"
            )

    def _next_frame(self, decoder: Iterator[Any]) -> Any:
        """The next decoded frame; ``None`` at the end of the stream, or after a demuxer
        error (the file is then reported as truncated)."""
        import av

        try:
            with self._reading:
                self._check_open()
                return next(decoder)
        except StopIteration:
            return None
        except (av.error.FFmpegError, EOFError, ValueError) as exc:
            self.truncated = True
            self._warn(
                f"{self.source}: reading stopped after {self.n_decoded} frames ({exc}); "
                "keeping what was read"
            )
            return None

    def _within_limit(self, frame: Any, n_out: int) -> bool:
        """Whether a decoded frame is within :attr:`max_pixels` (its size can change in the
        middle of a stream); over it, reading stops, with an error when nothing was read."""
        w, h = _shown_size(int(frame.width), int(frame.height), self._pixel_aspect)
        if w * h <= self.max_pixels:
            return True
        message = f"{self.source}: {_too_large(w, h, self.max_pixels)}"
        if n_out == 0:
            raise VideoError(message)
        self.truncated = True
        self._warn(f"{message} from frame {self.n_decoded - 1} on; keeping what was read")
        return False

    def _show_size(self, frame: Any) -> None:
        """Set :attr:`info`'s size to the first frame's, as shown (square pixels, display
        rotation)."""
        w, h = _shown_size(int(frame.width), int(frame.height), self._pixel_aspect)
        if self._orientation_of(frame) >= 5:  # a quarter turn
            w, h = h, w
        if w > 0 and h > 0 and (w, h) != (self.info.width, self.info.height):
            self.info = replace(self.info, width=w, height=h)

    def _check_end(self, end: float) -> None:
        """After the last frame (``end``: seconds read): no frame at all is an error; lost
        packets and a stream ending before its declared duration are truncation."""
        if self.n_decoded == 0:  # opened, but not a video we can read: as if unopenable
            bad = f" ({self.bad_packets} undecodable packet(s))" if self.bad_packets else ""
            raise VideoError(f"{self.source}: no frame could be decoded{bad}")
        if self.bad_packets:
            self.truncated = True
            self._warn(
                f"{self.source}: {self.bad_packets} undecodable packet(s) skipped "
                "(corrupt data); the frames in them are lost"
            )
        declared = self.info.duration
        if math.isfinite(declared) and not self.truncated and end < declared - 1.0:
            self.truncated = True
            self._warn(
                f"{self.source}: stream ends at {end:.2f} s of a declared "
                f"{declared:.2f} s (truncated file?); keeping what was read"
            )

    def _orientation_of(self, frame: Any) -> int:
        """The EXIF-style orientation (1-8) that shows ``frame`` upright."""
        return self._orientation or _display_orientation(frame)

    def _square(self, image: np.ndarray) -> np.ndarray:
        """A decoded image stretched to square pixels (as shown; see :func:`_shown_size`)."""
        if self._pixel_aspect is None:
            return image
        import cv2

        h, w = image.shape[:2]
        size = _shown_size(w, h, self._pixel_aspect)
        return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)

    def _first_size(self, image: np.ndarray, i: int) -> np.ndarray:
        """A frame of a video file whose frame size changed (recordings of two sizes joined
        end to end) scaled to fit the first frame's size (:attr:`info`), its proportions
        kept and the rest black, so that every face box is in that size; one warning."""
        h, w = image.shape[:2]
        width, height = self.info.width, self.info.height
        if (w, h) == (width, height) or width <= 0 or height <= 0:
            return image
        import cv2

        if not self._resized:
            self._resized = True
            self._warn(
                f"{self.source}: the frame size changes from {width}x{height} to {w}x{h} at "
                f"frame {i}; such frames are scaled to fit {width}x{height} (face boxes are "
                "in that size)"
            )
        scale = min(width / w, height / h)
        fw, fh = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
        area = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        out = np.zeros((height, width, 3), np.uint8)
        x, y = (width - fw) // 2, (height - fh) // 2
        out[y : y + fh, x : x + fw] = cv2.resize(image, (fw, fh), interpolation=area)
        return out

    def _upright(self, image: np.ndarray, frame: Any) -> np.ndarray:
        """The frame as shown: phone videos store frames sideways, front cameras mirrored,
        with a display matrix; faces are found upright."""
        from exprsim.io import apply_orientation

        return apply_orientation(image, self._orientation_of(frame))

    def _decode_skipping_bad_packets(self, container: Any, stream: Any) -> Iterator[Any]:
        """Decoded frames of ``stream``; a packet that fails to decode is counted and skipped.

        A demuxer error (the container itself is unreadable from there on) propagates.
        """
        import av

        for packet in container.demux(stream):
            if self.n_decoded == 0 and packet.pts is not None:
                pts = int(packet.pts)
                self._packet_pts = pts if self._packet_pts is None else min(self._packet_pts, pts)
            try:
                frames = packet.decode()
            except (av.error.FFmpegError, ValueError) as exc:
                self.bad_packets += 1
                log.debug("%s: packet skipped (%s)", self.source, exc)
                continue
            yield from frames

    def _warn(self, message: str) -> None:
        message = printable(message)  # one line, whatever the file's name holds
        self.warnings.append(message)
        log.warning("%s", message)

    def close(self) -> None:
        """Release the file (idempotent); the reader cannot be iterated afterwards, and an
        iterator taken before raises :class:`VideoError` at its next frame. A close from
        another thread waits for the frame being read."""
        with self._reading:
            self._closed = True
            self._close_container()
            if self._animated is not None:
                self._animated.close()

    def _check_open(self) -> None:
        """Raise :class:`VideoError` when the reader was closed while it was read."""
        if self._closed:
            where = printable(str(self.source))
            raise VideoError(f"{where}: the FrameReader was closed while it was read")

    def _close_container(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rate(value: object, what: str, span: str, low: float, open_low: bool = False) -> float:
    """A frame rate option as a ``float`` in ``span`` (from ``low``, to :data:`MAX_FPS`);
    anything else (a string, a bool, NaN, out of range) is a :class:`VideoError`."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    rate = float(value) if ok else math.nan  # type: ignore[arg-type]
    if not ((low < rate if open_low else low <= rate) and rate <= MAX_FPS):
        raise VideoError(f"{what} must be in {span}, got {value!r}")
    return rate


def _stream_start(stream: Any) -> Fraction | None:
    """Seconds of the video stream's first timestamp (exact), ``None`` when unknown."""
    if stream.start_time is None or stream.time_base is None:
        return None
    return stream.start_time * Fraction(stream.time_base)


def _stream_lead(container: Any, stream: Any) -> Fraction:
    """Seconds by which the video stream starts after the container (an audio track that
    starts first: players, and ``ffmpeg -ss``, count time from the container's start);
    0 when they start together or either start is unknown (never negative)."""
    start = _stream_start(stream)
    if start is None or container.start_time is None:
        return Fraction(0)
    lead = start - Fraction(container.start_time) / 1_000_000
    return lead if lead > Fraction(1, 1_000_000) else Fraction(0)  # whole microseconds


def _stream_length(container: Any, stream: Any) -> float:
    """The video stream's own length in seconds (NaN when unknown): its declared duration,
    else the container's less the time before the stream's first timestamp. Matroska (and
    WebM) count the container's duration from timestamp 0, the other formats from the
    container's start (the earliest stream's first timestamp)."""
    if stream.duration is not None and stream.time_base is not None:
        declared = float(stream.duration * Fraction(stream.time_base))
        if declared > 0:  # 0 (an animation whose frames declare no duration): unknown
            return declared
    if container.duration is None:
        return math.nan
    duration = container.duration / 1_000_000.0
    start = _stream_start(stream)
    if start is not None and start > 0:
        name = str(getattr(getattr(container, "format", None), "name", "") or "")
        if "matroska" in name or "webm" in name:
            duration -= float(start)
        else:
            duration -= float(_stream_lead(container, stream))
    return duration if duration > 0 else math.nan


def read_frames(
    source: str | Path,
    fps: float | None = DEFAULT_FPS,
    every: int | None = None,
    max_frames: int | None = None,
    source_fps: float | None = None,
    max_pixels: int = MAX_FRAME_PIXELS,
) -> list[Frame]:
    """All sampled frames of a (short) video in memory (see :class:`FrameReader`)."""
    with FrameReader(
        source,
        fps=fps,
        every=every,
        max_frames=max_frames,
        source_fps=source_fps,
        max_pixels=max_pixels,
    ) as reader:
        return list(reader)


class _Clock:
    """Seconds of the decoded frames of a stream: from their timestamps (or their numbers
    at the source rate), increasing. Where the timestamps jump back by more than a source
    frame (recordings joined end to end, a recorder restart), the frames after the jump are
    timed on from the frame before it (one source frame later), so that sampling goes on
    instead of waiting for the times to pass the jump again; the first jump is warned of.

    Times are reckoned exactly and given as the nearest double: frame 14 of a 10 fps mp4
    (pts 14336, time base 1/10240) is at 1.4 s, not 1.4000000000000001. While times only
    increase, with no lead or offset (the usual case), in integers (a ``Fraction`` a frame
    cost 15 to 25 us, in the GIL); else with ``Fraction``.
    """

    def __init__(
        self,
        source: Path,
        start: int,
        time_base: Fraction,
        src_fps: float,
        by_index: bool,
        warn: Callable[[str], None],
        lead: Fraction = Fraction(0),
    ) -> None:
        self.source, self.start, self.time_base, self.src_fps = source, start, time_base, src_fps
        self.by_index, self.warn, self.lead = by_index, warn, lead
        self.step = 1 / Fraction(src_fps)  # one source frame
        self.offset = Fraction(0)  # seconds added to the stream's times since the last jump back
        self.stalls = 0  # frames whose timestamp equalled the frame's before
        self.last = -math.inf  # the latest time given
        self._last: Fraction | None = None  # the same, exactly (or in _fast)
        #: the latest time as (numerator, denominator) while the integer path gives them
        self._fast: tuple[int, int] | None = None
        fps = Fraction(src_fps)
        self._by_number = (fps.denominator, fps.numerator)  # frame i at i * this[0] / this[1]
        self._by_pts = (time_base.numerator, time_base.denominator)
        self.jumps = 0

    def time(self, i: int, pts: int | None) -> float:
        """Seconds of frame ``i`` (decode order) with timestamp ``pts``."""
        numbered = self.by_index or pts is None
        if not self.offset and (numbered or not self.lead):
            num, den = self._by_number if numbered else self._by_pts
            n = i * num if numbered else (pts - self.start) * num  # type: ignore[operator]
            last = self._fast or (
                None if self._last is None else (self._last.numerator, self._last.denominator)
            )
            if last is None or n * last[1] > last[0] * den:  # later than the latest
                self._fast, self.last = (n, den), n / den  # int / int: correctly rounded
                return self.last
        return self._time_exactly(i, pts)

    def _time_exactly(self, i: int, pts: int | None) -> float:
        """:meth:`time` with ``Fraction``: a jump back, a stall, a lead or an offset."""
        if self._fast is not None:
            self._last, self._fast = Fraction(*self._fast), None
        if self.by_index or pts is None:
            t = i / Fraction(self.src_fps) + self.offset
        else:
            t = (pts - self.start) * self.time_base + self.lead + self.offset
        step, last = self.step, self._last
        if last is not None and t < last - step:
            self.jumps += 1
            if self.jumps == 1:
                self.warn(
                    f"{self.source}: timestamps jump back by {float(last - t):.2f} s at frame "
                    f"{i} (recordings joined end to end?); later frames are timed on from the "
                    "frame before the jump"
                )
            self.offset += last + step - t
            t = last + step
        elif t == last:  # a timestamp that does not advance: as a jump back
            self.stalls += 1
            if self.stalls == 1:
                self.warn(
                    f"{self.source}: frame {i} has the timestamp of the frame before it; "
                    f"such frames are timed one source frame ({float(step):.3g} s) after it"
                )
            self.offset += step
            t = last + step
        if last is None or t > last:
            self._last, self.last = t, float(t)
        return float(t)


def natural_key(name: str) -> tuple[tuple[Any, ...], str]:
    """Sort key of a file name in natural order: runs of digits compare by value, so
    ``frame2.png`` < ``frame10.png`` (``sorted`` alone puts ``frame10`` first); the name
    itself breaks ties (``frame01`` < ``frame1``)."""
    parts = re.split(r"([0-9]+)", name)  # text, digits, text, ...: same kinds at same places
    # a number as (length, digits) without its leading zeros: by value, of any length
    key = tuple((len(p.lstrip("0")), p.lstrip("0")) if i % 2 else p for i, p in enumerate(parts))
    return key, name


def video_stream(container: Any) -> Any:
    """The video stream a player shows: among those that are not an attached picture
    (album art or a poster image: FFmpeg's ``attached_pic`` disposition), the one marked
    ``default``, else the first; ``None`` when there is none. With several, a warning
    names the one read (a 96 x 54 preview stream first was read without a word, and the
    film with its faces beside it ignored)."""
    streams = [
        s for s in container.streams.video if not _disposition(s) & _AV_DISPOSITION_ATTACHED_PIC
    ]
    if not streams:
        return None
    chosen = next((s for s in streams if _disposition(s) & _AV_DISPOSITION_DEFAULT), streams[0])
    if len(streams) > 1:
        ctx = chosen.codec_context
        log.warning(
            "%d video streams; reading stream #%d (%sx%s%s)",
            len(streams), chosen.index, ctx.width, ctx.height,
            ", the default" if _disposition(chosen) & _AV_DISPOSITION_DEFAULT else "",
        )  # fmt: skip
    return chosen


def _disposition(stream: Any) -> int:
    """A stream's disposition flags as an int (PyAV 14.1-17.0 gives a Flag)."""
    flags = getattr(stream, "disposition", 0) or 0
    return int(getattr(flags, "value", flags))


#: sample aspect ratios beyond these are taken for damaged headers (pixels read as square)
PIXEL_ASPECT_RANGE = (Fraction(1, 8), Fraction(8))


def _pixel_aspect(stream: Any) -> Fraction | None:
    """The sample aspect ratio (a pixel's width over its height) of a video stream, or
    ``None`` for square pixels, an unset one (0:1) or one beyond :data:`PIXEL_ASPECT_RANGE`."""
    for owner in (stream, getattr(stream, "codec_context", None)):
        value = getattr(owner, "sample_aspect_ratio", None)
        try:
            sar = Fraction(value) if value is not None else None
        except (TypeError, ValueError, ZeroDivisionError):
            sar = None
        if sar is not None and sar > 0:
            if sar == 1:
                return None
            if PIXEL_ASPECT_RANGE[0] <= sar <= PIXEL_ASPECT_RANGE[1]:
                return sar
            log.info("a sample aspect ratio of %s is ignored (pixels read as square)", sar)
            return None
    return None


def _shown_size(width: int, height: int, sar: Fraction | None) -> tuple[int, int]:
    """``(width, height)`` of a ``width x height`` frame of pixels ``sar`` wide (their
    width over their height) shown with square pixels: the wider side grows, nothing is
    lost."""
    if sar is None or width <= 0 or height <= 0:
        return width, height
    if sar > 1:
        return max(1, round(width * sar)), height
    return width, max(1, round(height / sar))


def _too_large(width: int, height: int, limit: int) -> str:
    return f"frame too large ({width}x{height} pixels; limit {limit}, max_pixels)"


def _is_image_demuxer(container: Any) -> bool:
    """Whether FFmpeg reads the file as an image (its ``image2`` and ``*_pipe`` demuxers):
    a still picture, or an animated WebP."""
    name = str(getattr(getattr(container, "format", None), "name", "") or "")
    return name == "image2" or name.endswith("_pipe")


def _pillow_open(path: Path) -> Any:
    """``path`` opened with Pillow (header only; the caller checks the size), ``None`` when
    Pillow cannot open it."""
    from PIL import Image

    from exprsim.io import pillow_quiet

    try:
        with pillow_quiet():  # catch_warnings is not thread-safe (exprsim.io.pillow_quiet)
            return Image.open(path)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return None


def _file_orientation(path: Path) -> int:
    """The EXIF orientation of an image file as :func:`exprsim.io.load_image` reads it
    (1-8); 0 when Pillow cannot open the file (the frame's display matrix then decides)."""
    from exprsim.io import exif_orientation

    img = _pillow_open(path)
    if img is None:
        return 0
    with img:
        return exif_orientation(img, str(path))


def _display_orientation(frame: Any) -> int:
    """The EXIF-style orientation (1-8, :func:`exprsim.io.apply_orientation`) that shows a
    decoded frame as players do: its display matrix (FFmpeg frame side data) read as
    FFmpeg's own autorotate reads it, quarter turns and mirror images. Without a matrix
    PyAV can give, the rotation alone (``frame.rotation``)."""
    matrix = _display_matrix(frame)
    if matrix is None:
        turns = round(float(getattr(frame, "rotation", 0) or 0) / 90.0) % 4
        return (1, 8, 3, 6)[turns]  # counter-clockwise quarter turns
    a, b, c, d = (float(matrix[k]) for k in (0, 1, 3, 4))
    if math.hypot(a, c) == 0.0 or math.hypot(b, d) == 0.0:
        return 1  # a degenerate matrix: FFmpeg turns nothing either
    # fftools' get_rotation: degrees clockwise, whole, in [0, 360)
    theta = float(-round(-math.degrees(math.atan2(b / math.hypot(b, d), a / math.hypot(a, c)))))
    theta -= 360.0 * math.floor(theta / 360.0 + 0.9 / 360.0)
    quarter = round(theta / 90.0) % 4
    # fftools' autorotate filters: transpose=cclock_flip / clock; hflip, vflip;
    # transpose=clock_flip / cclock; vflip; as EXIF orientations
    if quarter == 1:
        return 5 if c > 0 else 6
    if quarter == 2:
        return {(True, True): 3, (True, False): 2, (False, True): 4}.get((a < 0, d < 0), 1)
    if quarter == 3:
        return 7 if c < 0 else 8
    return 4 if d < 0 else 1


def _display_matrix(frame: Any) -> np.ndarray | None:
    """The frame's display matrix (nine int32, FFmpeg's layout), ``None`` when it has none
    or PyAV cannot list its side data (it refuses types newer than itself)."""
    try:
        data = frame.side_data.get("DISPLAYMATRIX")
        raw = bytes(data) if data is not None else b""
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return np.frombuffer(raw[:36], dtype=np.int32) if len(raw) >= 36 else None
