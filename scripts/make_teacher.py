"""Make a distillation teacher file for the FER+ trainer (``TrainConfig.teacher``).

The file holds, for every Training face a run with ``--config`` loads (in load order, with
a hash of those faces): the teachers' mean emotion distribution (``dist``, the target of
``teacher_weight``) and each teacher's own shipped vector (``vecs``, the geometry of
``teacher_pair_weight``). Teachers are model folders (``model.safetensors`` +
``config.json``) with their own emotion classifier, e.g. earlier runs of the recipe.

    .venv/bin/python scripts/make_teacher.py runs/swa-v5 TEACHER_DIR ... \\
        --out .gpu/teacher4.npz [--config configs/default.json]
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    import json

    from exprsim.errors import ExprsimError
    from exprsim.training.ferplus_config import TrainConfig
    from exprsim.training.ferplus_data import make_teacher_targets
    from exprsim.training.registry import config_from_dict

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("models", nargs="+", help="teacher model folders")
    ap.add_argument("--out", required=True, help="the .npz file to write")
    ap.add_argument("--config", default="configs/default.json", help="the data settings")
    args = ap.parse_args(argv)
    try:
        with open(args.config) as f:
            cfg = config_from_dict(json.load(f))[1]
        if not isinstance(cfg, TrainConfig):
            raise ValueError(f"{args.config}: not a FER+ recipe config")
        t0 = time.perf_counter()
        path = make_teacher_targets(args.models, cfg, args.out)
    except (OSError, ValueError, ExprsimError) as exc:
        print(f"make_teacher: {exc}", file=sys.stderr)
        return 2
    print(f"{path}: {len(args.models)} teachers, {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
