"""What re-framing costs ``Embedder.embed_crops`` (:mod:`exprsim.faces.reframe`).

256 FER+ Training crops, as they are and padded to 200% (``scripts/framing_shift.py``'s
``looser-2.0``), upscaled to 144 px RGB; crops/s with ``reframe=False`` and ``True``, best
of 3 calls after a warm-up. Needs ``../shared/data/fer2013``. Run it alone::

    .venv/bin/python benchmarks/reframe.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


def main() -> int:
    from framing_shift import reframe, upscale

    from exprsim.data.fer import load_fer_table
    from exprsim.models.embedder import load_model

    table = load_fer_table()
    faces = table.images[np.asarray(table.usage) == "Training"][:256]
    model = load_model()
    for name, factor in (("as-is", 1.0), ("looser-2.0", 2.0)):
        crops = upscale(reframe(faces, factor) if factor != 1.0 else faces, 144)
        for again in (False, True):
            model.embed_crops(crops[:64], reframe=again)
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                model.embed_crops(crops, reframe=again)
                best = min(best, time.perf_counter() - t0)
            print(f"{name} 144px reframe={again}: {len(crops) / best:.0f} crops/s", flush=True)
    return 0


if __name__ == "__main__":
    argparse.ArgumentParser(  # --help says what it runs, and runs nothing
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    sys.exit(main())
