"""MediaPipe's model files run directly with LiteRT: finding, probing and opening them.

Both the BlazeFace detector (:mod:`exprsim.faces.backends.blazeface`) and the mesh-lite
landmarker (:class:`exprsim.faces.landmarks.LiteMeshLandmarker`) run ``.tflite`` files that
ship inside the mediapipe wheel (never downloaded) with the LiteRT interpreter
(``ai-edge-litert``), without MediaPipe's graphs.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.errors import BackendUnavailableError

LITERT_INSTALL = "pip install ai-edge-litert  (LiteRT, the TensorFlow Lite runtime)"


#: Most LiteRT threads :func:`inference_threads` gives one inference (small models scale
#: poorly beyond a few cores).
MAX_INFERENCE_THREADS = 4


#: cgroup files that cap the CPU time of this process (v2, then v1), read by
#: :func:`cpu_quota`.
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def cpu_quota() -> float | None:
    """CPUs' worth of time this process's cgroup allows (e.g. 2.0 for a container started
    with ``--cpus 2``), or ``None`` when there is no limit or it cannot be read."""
    try:
        if CGROUP_CPU_MAX.is_file():
            quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
            if quota == "max":
                return None
            q, p = float(quota), float(period)
        elif CGROUP_V1_QUOTA.is_file() and CGROUP_V1_PERIOD.is_file():
            q = float(CGROUP_V1_QUOTA.read_text().strip())
            p = float(CGROUP_V1_PERIOD.read_text().strip())
        else:
            return None
    except (OSError, ValueError):
        return None
    return q / p if q > 0 and p > 0 else None


def available_cores() -> int:
    """The cores this process may use: its CPU set (containers, ``taskset``), and its
    cgroup's CPU quota rounded up if lower; at least 1. ``os.cpu_count()`` counts the
    host's cores, which a container started with ``--cpus 2`` on a 64-core host may not
    use."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = cpu_quota()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def inference_threads() -> int:
    """LiteRT threads for a detector that runs alone (one image at a time, nothing else in
    the front end): :func:`available_cores`, at most :data:`MAX_INFERENCE_THREADS`.

    On this project's 2 cores, 2 threads make a BlazeFace or mesh-lite inference 1.7x faster
    (4.2 -> 2.5 ms) and per-image calls about 20% faster; detectors in the front end's worker
    threads keep 1 thread each (more would oversubscribe the cores: measured in
    docs/benchmarks.md).
    """
    return min(MAX_INFERENCE_THREADS, available_cores())


def mediapipe_model_file(relpath: str, who: str) -> Path:
    """The file ``relpath`` inside the installed mediapipe package.

    Raises:
        BackendUnavailableError: mediapipe (or the file) is missing; ``who`` names the
            feature that needs it.
    """
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(f"{who} needs mediapipe: pip install mediapipe==0.10.21")
    path = Path(next(iter(spec.submodule_search_locations))) / relpath
    if not path.is_file():
        raise BackendUnavailableError(f"{path} is missing from the mediapipe package")
    return path


def litert_probe(relpath: str, who: str) -> str | None:
    """``None`` when LiteRT and the model file ``relpath`` are here, else what is missing."""
    if importlib.util.find_spec("ai_edge_litert") is None:
        return f"missing ai_edge_litert: {LITERT_INSTALL}"
    try:
        mediapipe_model_file(relpath, who)
    except BackendUnavailableError as exc:
        return str(exc)
    return None


def open_interpreter(path: Path, threads: int) -> Any:
    """A LiteRT interpreter for ``path`` with its tensors allocated, run once on zeros
    (its start-up log lines, and the first run's, stay off the terminal)."""
    from exprsim.faces.backends.native_log import quiet_native_stderr

    with quiet_native_stderr():  # "Created TensorFlow Lite XNNPACK delegate" etc.
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=str(path), num_threads=threads)
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
        interp.set_tensor(inp["index"], np.zeros(inp["shape"], np.float32))
        interp.invoke()
    return interp
