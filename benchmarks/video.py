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
built once before timing (the first MediaPipe call takes about a second).

Usage::

    nice -n 19 .venv/bin/python benchmarks/video.py [--seconds 60] [--fps 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

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


def run(name: str, clip: Path, emb, fps: float) -> dict:
    from exprsim.faces.pipeline import resolve_detector
    from exprsim.video import VideoConfig, analyze_video

    det = resolve_detector("mediapipe")
    det.detect(np.zeros((360, 640, 3), np.uint8))  # build the graphs before timing
    t0 = time.perf_counter()
    a = analyze_video(clip, emb, VideoConfig(fps=fps), classifier=None)
    wall = time.perf_counter() - t0
    info = a.info
    print(
        f"\n== {name}: {clip.name} {info.width}x{info.height} {info.fps:.3f} fps "
        f"{info.duration:.1f} s; {a.n_sampled} sampled frames, {len(a.faces)} faces, "
        f"{a.n_persons} person(s) [{a.identity_method}], wall {wall:.1f} s"
    )
    print(f"{'stage':<9}{'seconds':>9}{'items':>7}  {'unit':<15}{'items/s':>9}{'frames/s':>10}")
    for r in a.timings.rows():
        print(
            f"{r['stage']:<9}{r['seconds']:>9.2f}{r['items']:>7}  {r['unit']:<15}"
            f"{r['per_second']:>9.1f}{r['sampled_frames_per_second']:>10.1f}"
        )
    return {"clip": name, "wall_s": wall, "sampled": a.n_sampled, "stages": a.timings.rows()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the 720p clip")
    ap.add_argument("--fps", type=float, default=5.0, help="sampling rate")
    ap.add_argument("--skip-720p", action="store_true")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    if not REAL_CLIP.is_file():
        print(f"missing {REAL_CLIP}", file=sys.stderr)
        return 2
    import torch

    emb, emb_name = embedder()
    print(f"embedder: {emb_name}; torch threads {torch.get_num_threads()}; cpus {os.cpu_count()}")
    print(f"load average before: {os.getloadavg()}")
    results = [run("real", REAL_CLIP, emb, args.fps)]
    if not args.skip_720p:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            clip = synth_720p(REAL_CLIP, Path(tmp) / "synth720p.mp4", args.seconds)
            print(f"\n(synthesised 720p clip in {time.perf_counter() - t0:.1f} s, not counted)")
            results.append(run("720p", clip, emb, args.fps))
    print(f"\nload average after: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
