"""Run several FER+ training recipes side by side on one CUDA machine (ablations).

Each job is the shipped two-stage recipe (``configs/default.json``, then
``configs/default-swa30.json`` started from stage 1's weights), with per-job overrides of
either stage. Jobs run as separate processes (``--parallel`` at a time, in the order given),
each through :func:`exprsim.training.ferplus.train` with ``device="cuda"``; the recipe
itself (epochs, batch, losses, augmentation) is unchanged, so a job's CPU cost is the
shipped recipe's. Every choice is still made on the validation faces.

Students (``STUDENTS``) distil the teachers' mean emotion distribution into the same
recipe (``TrainConfig.teacher``); each starts once its teacher jobs have finished.

The checkout travels to the GPU machine (64 MiB at most, the pack included, ~46 MiB): move
run weights the jobs do not read out of the working tree for the call, and back after.

The machine needs no ``../shared``: ``--make-pack`` writes the FER+ Training faces a run
loads (PublicTest duplicates dropped) into one small file (lossless WebP per face), which
the sweep decodes and checks against the pixel hash stored beside it.

    python scripts/gpu_sweep.py --make-pack .gpu/ferplus-train.pack.npz      # here
    PYTHONPATH=src python3 scripts/gpu_sweep.py --pack .gpu/ferplus-train.pack.npz \\
        --jobs base-s0 mix02-s0 --out $OUT --deadline 480                       # there
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: job name -> (stage-1 overrides, stage-2 overrides)
JOBS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "base-s0": ({}, {}),
    "base-s1": ({"seed": 1, "split_seed": 0}, {"seed": 1, "split_seed": 0}),
    "mix02-s0": ({"mixup_alpha": 0.2}, {"mixup_alpha": 0.2}),
    "mix02-s1": (
        {"mixup_alpha": 0.2, "seed": 1, "split_seed": 0},
        {"mixup_alpha": 0.2, "seed": 1, "split_seed": 0},
    ),
    "mix05-s0": ({"mixup_alpha": 0.5}, {"mixup_alpha": 0.5}),
    "pair2-s0": ({"pair_weight": 0.125}, {"pair_weight": 0.125}),
    "base-s2": ({"seed": 2, "split_seed": 0}, {"seed": 2, "split_seed": 0}),
    "mix02-s2": (
        {"mixup_alpha": 0.2, "seed": 2, "split_seed": 0},
        {"mixup_alpha": 0.2, "seed": 2, "split_seed": 0},
    ),
}
# the readout's own geometry as the loss: the per-face Hellinger term in place of the KL
# (weight 2: the KL's curvature at the votes), or a pair term on sqrt(p); seeds 0-2
_HEL = {"distribution_loss": "hellinger", "kl_weight": 2.0}
_PP = {"prob_pair_weight": 0.25}
for _seed in range(3):
    _s = {"seed": _seed, "split_seed": 0}
    JOBS[f"hel-s{_seed}"] = ({**_HEL, **_s}, {**_HEL, **_s})
    JOBS[f"pp-s{_seed}"] = ({**_PP, **_s}, {**_PP, **_s})

# a wider trunk (7/8 of the reference width) with the epochs the 3-hour CPU budget holds at
# its step cost: a step takes 0.983 s against 0.705 s at 3/4 width (batch 128, measured
# alone on the 2-core machine), so 24 cosine epochs + 22 averaged ones (~170 CPU minutes;
# configs/wide78.json + configs/wide78-swa.json) replace the shipped 32 + 30. With
# BatchNorm folded it embeds ~500 crops/s there (the network alone; the floor is 400).
_W78_KW = {"readout": "hybrid", "flip_average": False,
           "stages": [[28], [56, 56], [112, 112], [224, 224]]}  # fmt: skip
for _seed in range(3):
    _s = {"seed": _seed, "split_seed": 0, "model_kwargs": _W78_KW}
    JOBS[f"w78-s{_seed}"] = (
        {**_s, "epochs": 24, "warmup_epochs": 0.83},
        {**_s, "epochs": 22, "swa_epochs": 22},
    )

#: distillation jobs: name -> (teacher jobs, also the shipped model as a teacher, weight).
#: A student starts once its teachers have finished; its training targets are
#: ``(1 - weight) * votes + weight * the teachers' mean emotion distribution`` in both
#: stages (``TrainConfig.teacher``), everything else the shipped recipe.
STUDENTS: dict[str, tuple[tuple[str, ...], bool, float]] = {
    "student-w05": (("base-s0", "base-s1", "base-s2"), True, 0.5),
    "student-w08": (("base-s0", "base-s1", "base-s2"), True, 0.8),
}
SHIPPED = "src/exprsim/models/weights/default"

#: one-stage jobs of ``configs/quick-v5.json`` (the quick recipe until v6: 13 epochs, ~37
#: minutes on the AMD CPU): name -> overrides.
#: Each keeps the quick recipe's per-epoch cost; they ask what a short schedule wants.
QUICK: dict[str, dict[str, Any]] = {
    "q-base": {},
    "q-noerase": {"augmentation": {"erase_p": 0.0}},
    "q-light": {"augmentation": {"erase_p": 0.0, "rotate_deg": 8.0, "scale": (0.95, 1.05)}},
    "q-lr1": {"lr": 0.1},
    "q-wd1": {"weight_decay": 1e-4},
    "q-swa7": {"swa_epochs": 7},
}

#: one-stage jobs that re-run the last (averaged) stage of a shipped ensemble member from
#: its committed first-stage run (``init_from`` in the config): name -> (config, overrides).
#: ``ctrl-m*`` are v7's three robust stages as they are (a copy on the GPU, to compare
#: with); ``bal*-m*`` add ``class_balance`` (deferred re-weighting of the per-face term
#: towards rare emotions, exponent 0.25 / 0.5 / 1). Same epochs and per-epoch cost.
V7_STAGES = (
    "configs/robust-swa-v5.json",
    "configs/robust-ens-s1-swa.json",
    "configs/robust-wide78-swa.json",
)
LAST_STAGE: dict[str, tuple[str, dict[str, Any]]] = {}
for _m, _path in enumerate(V7_STAGES):
    LAST_STAGE[f"ctrl-m{_m}"] = (_path, {})
    for _tag, _power in (("bal05", 0.5), ("bal1", 1.0), ("bal025", 0.25)):
        LAST_STAGE[f"{_tag}-m{_m}"] = (_path, {"class_balance": _power})
    # a second draw of the stage's randomness (order, augmentation, dropout; seed 10 + m),
    # same validation faces (split_seed 0, the hold-out of all three first stages)
    _rep = {"seed": 10 + _m, "split_seed": 0}
    LAST_STAGE[f"ctrl-m{_m}-r"] = (_path, _rep)
    LAST_STAGE[f"bal1-m{_m}-r"] = (_path, {**_rep, "class_balance": 1.0})
    # the original FER2013 label as one more vote in the per-face target: for disgust
    # faces only (f13d), or for every label (f13a); needs a pack made with its labels
    # (both failed their CPU screens, runs/f13d-cpu.rule.txt and runs/f13a-cpu.rule.txt:
    # kept for reference, not to be run by those rules)
    _f13d = {"fer2013_vote": 1.0, "fer2013_vote_classes": ("disgust",)}
    LAST_STAGE[f"f13d-m{_m}"] = (_path, _f13d)
    LAST_STAGE[f"f13a-m{_m}"] = (_path, {"fer2013_vote": 1.0})
    LAST_STAGE[f"f13d-m{_m}-r"] = (_path, {**_rep, **_f13d})  # runs/f13d.rule.txt's 2nd draw

log = logging.getLogger("gpu_sweep")


def make_pack(out: Path) -> None:
    """FER+ Training faces (as a run loads them) -> lossless WebP bytes + votes + hash."""
    import cv2

    from exprsim.data.fer import load_ferplus
    from exprsim.training.ferplus_data import fer2013_as_ferplus, pixel_digest

    split = load_ferplus("Training", drop_duplicates_of="PublicTest")
    blobs = []
    for im in split.images:
        ok, buf = cv2.imencode(".webp", im, [cv2.IMWRITE_WEBP_QUALITY, 101])  # 101: lossless
        if not ok:
            raise RuntimeError("WebP encoding failed")
        blobs.append(buf.ravel())
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    digest = pixel_digest(split.images)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        webp=np.concatenate(blobs),
        offsets=offsets,
        votes=split.votes,
        rows=split.rows,
        fer2013=fer2013_as_ferplus(split.emotion),
        shape=np.array(split.images.shape),
        digest=np.array(digest),
    )
    print(f"{out}: {len(blobs)} faces, {out.stat().st_size / 1e6:.1f} MB, digest {digest}")


def unpack(pack: Path, out: Path) -> Path:
    """The pack decoded into :func:`exprsim.training.ferplus_data.pack_ferplus`'s format."""
    import cv2

    from exprsim.training.ferplus_data import pixel_digest

    z = np.load(pack)
    offs, blob = z["offsets"], z["webp"]
    images = np.empty(tuple(z["shape"]), np.uint8)
    for i in range(len(images)):
        im = cv2.imdecode(blob[offs[i] : offs[i + 1]], cv2.IMREAD_GRAYSCALE)
        if im is None:  # an OpenCV built without WebP: Pillow reads it too
            import io

            from PIL import Image

            im = np.asarray(
                Image.open(io.BytesIO(blob[offs[i] : offs[i + 1]].tobytes())).convert("L")
            )
        images[i] = im
    digest = pixel_digest(images)
    if digest != str(z["digest"]):
        raise SystemExit(f"decoded faces differ from the packed ones ({digest})")
    extra = {"fer2013": z["fer2013"]} if "fer2013" in z.files else {}  # older packs: none
    np.savez(out, images=images, votes=z["votes"], rows=z["rows"], **extra)
    return out


def _config(path: str, over: dict[str, Any]) -> Any:
    from dataclasses import replace

    from exprsim.config import load_json
    from exprsim.training.ferplus_config import TrainConfig

    cfg = load_json(TrainConfig, ROOT / path)
    if "augmentation" in over:  # nested: only the named augmentation fields change
        over = {**over, "augmentation": replace(cfg.augmentation, **over["augmentation"])}
    return replace(cfg, **over)


def worker(spec: dict[str, Any]) -> None:
    """One job: stage 1 then stage 2, on CUDA (run in its own process)."""
    from dataclasses import replace

    from exprsim.training.ferplus import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    common = {"device": spec["device"], "data_dir": spec["data"], "num_threads": 2}
    if spec.get("smoke"):  # a check of the machinery, not a recipe
        common.update(epochs=1, max_train=600)
    out = Path(spec["out"])
    t0 = time.perf_counter()
    if spec["name"] in QUICK or spec["name"] in LAST_STAGE:  # one stage
        if spec["name"] in QUICK:
            cfg, stage = _config("configs/quick-v5.json", {**common, **QUICK[spec["name"]]}), 1
        else:
            path, over = LAST_STAGE[spec["name"]]
            cfg, stage = _config(path, {**common, **over}), 2
            cfg = replace(cfg, init_from=str(ROOT / str(cfg.init_from)))
        if spec.get("smoke"):
            cfg = replace(cfg, swa_epochs=1)
        r = train(cfg, out / f"stage{stage}", progress=False)
        summary = {"job": spec["name"], f"stage{stage}_seconds": time.perf_counter() - t0}
        summary[f"stage{stage}"] = r.final_metrics
        (out / "summary.json").write_text(json.dumps(summary))
        return
    if spec["name"] in STUDENTS:
        from exprsim.training.ferplus_data import make_teacher_targets

        names, shipped, weight = STUDENTS[spec["name"]]
        if spec.get("teacher"):  # made beforehand (make_teacher_targets), checked on load
            teacher = Path(spec["teacher"])
        else:
            models = [out.parent / n / "stage2" for n in names]
            models += [ROOT / SHIPPED] if shipped else []
            base = _config("configs/default.json", common)
            teacher = make_teacher_targets(models, base, out / "teacher.npz")
        s1 = s2 = {"teacher": str(teacher), "teacher_weight": weight}
    else:
        s1, s2 = JOBS[spec["name"]]
    cfg1 = _config("configs/default.json", {**common, **s1})
    r1 = train(cfg1, out / "stage1", progress=False)
    t1 = time.perf_counter()
    cfg2 = _config("configs/default-swa30.json", {**common, **s2, "init_from": str(out / "stage1")})
    if spec.get("smoke"):
        cfg2 = replace(cfg2, swa_epochs=1)
    r2 = train(cfg2, out / "stage2", progress=False)
    t2 = time.perf_counter()
    summary = {
        "job": spec["name"],
        "stage1_seconds": t1 - t0,
        "stage2_seconds": t2 - t1,
        "stage1": r1.final_metrics,
        "stage2": r2.final_metrics,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def _pack_results(
    out: Path, names: list[str], per_tar: int, state_of: set[str] | None = None
) -> None:
    """Results into tarballs; ``state_of``: jobs whose resumable state (``state.pt``,
    ``last.safetensors``) goes too (``None``: every job's)."""
    keep = {
        "stage1": ("metrics.jsonl", "readout.jsonl", "config.json", "train_config.json"),
        "stage2": (
            "metrics.jsonl",
            "readout.jsonl",
            "swa.json",
            "config.json",
            "train_config.json",
            "model.safetensors",
            "last.safetensors",  # with state.pt: the run can be resumed / extended anywhere
            "state.pt",
        ),
    }
    for t in range(0, len(names), per_tar):
        with tarfile.open(out / f"runs-{t // per_tar}.tar", "w") as tar:
            for name in names[t : t + per_tar]:
                job = out / "jobs" / name
                for stage, files in keep.items():
                    for f in files:
                        if f in ("state.pt", "last.safetensors") and not (
                            state_of is None or name in state_of
                        ):
                            continue
                        if (job / stage / f).is_file():
                            tar.add(job / stage / f, arcname=f"{name}/{stage}/{f}")
                for f in ("summary.json", "log.txt"):
                    if (job / f).is_file():
                        tar.add(job / f, arcname=f"{name}/{f}")


def _gpu_line() -> None:
    q = "name,utilization.gpu,memory.used,clocks.sm"
    try:
        r = subprocess.run(
            ["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        print("gpu:", r.stdout.strip(), flush=True)
    except (OSError, subprocess.TimeoutExpired):
        pass


def _job_epochs(name: str) -> int:
    """Epochs a job runs, both stages (for the deadline projection)."""
    if name in LAST_STAGE or name in QUICK:
        path = LAST_STAGE[name][0] if name in LAST_STAGE else "configs/quick-v5.json"
        return int(json.loads((ROOT / path).read_text())["epochs"])
    return 62


def _epoch_rows(job: Path) -> list[dict[str, Any]]:
    """A job's finished epochs (``metrics.jsonl`` rows of both stages, in order)."""
    rows = []
    for stage in ("stage1", "stage2"):
        f = job / stage / "metrics.jsonl"
        if f.is_file():
            rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return rows


def _epoch_seconds(rows: list[dict[str, Any]], last: int = 3) -> float | None:
    """Mean wall seconds of the last ``last`` epochs of ``rows`` (:func:`_epoch_rows`),
    leaving out the first epoch (CUDA start-up, kernel choice); None before two epochs."""
    secs = [float(r["seconds"]) for r in rows[1:] if "seconds" in r]
    return float(np.mean(secs[-last:])) if secs else None


class _Shedder:
    """Stop the last-started job while the slowest one would miss the deadline.

    A job's end is projected from the wall time of its latest epochs (its first one, which
    pays the start-up, left out) times the epochs it has left, plus ``tail`` seconds for the
    readout, BatchNorm pass and export. Jobs share one GPU, so every stopped job speeds the
    others up: after a stop nothing more is stopped for ``window`` seconds, and nothing is
    stopped while a running job has fewer than two epochs (no rate yet). (Until 2026-12-01
    the rate was epochs counted over a 60 s window, which undercounts by up to one epoch per
    window and stopped jobs that would have finished well in time, twice.)
    """

    def __init__(self, t0: float, deadline: float, window: float = 60.0) -> None:
        self.t0, self.deadline, self.window = t0, deadline, window
        self.tail = 30.0
        self.last_stop = t0

    def projected_end(self, running: dict[str, Any], work: Path, now: float) -> float | None:
        """Latest projected end over the running jobs (epoch seconds), None if unknown."""
        worst = 0.0
        for name in running:
            rows = _epoch_rows(work / "jobs" / name)
            per_epoch = _epoch_seconds(rows)
            if per_epoch is None:
                return None
            left = max(0, _job_epochs(name) - len(rows))
            worst = max(worst, now + left * per_epoch + self.tail)
        return worst

    def __call__(self, running: dict[str, Any], work: Path, done: dict[str, int]) -> None:
        now = time.time()
        if len(running) < 2 or now - self.last_stop < self.window:
            return
        worst = self.projected_end(running, work, now)
        if worst is not None and worst > self.t0 + self.deadline:
            name = list(running)[-1]
            p, logf = running.pop(name)
            p.kill()
            logf.close()
            done[name] = -9
            self.last_stop = now
            print(
                f"{now - self.t0:7.1f} s  stopped {name}: projected end "
                f"{worst - self.t0:.0f} s > deadline {self.deadline:.0f} s",
                flush=True,
            )


def sweep(args: argparse.Namespace) -> int:
    t0 = time.time()
    out = Path(args.out)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    _gpu_line()
    data = unpack(Path(args.pack), work / "ferplus-train.npz")
    print(f"data unpacked in {time.time() - t0:.1f} s", flush=True)
    pending = list(args.jobs)
    running: dict[str, tuple[subprocess.Popen[bytes], Any]] = {}
    done: dict[str, int] = {}
    shed = _Shedder(t0, args.deadline)
    while pending or running:
        while pending and len(running) < args.parallel:
            ready = [
                n
                for n in pending
                if args.teacher or all(t in done for t in STUDENTS.get(n, ((),))[0])
            ]
            if not ready:
                if not running:  # waiting for teachers that are not among the jobs
                    print(f"not run (teachers missing): {' '.join(pending)}", flush=True)
                    pending.clear()
                break
            name = ready[0]
            pending.remove(name)
            job = work / "jobs" / name
            job.mkdir(parents=True, exist_ok=True)
            spec = {
                "name": name,
                "out": str(job),
                "data": str(data),
                "device": args.device,
                "smoke": args.smoke,
                "teacher": str(Path(args.teacher).resolve()) if args.teacher else None,
            }
            logf = (job / "log.txt").open("w")
            (job / "started").write_text(str(time.time()))
            env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1"}
            p = subprocess.Popen(
                [sys.executable, __file__, "--worker", json.dumps(spec)],
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=env,
            )
            running[name] = (p, logf)
            print(f"{time.time() - t0:7.1f} s  start {name}", flush=True)
        time.sleep(2)
        for name, (p, logf) in list(running.items()):
            if p.poll() is not None:
                logf.close()
                done[name] = p.returncode
                del running[name]
                print(f"{time.time() - t0:7.1f} s  {name} exit {p.returncode}", flush=True)
        if int(time.time() - t0) % 60 < 2:
            _gpu_line()
        if args.shed:
            shed(running, work, done)
        if time.time() - t0 > args.deadline:
            for name, (p, logf) in running.items():
                p.kill()
                logf.close()
                done[name] = -9
                print(f"{time.time() - t0:7.1f} s  {name} stopped at the deadline", flush=True)
            running.clear()
            pending.clear()
    names = [n for n in args.jobs if n in done]
    summaries = {}
    for n in names:
        f = work / "jobs" / n / "summary.json"
        summaries[n] = json.loads(f.read_text()) if f.is_file() else {"exit": done[n]}
    (out / "summary.json").write_text(json.dumps(summaries, indent=2) + "\n")
    _pack_results(work, names, args.per_tar, None if args.state_of is None else set(args.state_of))
    for f in work.glob("runs-*.tar"):
        os.replace(f, out / f.name)
    print(json.dumps(summaries, indent=1))
    print(f"total {time.time() - t0:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--make-pack", type=Path, help="write the data pack here and stop")
    ap.add_argument("--pack", type=Path, help="data pack made by --make-pack")
    ap.add_argument(
        "--jobs", nargs="+", default=list(JOBS), choices=[*JOBS, *STUDENTS, *QUICK, *LAST_STAGE]
    )
    ap.add_argument("--out", default="sweep-out", help="summary and run tarballs go here")
    ap.add_argument("--work", default="/tmp/sweep", help="run folders")
    ap.add_argument("--parallel", type=int, default=6)
    ap.add_argument("--per-tar", type=int, default=1, help="jobs per result tarball")
    ap.add_argument(
        "--state-of",
        nargs="*",
        help="only these jobs' resumable state comes back (default: every job's)",
    )
    ap.add_argument("--deadline", type=float, default=480.0, help="seconds; then stop all")
    ap.add_argument("--device", default="cuda")
    ap.add_argument(
        "--shed", action="store_true", help="stop the last jobs when the deadline would be missed"
    )
    ap.add_argument(
        "--teacher",
        help="students use this teacher-target file (make_teacher_targets) instead of "
        "waiting for their teacher jobs",
    )
    ap.add_argument("--smoke", action="store_true", help="1 epoch on 600 faces per stage")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    if args.make_pack:
        make_pack(args.make_pack)
        return 0
    if not args.pack:
        ap.error("--pack is needed (or --make-pack)")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    return sweep(args)


if __name__ == "__main__":
    raise SystemExit(main())
