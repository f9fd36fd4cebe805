"""Where the chin and the brows lie relative to the 5 landmarks (``faces.quality.cut_off``).

MediaPipe's face mesh is run on FER+ Training faces (``--per-class`` random faces of each
majority emotion, seed 0; each 48x48 face upscaled to 192 px and centred on a gray 384 px
canvas so that the mesh sees the whole face). For each face, with ``L`` the distance from
the eyes' centre to the mouth's centre (the 5 landmarks of ``mesh_to_five``), the script
prints the percentiles of

* the chin (mesh point 152) below the mouth centre, along that line, in ``L``;
* the brows' centre (mesh points 105, 334) above the eyes' centre, in ``L``.

``faces.quality.CHIN_BELOW_MOUTH`` and ``BROWS_ABOVE_EYES`` are just under the 1st
percentiles, so that a face is flagged as cut off only when even a short chin or low brows
would lie outside the image. Only Training faces are read.

    python scripts/face_extent.py --per-class 80
"""

from __future__ import annotations

import argparse
import json

import numpy as np

CHIN, BROWS = 152, (105, 334)


def extents(mesh: np.ndarray) -> tuple[float, float]:
    """``(chin below mouth, brows above eyes)`` in eye-to-mouth distances for one mesh."""
    from exprsim.faces.landmarks import mesh_to_five

    five = mesh_to_five(mesh).astype(np.float64)
    eyes, mouth = five[:2].mean(axis=0), five[3:].mean(axis=0)
    down = mouth - eyes
    length = float(np.linalg.norm(down))
    unit = down / length
    brows = mesh[list(BROWS), :2].mean(axis=0)
    return (
        float(np.dot(mesh[CHIN, :2] - mouth, unit) / length),
        float(np.dot(eyes - brows, unit) / length),
    )


def main() -> None:
    import cv2
    import mediapipe as mp

    from exprsim.data.fer import load_ferplus

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-class", type=int, default=80)
    args = ap.parse_args()
    split = load_ferplus("Training")
    rng = np.random.default_rng(0)
    majority = split.majority
    idx = np.concatenate(
        [rng.choice(np.flatnonzero(majority == c), args.per_class, replace=False) for c in range(8)]
    )
    mesher = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1)
    rows = []
    for i in idx:
        canvas = np.full((384, 384), 128, np.uint8)
        canvas[96:288, 96:288] = cv2.resize(
            split.images[i], (192, 192), interpolation=cv2.INTER_CUBIC
        )
        found = mesher.process(np.repeat(canvas[:, :, None], 3, axis=2)).multi_face_landmarks
        if found:
            mesh = np.array([[p.x * 384, p.y * 384] for p in found[0].landmark])
            rows.append(extents(mesh))
    a = np.array(rows)
    qs = [1, 5, 50, 95]

    def percentiles(column: np.ndarray) -> dict[int, float]:
        return dict(zip(qs, np.percentile(column, qs).round(3).tolist(), strict=True))

    print(
        json.dumps(
            {
                "faces": len(a),
                "asked": len(idx),
                "chin_below_mouth": percentiles(a[:, 0]),
                "brows_above_eyes": percentiles(a[:, 1]),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
