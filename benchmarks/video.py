"""Video benchmark: wall time per stage of :func:`exprsim.video.analyze_video`.

Clips:

* ``real``: ``../shared/data/sample_media/WolfgangLanger_Pexels.mp4`` (640x360, 23.976 fps,
  19.7 s, one woman; Pexels licence), analysed whole at ``--fps`` (default 5);
* ``720p``: a synthesised 1280x720, 30 fps clip of ``--seconds`` (default 60) s: the real
  clip's frames upscaled (bicubic) and looped, encoded with libx264 (CRF 23, ultrafast)
  into a temporary folder (encoding time is not counted). This is the issue's target case:
  a 1-minute 720p 30 fps video at 5 fps sampling in < 30 s on 2 CPU cores.

Per stage the script prints seconds and throughput (decode: decoded frames/s; detect:
sampled frames/s; align (+ quality): faces/s; identity: dlib descriptors/s; embed: faces/s;
cluster: tracking + DBSCAN + smoothing + summaries, incl. their imports) and the total,
all measured in the same run. The embedder is the shipped default when present, else a
randomly initialised ``exprnet_s`` (same network, same cost). The detector graph is
built once before timing, in every front-end thread (the first MediaPipe call takes
about a second).

With ``--memory`` it also measures peak memory against clip length: 720p clips of
``--memory-seconds`` (default 60 and 600 s) are each analysed in a fresh child process,
which reports its wall time and peak RSS (``VmHWM``); the target is a 10-minute clip within
10% of the 1-minute one.

Usage::

    .venv/bin/python benchmarks/video.py [--seconds 60] [--fps 5] [--json out.json]
    .venv/bin/python benchmarks/video.py --skip-720p --memory [--memory-seconds 60 600]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sample_media"
REAL_CLIP = REAL / "WolfgangLanger_Pexels.mp4"


def synth_720p(src: Path, dst: Path, seconds: float, fps: int = 30) -> Path:
    """Upscale + loop ``src`` into a 1280x720 ``fps`` clip of ``seconds`` seconds."""
    import av
    import cv2

    with av.open(str(src)) as c:
        frames = [
            cv2.resize(f.to_ndarray(format="rgb24"), (1280, 720), interpolation=cv2.INTER_CUBIC)
            for f in c.decode(video=0)
        ]
    n = round(seconds * fps)
    with av.open(str(dst), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 1280, 720, "yuv420p"
        s.options = {"crf": "23", "preset": "ultrafast"}
        for i in range(n):
            for p in s.encode(av.VideoFrame.from_ndarray(frames[i % len(frames)], format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return dst


def embedder():
    from exprsim.errors import ModelError
    from exprsim.models.embedder import Embedder, EmbedderConfig, load_model
    from exprsim.models.registry import create_model

    try:
        return load_model("default"), "default"
    except ModelError:
        import torch

        torch.manual_seed(0)
        model = Embedder(create_model("exprnet_s"), EmbedderConfig(model="exprnet_s"))
        return model, "exprnet_s (random init; default weights absent)"


def run(name: str, clip: Path, emb, fps: float, redetect_every: int = 5) -> dict:
    from exprsim.faces.pipeline import resolve_detector
    from exprsim.faces.stream import analyze_stream
    from exprsim.io import load_image
    from exprsim.samples import sample_path
    from exprsim.video import VideoConfig, analyze_video

    face = load_image(sample_path("pexels_langer_frame000.jpg"))
    resolve_detector("mediapipe").detect(face)  # build the graphs before timing: the
    list(analyze_stream([face] * 8, "mediapipe"))  # caller's and the front-end threads'
    t0 = time.perf_counter()
    cfg = VideoConfig(fps=fps, redetect_every=redetect_every)
    a = analyze_video(clip, emb, cfg, classifier=None)
    wall = time.perf_counter() - t0
    info = a.info
    print(
        f"\n== {name} (redetect_every={redetect_every}): {clip.name} {info.width}x{info.height} "
        f"{info.fps:.3f} fps {info.duration:.1f} s; {a.n_sampled} sampled frames, "
        f"{len(a.faces)} faces, {a.n_persons} person(s) [{a.identity_method}], wall {wall:.1f} s"
    )
    print(f"{'stage':<9}{'seconds':>9}{'items':>7}  {'unit':<15}{'items/s':>9}{'frames/s':>10}")
    for r in a.timings.rows():
        print(
            f"{r['stage']:<9}{r['seconds']:>9.2f}{r['items']:>7}  {r['unit']:<15}"
            f"{r['per_second']:>9.1f}{r['sampled_frames_per_second']:>10.1f}"
        )
    return {
        "clip": name,
        "redetect_every": redetect_every,
        "wall_s": wall,
        "sampled": a.n_sampled,
        "faces": len(a.faces),
        "persons": a.n_persons,
        "stages": a.timings.rows(),
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory (``VmHWM``), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(clip: Path, fps: float) -> int:
    """Analyse ``clip`` in this (fresh) process; print wall time and peak RSS as JSON."""
    emb, _ = embedder()
    res = run(clip.name, clip, emb, fps)
    res["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(res))
    return 0


def memory(seconds: list[float], fps: float) -> list[dict]:
    """Peak RSS of :func:`child` on 720p clips of each length in ``seconds``."""
    import subprocess

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for sec in seconds:
            clip = synth_720p(REAL_CLIP, Path(tmp) / f"synth720p_{int(sec)}s.mp4", sec)
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(clip), "--fps", str(fps)],
                capture_output=True,
                text=True,
                check=True,
            )
            line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
            res = json.loads(line[len("RESULT ") :])
            res["clip_seconds"] = sec
            print(
                f"memory: {sec:.0f} s 720p clip: wall {res['wall_s']:.1f} s, "
                f"peak RSS {res['peak_rss_mb']:.0f} MB"
            )
            out.append(res)
            clip.unlink()
    if len(out) > 1:
        ratio = out[-1]["peak_rss_mb"] / out[0]["peak_rss_mb"]
        print(f"memory: longest / shortest clip peak RSS = {ratio:.3f} (target <= 1.10)")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the 720p clip")
    ap.add_argument("--fps", type=float, default=5.0, help="sampling rate")
    ap.add_argument("--skip-720p", action="store_true")
    ap.add_argument("--memory", action="store_true", help="peak RSS against clip length")
    ap.add_argument("--memory-seconds", type=float, nargs="+", default=[60.0, 600.0], metavar="S")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument(
        "--redetect-every",
        type=int,
        nargs="+",
        default=[5],
        metavar="N",
        help="VideoConfig.redetect_every values, each run on each clip (1 = full detection)",
    )
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    if args.child is not None:
        return child(args.child, args.fps)
    if not REAL_CLIP.is_file():
        print(f"missing {REAL_CLIP}", file=sys.stderr)
        return 2
    import torch

    emb, emb_name = embedder()
    print(f"embedder: {emb_name}; torch threads {torch.get_num_threads()}; cpus {os.cpu_count()}")
    print(f"load average before: {os.getloadavg()}")
    results = [run("real", REAL_CLIP, emb, args.fps, n) for n in args.redetect_every]
    if not args.skip_720p:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            clip = synth_720p(REAL_CLIP, Path(tmp) / "synth720p.mp4", args.seconds)
            print(f"\n(synthesised 720p clip in {time.perf_counter() - t0:.1f} s, not counted)")
            for n in args.redetect_every:
                results.append(run("720p", clip, emb, args.fps, n))
    if args.memory:
        results.extend(memory(args.memory_seconds, args.fps))
    print(f"\nload average after: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
