"""End-to-end speed on phone-sized photos (12 MP JPEGs) and the decoding alone.

Makes three 4032x3024 JPEGs (quality 90) from bundled photos (upscaled, light noise, one
face each) in a temporary folder, then times, in this process:

* ``load_model().embed_images`` of the 8 stills of ../shared/data/sample_media/stills (at
  their own size; the bundled photos when ../shared is missing) and of the 3 big JPEGs:
  best of several rounds of a few seconds after 2 warm-up calls, faces/s;
* :func:`exprsim.io.decode_image` of one big JPEG, mean of 10 after 2 warm-up calls, ms.

Prints one JSON line. For an A/B, run it with ``PYTHONPATH`` set to another checkout's
``src`` in alternating processes, nothing else running (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import exprsim
from exprsim.io import decode_image
from exprsim.samples import sample_dir

STILLS = Path(__file__).resolve().parents[2] / "shared" / "data" / "sample_media" / "stills"


def make_big(folder: Path) -> list[Path]:
    out = []
    for k, name in enumerate(
        ["grace_hopper.jpg", "pexels_langer_frame432.jpg", "astronaut_eileen_collins.jpg"]
    ):
        with Image.open(sample_dir() / name) as im:
            big = im.convert("RGB").resize((4032, 3024), Image.BICUBIC)
        noise = np.random.default_rng(k).integers(-8, 8, (3024, 4032, 3))
        arr = np.clip(np.asarray(big).astype(np.int16) + noise, 0, 255).astype(np.uint8)
        path = folder / f"big{k}.jpg"
        Image.fromarray(arr).save(path, "JPEG", quality=90)
        out.append(path)
    return out


def rate(model: exprsim.Embedder, files: list[Path], rounds: int, seconds: float) -> float:
    for _ in range(2):
        model.embed_images(files)
    best = 0.0
    for _ in range(rounds):
        n, t = 0, time.perf_counter()
        while time.perf_counter() - t < seconds:
            n += len(model.embed_images(files))
        best = max(best, n / (time.perf_counter() - t))
    return best


def main() -> None:
    model = exprsim.load_model()
    stills = sorted(STILLS.iterdir()) if STILLS.is_dir() else sorted(sample_dir().glob("*.jpg"))
    with tempfile.TemporaryDirectory() as tmp:
        big = make_big(Path(tmp))
        data = big[0].read_bytes()
        for _ in range(2):
            decode_image(data)
        t = time.perf_counter()
        for _ in range(10):
            decode_image(data)
        decode_ms = (time.perf_counter() - t) / 10 * 1000
        out = {
            "stills_faces_s": rate(model, stills, 5, 3.0),
            "big_faces_s": rate(model, big, 3, 4.0),
            "decode_12mp_ms": decode_ms,
        }
    print(json.dumps(out))


if __name__ == "__main__":
    argparse.ArgumentParser(  # --help says what it runs, and runs nothing
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    main()
