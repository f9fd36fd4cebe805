"""Peers: the real `fer` package beside exprsim, in one run, on the same files (issue 15).

Contenders, each in a process of its own (the TensorFlow and torch/MediaPipe stacks never
share one), driven in interleaved rounds by this script:

* ``fer``: the `fer` package 25.10.3, ``FER(mtcnn=False)`` (OpenCV Haar cascade + the
  mini-Xception emotion CNN, TFLite), ``detect_emotions(cv2.imread(path))`` per image, run by
  the peer venv's Python (``make bench-peers`` builds ``.venv-peers``);
* ``exprsim default``: ``exprsim.load_model().embed_images(paths)``, one call for all the
  files, and one call per file (default ``mediapipe`` detector);
* ``exprsim mesh``: the default detector with face-mesh landmarks
  (``detector="mediapipe-mesh"``, the default's landmark stage before 2026-11-30), one call
  for all;
* ``exprsim fast``: the same with ``detector="mediapipe-fast"``.

Files: the stills in ``../shared/data/sample_media/stills`` (``src/exprsim/samples`` when
``../shared`` is missing), letterboxed to 640x480 (scaled to fit, centred on black) and saved
as JPEG (quality 90) in a temporary folder: every contender reads and decodes the same JPEG
files.

Reported: images/s and faces/s of each contender (median of ``--rounds`` interleaved rounds
of ``--seconds / --rounds`` seconds each, after a warm-up pass), the ratio exprsim / fer
(images/s: every contender gets the same files; faces/s ratios are in the JSON too), ms
per face of each exprsim stage (decode, BlazeFace detection, face-mesh landmarks,
alignment, quality, embedding; the stage functions called one by one from outside, median
of ``--stage-passes`` passes over the files), fer's own stages, and the peak RSS of each
process (``ru_maxrss``, and ``VmHWM`` from /proc, which does not carry the parent's memory
over ``exec``).

Without the peer venv the fer part is skipped (exit code 0) and the script says how to get
it.

Usage::

    make bench-peers                        # builds .venv-peers, then runs this script
    .venv/bin/python benchmarks/peers.py [--peer-python .venv-peers/bin/python]
        [--seconds 6] [--rounds 6] [--threads 2] [--json docs/results/peers.json]

This module imports only the standard library at the top: the same file is the worker
program of every contender, including the fer one, where exprsim is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STILLS = ROOT.parent / "shared" / "data" / "sample_media" / "stills"
SAMPLES = ROOT / "src" / "exprsim" / "samples"
DEFAULT_PEER_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
SIZE = (640, 480)  # width, height
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: Issue 15's targets for the default path (one batched call).
TARGET_FACES_PER_S = 150.0
TARGET_RATIO = 5.0
HOW_TO_GET_FER = (
    "the fer package (TensorFlow) is not installed here: `make bench-peers` builds its venv "
    "(.venv-peers: fer 25.10.3 + tensorflow-cpu) and runs this benchmark with it; or pass "
    "--peer-python PATH to a Python that can `from fer.fer import FER`"
)
#: name -> (worker, its rate command, label)
CONTENDERS: dict[str, tuple[str, str, str]] = {
    "fer": ("fer", "per_image", "`fer` 25.10.3, FER(mtcnn=False), per-image calls"),
    "default_per_image": ("default", "per_image", "exprsim default `mediapipe`, per-image calls"),
    "default_batch": ("default", "batch", "exprsim default `mediapipe`, one call for all"),
    "default_batch_serial": (
        "default",
        "batch_serial",
        "exprsim default `mediapipe`, one call for all, one front-end thread",
    ),
    "mesh_batch": (
        "mesh",
        "batch",
        "exprsim default with face-mesh landmarks (`mediapipe-mesh`), one call for all",
    ),
    "fast_per_image": ("fast", "per_image", "exprsim `mediapipe-fast`, per-image calls"),
    "fast_batch": ("fast", "batch", "exprsim `mediapipe-fast`, one call for all"),
}


# ------------------------------------------------------------------------ pure helpers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--peer-python",
        default=str(DEFAULT_PEER_PYTHON),
        help="Python of the venv with fer + TensorFlow (default: .venv-peers)",
    )
    ap.add_argument(
        "--images",
        default=None,
        help="folder of source images (default: ../shared/data/sample_media/stills, "
        "else src/exprsim/samples)",
    )
    ap.add_argument("--seconds", type=float, default=6.0, help="seconds per contender")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds (median)")
    ap.add_argument(
        "--stage-passes",
        type=int,
        default=5,
        help="passes over the files for the per-stage times (median)",
    )
    ap.add_argument("--threads", type=int, default=2, help="torch threads in the exprsim workers")
    ap.add_argument("--json", help="write the results here")
    # internal: the worker side of this script
    ap.add_argument("--worker", choices=("fer", "exprsim", "prepare"), help=argparse.SUPPRESS)
    ap.add_argument("--detector", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--files", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1 or args.stage_passes < 1 or args.threads < 1:
        ap.error("--seconds must be > 0; --rounds, --stage-passes and --threads >= 1")
    return args


def source_images(folder: str | Path | None = None) -> tuple[list[Path], str]:
    """The source images and a note on where they came from."""
    if folder is not None:
        where = Path(folder)
    elif STILLS.is_dir():
        where = STILLS
    else:
        where = SAMPLES
    files = sorted(p for p in where.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    note = str(where)
    if folder is None and where == SAMPLES:
        note += f" ({STILLS} not found)"
    return files, note


def letterbox_geometry(w: int, h: int, size: tuple[int, int] = SIZE) -> tuple[int, int, int, int]:
    """``(new_w, new_h, dx, dy)``: scale ``w x h`` to fit ``size`` and centre it."""
    tw, th = size
    s = min(tw / w, th / h)
    nw, nh = min(tw, round(w * s)), min(th, round(h * s))
    return nw, nh, (tw - nw) // 2, (th - nh) // 2


def peer_problem(peer_python: str | Path) -> str | None:
    """Why the fer contender cannot run (``None``: the peer Python exists)."""
    p = Path(peer_python)
    if not p.exists():
        return f"no peer Python at {p}: {HOW_TO_GET_FER}"
    if not os.access(p, os.X_OK):
        return f"{p} is not executable: {HOW_TO_GET_FER}"
    return None


def median_rate(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Median images/s and faces/s over rate rounds (``images``, ``faces``, ``seconds``)."""
    ips = [r["images"] / r["seconds"] for r in rounds]
    fps = [r["faces"] / r["seconds"] for r in rounds]
    return {
        "images_per_s": statistics.median(ips),
        "faces_per_s": statistics.median(fps),
        "rounds_images_per_s": [round(v, 2) for v in ips],
    }


def ratios(rates: dict[str, dict[str, float]], peer: str = "fer") -> dict[str, dict[str, float]]:
    """Each exprsim contender's images/s and faces/s divided by the peer's (same run)."""
    if peer not in rates:
        return {}
    base = rates[peer]
    out = {}
    for name, r in rates.items():
        if name == peer:
            continue
        out[name] = {
            "images": r["images_per_s"] / base["images_per_s"] if base["images_per_s"] else 0.0,
            "faces": r["faces_per_s"] / base["faces_per_s"] if base["faces_per_s"] else 0.0,
        }
    return out


def targets(rates: dict[str, dict[str, float]], rat: dict[str, dict[str, float]]) -> dict:
    """Issue 15's targets against the default path's one-call figures."""
    fps = rates.get("default_batch", {}).get("faces_per_s")
    ratio = rat.get("default_batch", {}).get("images")  # same files: same work per image
    return {
        "faces_per_s_target": TARGET_FACES_PER_S,
        "ratio_target": TARGET_RATIO,
        "default_batch_faces_per_s": fps,
        "default_batch_ratio_vs_fer": ratio,
        "faces_per_s_met": None if fps is None else fps >= TARGET_FACES_PER_S,
        "ratio_met": None if ratio is None else ratio >= TARGET_RATIO,
    }


def peak_rss_mb() -> dict[str, float]:
    """This process's peak RSS: ``ru_maxrss`` (KiB on Linux) and ``VmHWM`` from /proc."""
    import resource

    out = {"ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out["vmhwm_mb"] = int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return {k: round(v, 1) for k, v in out.items()}


# ------------------------------------------------------------------------ worker side


def _rate(fn: Callable[[], tuple[int, int]], seconds: float) -> dict[str, float]:
    images = faces = 0
    t0 = time.perf_counter()
    while True:
        n_img, n_faces = fn()
        images += n_img
        faces += n_faces
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return {"images": images, "faces": faces, "seconds": elapsed}


def _serve(handlers: dict[str, Callable[..., dict]]) -> None:
    """Answer one JSON line per JSON command line; the protocol owns the real stdout."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the libraries print goes to stderr, not into the protocol
    for line in iter(sys.stdin.readline, ""):
        msg = json.loads(line)
        if msg["cmd"] == "quit":
            break
        try:
            out = handlers[msg["cmd"]](**msg.get("args", {}))
        except Exception as exc:  # reported to the driver, which stops with the message
            out = {"error": f"{type(exc).__name__}: {exc}"}
        proto.write(json.dumps(out) + "\n")


def _median_ms_per(totals: list[dict[str, float]], n: int) -> dict[str, float]:
    keys = dict.fromkeys(k for t in totals for k in t)
    return {k: round(1000 * statistics.median(t.get(k, 0.0) for t in totals) / n, 3) for k in keys}


def fer_worker(files: list[str]) -> None:
    """The real fer package: Haar cascade + mini-Xception (TFLite), per image."""
    state: dict[str, Any] = {}

    def setup() -> dict:
        t0 = time.perf_counter()
        import cv2
        import fer
        from fer.fer import FER

        detector = FER(mtcnn=False)
        state.update(cv2=cv2, fer=detector)
        faces = per_image()[1]  # warm-up
        versions = {"fer": fer.__version__, "opencv": cv2.__version__}
        try:
            import tensorflow as tf

            versions["tensorflow"] = tf.__version__
        except ImportError:  # pragma: no cover
            pass
        return {
            "faces": faces,
            "images": len(files),
            "load_s": time.perf_counter() - t0,
            "versions": versions,
        }

    def per_image() -> tuple[int, int]:
        cv2, det = state["cv2"], state["fer"]
        return len(files), sum(len(det.detect_emotions(cv2.imread(p))) for p in files)

    def rate(name: str, seconds: float) -> dict:
        if name != "per_image":
            raise ValueError(f"fer has per-image calls only, not {name!r}")
        return _rate(per_image, seconds)

    def stages(passes: int) -> dict:
        cv2, det = state["cv2"], state["fer"]
        totals = []
        for _ in range(passes):
            t = dict.fromkeys(("decode", "detect", "detect_emotions"), 0.0)
            for p in files:
                t0 = time.perf_counter()
                img = cv2.imread(p)
                t1 = time.perf_counter()
                det.find_faces(img, bgr=True)  # Haar, gray conversion included
                t2 = time.perf_counter()
                det.detect_emotions(img)  # Haar again + crops + the CNN
                t3 = time.perf_counter()
                t["decode"] += t1 - t0
                t["detect"] += t2 - t1
                t["detect_emotions"] += t3 - t2
            totals.append(t)
        ms = _median_ms_per(totals, len(files))
        ms["classify"] = round(ms.pop("detect_emotions") - ms["detect"], 3)
        return {"per": "image", "ms": ms}

    _serve({"setup": setup, "rate": rate, "stages": stages, "rss": peak_rss_mb})


def exprsim_worker(files: list[str], detector: str, threads: int) -> None:
    """exprsim's ``embed_images`` with one detector, and its stages called one by one."""
    state: dict[str, Any] = {}
    det_name = None if detector == "default" else detector  # "default": embed_images(paths)

    def setup() -> dict:
        t0 = time.perf_counter()
        import torch

        import exprsim

        torch.set_num_threads(threads)
        state["embedder"] = exprsim.load_model()
        faces = batch()[1]  # warm-up (builds the MediaPipe graphs)
        versions = {
            "exprsim": exprsim.__version__,
            "torch": torch.__version__,
            "model": state["embedder"].config.name_version,
        }
        try:
            import cv2
            import mediapipe

            versions.update(mediapipe=mediapipe.__version__, opencv=cv2.__version__)
        except ImportError:  # pragma: no cover
            pass
        return {
            "faces": faces,
            "images": len(files),
            "load_s": time.perf_counter() - t0,
            "versions": versions,
        }

    def batch() -> tuple[int, int]:
        emb = state["embedder"]
        if det_name is None:
            return len(files), len(emb.embed_images(files))
        return len(files), len(emb.embed_images(files, detector=det_name))

    def batch_serial() -> tuple[int, int]:
        emb = state["embedder"]
        return len(files), len(emb.embed_images(files, detector=det_name, workers=1))

    def per_image() -> tuple[int, int]:
        emb = state["embedder"]
        if det_name is None:
            return len(files), sum(len(emb.embed_images([p])) for p in files)
        return len(files), sum(len(emb.embed_images([p], detector=det_name)) for p in files)

    def rate(name: str, seconds: float) -> dict:
        commands = {"batch": batch, "batch_serial": batch_serial, "per_image": per_image}
        return _rate(commands[name], seconds)

    def stages(passes: int) -> dict:
        import numpy as np

        from exprsim.faces.align import align_face
        from exprsim.faces.detect import downscale_for_detection
        from exprsim.faces.pipeline import resolve_detector
        from exprsim.faces.quality import QualityConfig, assess
        from exprsim.io import load_image

        embedder = state["embedder"]
        det = resolve_detector(det_name)
        align_cfg = embedder.config.preprocess.align_config()
        quality_cfg = QualityConfig()
        landmarker = getattr(det, "landmarker", None)
        totals, n_faces = [], 0
        for _ in range(passes):
            t = dict.fromkeys(("decode", "detect", "landmarks", "align", "quality", "embed"), 0.0)
            t.update(_detection_parts(det, None))
            crops = []
            for p in files:
                t0 = time.perf_counter()
                image = load_image(p)
                t1 = time.perf_counter()
                small, factor = downscale_for_detection(image, getattr(det, "max_side", None))
                cands = det.propose(small)  # BlazeFace passes + NMS
                t2 = time.perf_counter()
                if landmarker is not None:
                    hint = getattr(landmarker, "takes_hint", False)
                    for c in cands:
                        c = c.rescaled(factor)
                        if hint:  # mesh-lite: the eyes set the region's roll
                            landmarker.landmarks(image, c.box, hint=c.fallback)
                        else:  # the face-mesh graph
                            landmarker.landmarks(image, c.box)
                t3 = time.perf_counter()
                t["decode"] += t1 - t0
                t["detect"] += t2 - t1
                t["landmarks"] += t3 - t2
                for k, v in _detection_parts(det, small).items():
                    t[k] += v
                faces = det.detect(image)  # the faces the pipeline aligns (not timed here)
                for f in faces:
                    t4 = time.perf_counter()
                    crop = align_face(image, f.landmarks, align_cfg)
                    t5 = time.perf_counter()
                    assess(image, f, quality_cfg)
                    t6 = time.perf_counter()
                    t["align"] += t5 - t4
                    t["quality"] += t6 - t5
                    crops.append(crop)
            if crops:
                t7 = time.perf_counter()
                embedder.embed_crops(np.stack(crops), reframe=False)  # as embed_images does
                t["embed"] += time.perf_counter() - t7
            n_faces = len(crops)
            totals.append(t)
        return {"per": "face", "faces": n_faces, "ms": _median_ms_per(totals, max(n_faces, 1))}

    _serve({"setup": setup, "rate": rate, "stages": stages, "rss": peak_rss_mb})


def _detection_parts(det: Any, small: Any) -> dict[str, float]:
    """Seconds of each BlazeFace pass inside ``det.propose`` (MediaPipe detectors only).

    Re-runs the passes the ``mediapipe`` backend makes (full frame per range, then tiles,
    unless the short-range pass settles the image: ``escalate_below``); with
    ``small=None`` returns the zeroed keys. Empty for other detectors or when the backend's
    internals have changed.
    """
    ranges = {"short": (0,), "full": (1,), "auto": (0, 1)}.get(getattr(det, "range", ""), ())
    if not ranges or not hasattr(det, "_run") or not hasattr(det, "_tiled"):
        return {}
    keys = [f"detect_{'short' if s == 0 else 'full'}_range" for s in ranges]
    use_tiles = bool(getattr(det, "tiles", False)) and 0 in ranges
    if use_tiles:
        keys.append("detect_tiles")
    if small is None:
        return dict.fromkeys(keys, 0.0)
    out = {}
    try:
        out = dict.fromkeys(keys, 0.0)
        for sel, key in zip(ranges, keys, strict=False):
            t0 = time.perf_counter()
            cands = det._run(sel, small)
            out[key] = time.perf_counter() - t0
            close_up = getattr(det, "close_up", None)
            if sel == 0 and ranges == (0, 1) and close_up is not None and close_up(cands, small):
                return out  # the short-range pass settled the image: no more passes
        if use_tiles and min(small.shape[:2]) >= 240:
            t0 = time.perf_counter()
            det._tiled(small)
            out["detect_tiles"] = time.perf_counter() - t0
    except (AttributeError, TypeError):
        return {}
    return out


def prepare(sources: list[Path], out_dir: Path) -> list[str]:
    """Letterbox each source to 640x480 and save it as JPEG (quality 90) in ``out_dir``."""
    from PIL import Image

    out = []
    for src in sources:
        with Image.open(src) as im:
            rgb = im.convert("RGB")
        nw, nh, dx, dy = letterbox_geometry(*rgb.size)
        canvas = Image.new("RGB", SIZE, (0, 0, 0))
        canvas.paste(rgb.resize((nw, nh), Image.Resampling.LANCZOS), (dx, dy))
        dst = out_dir / f"{src.stem}.jpg"
        canvas.save(dst, "JPEG", quality=90)
        out.append(str(dst))
    return out


# ------------------------------------------------------------------------ driver side


class WorkerError(RuntimeError):
    pass


class Worker:
    """One contender's process, driven by JSON lines on its stdin/stdout."""

    def __init__(self, name: str, argv: list[str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("w")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
            cwd=ROOT,
        )

    def call(self, cmd: str, **args: Any) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps({"cmd": cmd, "args": args}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            raise WorkerError(f"{self.name} worker died during {cmd!r}:\n{self.log_tail()}")
        out = json.loads(line)
        if "error" in out:
            raise WorkerError(f"{self.name} worker, {cmd!r}: {out['error']}\n{self.log_tail()}")
        return out

    def log_tail(self, n: int = 15) -> str:
        self._log.flush()
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join("    " + s for s in lines[-n:])

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "–" if v is None else format(v, spec)


def report(res: dict) -> str:
    """The human-readable tables of a result dict."""
    lines = [
        f"files: {res['files']['n']} x 640x480 JPEG from {res['files']['source']}",
        f"rounds: {res['rounds']} x {res['seconds'] / res['rounds']:.2f} s per contender; "
        f"torch threads {res['threads']}",
        "",
    ]
    lines.append(
        f"{'contender':52s} {'images/s':>9s} {'faces/s':>8s} {'faces':>6s} {'x fer':>6s}  (x fer: images/s ratio)"
    )
    for name, r in res["rates"].items():
        rat = res["ratios"].get(name, {}).get("images")
        lines.append(
            f"{CONTENDERS[name][2]:52s} {r['images_per_s']:9.1f} {r['faces_per_s']:8.1f} "
            f"{r['faces_per_pass']:6d} {_fmt(rat, '.2f'):>6s}"
        )
    if res.get("fer_skipped"):
        lines.append(f"fer: skipped ({res['fer_skipped']})")
    lines.append("")
    for worker, st in res["stages"].items():
        total = sum(v for k, v in st["ms"].items() if not k.startswith("detect_"))
        parts = ", ".join(f"{k} {v:.2f}" for k, v in st["ms"].items())
        lines.append(f"stages, {worker} (ms per {st['per']}): {parts}; sum {total:.2f}")
    lines.append("")
    for worker, rss in res["peak_rss_mb"].items():
        lines.append(f"peak RSS, {worker}: " + ", ".join(f"{k} {v:.0f}" for k, v in rss.items()))
    t = res["targets"]
    lines.append("")
    lines.append(
        f"issue 15 targets: default one-call {_fmt(t['default_batch_faces_per_s'])} faces/s "
        f"(target >= {t['faces_per_s_target']:.0f}); "
        f"{_fmt(t['default_batch_ratio_vs_fer'], '.2f')}x fer (target >= {t['ratio_target']:.0f}x)"
    )
    return "\n".join(lines)


def drive(args: argparse.Namespace) -> dict:
    sources, source_note = source_images(args.images)
    if not sources:
        raise SystemExit(f"no images in {source_note}")
    problem = peer_problem(args.peer_python)
    if problem:
        print(f"fer part skipped: {problem}", file=sys.stderr)
    me = str(Path(__file__).resolve())
    tmp = Path(tempfile.mkdtemp(prefix="exprsim-peers-"))
    workers: dict[str, Worker] = {}
    try:
        files_dir = tmp / "files"
        files_dir.mkdir()
        # preparing in a child keeps PIL/numpy out of this process (and out of the
        # workers' ru_maxrss, which Linux carries over fork + exec)
        subprocess.run(
            [
                sys.executable,
                me,
                "--worker",
                "prepare",
                "--files",
                str(files_dir),
                "--images",
                str(sources[0].parent),
            ],
            check=True,
        )
        files = sorted(str(p) for p in files_dir.iterdir())
        files_arg = ["--files", str(files_dir)]
        setups: dict[str, dict] = {}
        if not problem:
            w = Worker("fer", [args.peer_python, me, "--worker", "fer", *files_arg], tmp)
            try:
                setups["fer"] = w.call("setup")
                workers["fer"] = w
            except WorkerError as exc:
                w.close()
                problem = f"the peer Python could not run fer ({exc}); {HOW_TO_GET_FER}"
                print(f"fer part skipped: {problem}", file=sys.stderr)
        for key, det in (
            ("default", "default"),
            ("mesh", "mediapipe-mesh"),
            ("fast", "mediapipe-fast"),
        ):
            argv = [
                sys.executable,
                me,
                "--worker",
                "exprsim",
                "--detector",
                det,
                "--threads",
                str(args.threads),
                *files_arg,
            ]
            workers[key] = Worker(key, argv, tmp)
            setups[key] = workers[key].call("setup")
        names = [n for n in CONTENDERS if CONTENDERS[n][0] in workers]
        per_round = args.seconds / args.rounds
        rounds: dict[str, list[dict]] = {n: [] for n in names}
        for i in range(args.rounds):
            for n in names:
                wname, cmd, _ = CONTENDERS[n]
                rounds[n].append(workers[wname].call("rate", name=cmd, seconds=per_round))
            print(f"round {i + 1}/{args.rounds} done", file=sys.stderr)
        rates = {}
        for n in names:
            r = median_rate(rounds[n])
            r["faces_per_pass"] = setups[CONTENDERS[n][0]]["faces"]
            rates[n] = r
        stages = {w: workers[w].call("stages", passes=args.stage_passes) for w in workers}
        for w in ("default", "mesh", "fast"):
            # what the batched call costs beyond the stages timed one by one
            fps = rates[f"{w}_batch"]["faces_per_s"]
            if fps:
                ms = stages[w]["ms"]
                timed = sum(v for k, v in ms.items() if not k.startswith("detect_"))
                ms["unaccounted"] = round(1000 / fps - timed, 3)
        rss = {w: workers[w].call("rss") for w in workers}
        rss["driver"] = peak_rss_mb()
    finally:
        for w in workers.values():
            w.close()
        shutil.rmtree(tmp, ignore_errors=True)
    rat = ratios(rates)
    return {
        "files": {
            "n": len(files),
            "source": source_note,
            "size": f"{SIZE[0]}x{SIZE[1]}",
            "names": [Path(f).name for f in files],
        },
        "seconds": args.seconds,
        "rounds": args.rounds,
        "stage_passes": args.stage_passes,
        "threads": args.threads,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_at_end": list(os.getloadavg()),
        },
        "versions": {w: s.get("versions", {}) for w, s in setups.items()},
        "load_s": {w: round(s["load_s"], 2) for w, s in setups.items()},
        "fer_skipped": problem,
        "rates": rates,
        "ratios": rat,
        "stages": stages,
        "peak_rss_mb": rss,
        "targets": targets(rates, rat),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker == "prepare":
        sources, _ = source_images(args.images)
        prepare(sources, Path(args.files))
        return 0
    if args.worker is not None:
        files = sorted(str(p) for p in Path(args.files).iterdir())
        if args.worker == "fer":
            fer_worker(files)
        else:
            exprsim_worker(files, args.detector, args.threads)
        return 0
    res = drive(args)
    print(report(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
