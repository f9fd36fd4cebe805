"""The face front-end as a long-lived library (ninth audit): shared detectors called from
several threads, the host's stderr kept while native chatter is silenced, one bounded
pool of worker threads that can be handed back, and one-line errors for bad detectors."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from exprsim.errors import ExprsimError
from exprsim.faces import detect
from exprsim.faces.stream import analyze_stream
from exprsim.samples import sample_dir

PHOTOS = sorted(sample_dir().glob("*.jpg"))


def _run(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "default", "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ------------------------------------------------------------- shared detector, threads


def _boxes(faces) -> list[list[float]]:
    return [af.face.box.round(2).tolist() for af in faces]


def test_analyze_image_from_several_threads_gives_the_serial_answers():
    """The process-wide default detector is shared: calls from 3 threads at once used to
    fail with LiteRT's raw RuntimeError, or return another image's faces."""
    pytest.importorskip("mediapipe")
    from exprsim.faces.pipeline import analyze_image

    serial = {p: _boxes(analyze_image(p)) for p in PHOTOS}
    jobs = PHOTOS * 3
    with ThreadPoolExecutor(3) as ex:
        got = list(ex.map(lambda p: _boxes(analyze_image(p)), jobs))
    assert got == [serial[p] for p in jobs]


class _Recording:
    """A fake detector that notes how many calls run in it at once."""

    name = "recording"

    def __init__(self) -> None:
        self.inside = self.most = self.calls = 0
        self.lock = threading.Lock()

    def _enter(self) -> None:
        with self.lock:
            self.inside += 1
            self.calls += 1
            self.most = max(self.most, self.inside)

    def _leave(self) -> None:
        with self.lock:
            self.inside -= 1

    def detect(self, image):
        self._enter()
        time.sleep(0.005)
        self._leave()
        return []

    def detect_near(self, image, hints, margin=0.5):
        self._enter()
        time.sleep(0.005)
        self._leave()
        return None


def test_a_shared_detector_runs_one_detection_at_a_time():
    from exprsim.faces.pipeline import _SharedDetector

    fake = _Recording()
    shared = _SharedDetector(fake)
    assert shared.name == "recording" and shared.inside == 0  # attributes read through
    image = np.zeros((16, 16, 3), np.uint8)
    hints = np.array([[0, 0, 8, 8]], np.float32)

    def work(i: int) -> None:
        if i % 2:
            shared.detect(image)
        else:
            assert shared.detect_near(image, hints) is None

    with ThreadPoolExecutor(4) as ex:
        list(ex.map(work, range(24)))
    assert fake.calls == 24 and fake.most == 1


def test_resolve_detector_gives_the_shared_locked_instance_per_name():
    pytest.importorskip("mediapipe")
    from exprsim.faces.pipeline import _SharedDetector, resolve_detector

    det = resolve_detector(None)
    assert isinstance(det, _SharedDetector) and det is resolve_detector(detect.DEFAULT_DETECTOR)
    assert isinstance(det, detect.Detector)
    mine = _Recording()
    assert resolve_detector(mine) is mine  # an instance is used as it is


def test_a_detector_that_is_no_detector_is_one_line_error():
    from exprsim.faces.pipeline import analyze_image

    with pytest.raises(ExprsimError, match="detector must be") as exc:
        analyze_image(PHOTOS[0], object())  # type: ignore[arg-type]
    assert "\n" not in str(exc.value) and "object" in str(exc.value)
    with pytest.raises(ExprsimError, match="detector must be"):
        list(analyze_stream([PHOTOS[0]], 3.5))  # type: ignore[arg-type]


# --------------------------------------------------------------------- stderr relay


def test_known_native_noise_and_host_lines():
    from exprsim.faces.backends.native_log import is_native_noise

    native = [
        b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
        b"W0000 00:00:1796151720.892604   18923 inference_feedback_manager.cc:114] Feedback"
        b" manager requires a model with a single signature inference.\n",
        b"I0000 00:00:1712345678.123456 1234 gl_context.cc:357] GL version: 3.2\n",
        b"E1231 23:59:59.999999  77 landmark_projection_calculator.cc:186] Using NORM_RECT",
    ]
    host = [
        b"WARNING:root:disk almost full\n",
        b"INFO: service started\n",
        b"Traceback (most recent call last):\n",
        b"svc heartbeat 12\n",
        b"exprsim faces: bad.jpg: not an image\n",
        b"\n",
    ]
    assert all(is_native_noise(line) for line in native)
    assert not any(is_native_noise(line) for line in host)


def test_other_threads_log_lines_survive_a_quiet_block_native_noise_does_not():
    """A logging.StreamHandler keeps the original sys.stderr (fd 2): its lines, written
    by another thread while a detector is built, used to go to /dev/null."""
    code = (
        "import logging, os, sys, threading\n"
        "logging.basicConfig(level=logging.INFO, format='svc %(message)s')\n"
        "from exprsim.faces.backends.native_log import quiet_native_stderr\n"
        "with quiet_native_stderr():\n"
        "    os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n')\n"
        "    t = threading.Thread(target=lambda: logging.info('from another thread'))\n"
        "    t.start(); t.join()\n"
        "    os.write(2, b'W0000 00:00:1796151720.892604   9 x.cc:1] native warning\\nhost line\\n')\n"
        "    print('printed', file=sys.stderr)\n"
        "logging.info('after')\n"
        "print(sorted(t.name for t in threading.enumerate()))\n"
    )
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == ["svc from another thread", "host line", "printed", "svc after"]
    assert r.stdout.strip() == "['MainThread']"  # the relay thread was joined


def test_overlapping_quiet_blocks_in_threads_share_one_relay():
    """The first thread to leave must not restore fd 2 under the other; the last restores."""
    import os

    from exprsim.faces.backends.native_log import quiet_native_stderr

    before = os.fstat(2)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first() -> None:  # enters first, leaves first
        with quiet_native_stderr():
            seen["a"] = os.fstat(2)
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def second() -> None:
        a_in.wait(5)
        with quiet_native_stderr():
            b_in.set()
            a_out.wait(5)
            seen["b"] = os.fstat(2)  # still redirected although the other block ended

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (seen["a"].st_dev, seen["a"].st_ino) != (before.st_dev, before.st_ino)
    assert (seen["b"].st_dev, seen["b"].st_ino) == (seen["a"].st_dev, seen["a"].st_ino)
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    assert not [t for t in threading.enumerate() if t.name == "exprsim-stderr"]


def test_an_error_in_the_block_restores_stderr_and_keeps_its_lines():
    code = (
        "import os, sys\n"
        "from exprsim.faces.backends.native_log import quiet_native_stderr\n"
        "before = os.fstat(2).st_ino\n"
        "try:\n"
        "    with quiet_native_stderr():\n"
        "        with quiet_native_stderr():\n"
        "            os.write(2, b'kept partial line')\n"
        "            raise KeyError('boom')\n"
        "except KeyError:\n"
        "    pass\n"
        "assert os.fstat(2).st_ino == before\n"
        "os.write(2, b'\\nafter\\n')\n"
    )
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == ["kept partial line", "after"]


def test_a_child_process_started_in_a_quiet_block_keeps_its_stderr():
    """A process started meanwhile inherits the pipe as its stderr: after the block its
    lines are still passed on (not lost, and the child is not killed by a closed pipe)."""
    code = (
        "import subprocess, sys, threading\n"
        "from exprsim.faces.backends.native_log import quiet_native_stderr\n"
        "child = 'import sys; sys.stdin.readline(); print(\"child line\", file=sys.stderr)'\n"
        "with quiet_native_stderr():\n"
        "    p = subprocess.Popen([sys.executable, '-c', child], stdin=subprocess.PIPE)\n"
        "print('parent', file=sys.stderr, flush=True)\n"
        "p.communicate(b'go\\n')\n"
        "for t in threading.enumerate():\n"
        "    if t.name == 'exprsim-stderr':\n"
        "        t.join(30)\n"
        "print(p.returncode)\n"
    )
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"
    assert r.stderr.splitlines() == ["parent", "child line"]


def test_a_child_forked_in_a_quiet_block_writes_to_the_real_stderr():
    code = (
        "import os\n"
        "from exprsim.faces.backends.native_log import quiet_native_stderr\n"
        "before = os.fstat(2).st_ino\n"
        "with quiet_native_stderr():\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        with quiet_native_stderr():  # its own relay, left in the child\n"
        "            pass\n"
        "        os._exit(0 if os.fstat(2).st_ino == before else 5)\n"
        "    _, status = os.waitpid(pid, 0)\n"
        "print(os.waitstatus_to_exitcode(status))\n"
    )
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"


def test_no_resource_warning_at_exit_after_a_quiet_block():
    """The old design kept a never-closed dup of fd 2: ResourceWarning at exit."""
    code = (
        "import gc\n"
        "from exprsim.faces.backends.native_log import quiet_native_stderr\n"
        "with quiet_native_stderr():\n"
        "    pass\n"
        "gc.collect()\n"
    )
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert "ResourceWarning" not in r.stderr and r.stderr == ""


# --------------------------------------------------------------------- worker pools


@pytest.fixture
def fake_detector():
    """A registered detector that notes in which threads it was built and closed."""
    built: list[str] = []
    closed: list[str] = []
    name = "audit9-fake"

    class Fake(_Recording):
        def __init__(self) -> None:
            super().__init__()
            built.append(threading.current_thread().name)

        def close(self) -> None:
            closed.append("closed")

    detect.register_detector(name, "test only")(Fake)
    try:
        yield name, built, closed
    finally:
        detect._REGISTRY.pop(name, None)


def _pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("exprsim-faces")]


def test_one_bounded_pool_whatever_the_workers_and_shutdown_hands_it_back(fake_detector):
    import exprsim
    from exprsim.faces.stream import shutdown_workers

    assert exprsim.shutdown_workers is shutdown_workers
    name, built, closed = fake_detector
    shutdown_workers()
    assert _pool_threads() == []
    images = [np.zeros((16, 16, 3), np.uint8)] * 8
    for w in (2, 3, 4, 2, 3):
        out = list(analyze_stream(images, name, workers=w))
        assert [it.index for it in out] == list(range(8))
    deadline = time.monotonic() + 10  # replaced pools' threads exit once idle
    while len(_pool_threads()) > 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_pool_threads()) <= 4  # the largest workers asked for; not 2 + 3 + 4
    shutdown_workers()
    assert _pool_threads() == []
    assert len(closed) == len(built) >= 2  # every thread's detector closed
    assert len(list(analyze_stream(images, name, workers=2))) == 8  # built again on demand
    shutdown_workers()
    assert _pool_threads() == [] and len(closed) == len(built)


def test_a_stream_runs_at_most_its_workers_on_a_larger_pool(fake_detector):
    from exprsim.faces.stream import shutdown_workers

    name, _, _ = fake_detector
    shutdown_workers()
    images = [np.zeros((16, 16, 3), np.uint8)] * 4
    list(analyze_stream(images, name, workers=4))  # a pool of 4
    lock = threading.Lock()
    state = {"now": 0, "most": 0}
    orig = _Recording.detect

    def counting(self, image):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            return orig(self, image)
        finally:
            with lock:
                state["now"] -= 1

    _Recording.detect = counting  # type: ignore[method-assign]
    try:
        out = list(analyze_stream(images * 6, name, workers=2))
    finally:
        _Recording.detect = orig  # type: ignore[method-assign]
    assert len(out) == 24 and 1 <= state["most"] <= 2
    shutdown_workers()


def test_closing_a_shared_detector_leaves_it_working_for_everyone() -> None:
    import numpy as np

    from exprsim.faces.pipeline import resolve_detector

    shared = resolve_detector("haar")
    with shared as det:  # a caller's `with` or close() must not break the other callers
        det.close()
    assert resolve_detector("haar") is shared
    assert shared.detect(np.zeros((64, 64, 3), np.uint8)) == []


def test_lines_written_at_exit_while_a_quiet_block_is_open_are_kept() -> None:
    """A daemon thread still inside a quiet block when the interpreter exits: the main
    thread's last lines (a log line, an uncaught traceback) reach stderr (were lost)."""
    import subprocess
    import sys

    code = (
        "import sys, threading, time\n"
        "from exprsim.faces.backends.native_log import quiet_native_stderr\n"
        "inside = threading.Event()\n"
        "def build():\n"
        "    with quiet_native_stderr():\n"
        "        inside.set()\n"
        "        time.sleep(30)\n"
        "threading.Thread(target=build, daemon=True).start()\n"
        "inside.wait(10)\n"
        "print('the last line', file=sys.stderr)\n"
        "raise SystemExit('exit message')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.splitlines() == ["the last line", "exit message"]
