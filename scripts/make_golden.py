"""Regenerate the golden files of the shipped default model (tests/models/golden/).

Run after retraining the default model, or after an intended change of the front end
(detector, landmarks, alignment: ``tests/faces/test_golden_crops.py`` then fails), and only
then:

    .venv/bin/python scripts/make_golden.py

Writes ``crops.npz`` (the aligned 112x112 RGB crops of every face in the bundled sample
photos, uint8 ``(N, 112, 112, 3)``) and ``embeddings.json`` (the shipped model's ``(N, 16)``
embeddings of those crops and the model's name/version).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import exprsim
from exprsim.faces.pipeline import analyze_image
from exprsim.samples import sample_images

OUT = Path(__file__).resolve().parents[1] / "tests" / "models" / "golden"


def main(argv: list[str] | None = None) -> None:
    # --help must not rewrite the golden files (a check of every script's --help did)
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    crops, names = [], []
    for path in sample_images():
        for j, face in enumerate(analyze_image(exprsim.load_image(path))):
            crops.append(face.crop)
            names.append(f"{path.name}#{j}")
    arr = np.stack(crops).astype(np.uint8)
    model = exprsim.load_model("default")
    emb = model.embed_crops(arr, reframe=False)  # aligned crops: the network path only
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / "crops.npz", crops=arr, names=np.array(names))
    doc = {
        "model": model.config.name_version,
        "faces": names,
        "embeddings": [[round(float(v), 7) for v in row] for row in emb],
    }
    (OUT / "embeddings.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(arr)} crops and embeddings to {OUT}")


if __name__ == "__main__":
    main()
