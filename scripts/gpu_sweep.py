"""Run several FER+ training recipes side by side on one CUDA machine (ablations).

Each job is the shipped two-stage recipe (``configs/default.json``, then
``configs/default-swa30.json`` started from stage 1's weights), with per-job overrides of
either stage. Jobs run as separate processes (``--parallel`` at a time, in the order given),
each through :func:`exprsim.training.ferplus.train` with ``device="cuda"``; the recipe
itself (epochs, batch, losses, augmentation) is unchanged, so a job's CPU cost is the
shipped recipe's. Every choice is still made on the validation faces.

Students (``STUDENTS``) distil the teachers' mean emotion distribution into the same
recipe (``TrainConfig.teacher``); each starts once its teacher jobs have finished.

The machine needs no ``../shared``: ``--make-pack`` writes the FER+ Training faces a run
loads (PublicTest duplicates dropped) into one file (lossless WebP per face, ~46 MiB),
which the sweep decodes and checks against the pixel hash stored beside it. ``.gpu/`` is
ignored by git: the call names it in ``carry``.

The checkout travels to the GPU machine, 64 MiB at most with the pack, and the tracked
``runs/`` alone is over 100 MiB: ``--park DIR`` moves every tracked file the jobs do not
read (``runs/`` but the ``init_from`` weights they start from; the shipped weights unless
a student needs them as a teacher) out to ``DIR`` and says what will travel; ``--unpark
DIR`` puts them back (run it right after the call). What comes back is at most 8 files of
16 MiB: ``summary.json`` (rewritten as jobs end, so a call cut short still returns it) and
at most 7 tarballs, filled with every job's figures and final weights first, then the
resumable state (``state.pt``, ``last.safetensors``) of ``--state-of`` jobs and of jobs
stopped before their end; what did not fit is named in ``summary.json``. One wave of 6
two-stage jobs (or 12 one-stage ones) takes 250-340 s on the H200: about one wave per call.

    python scripts/gpu_sweep.py --make-pack .gpu/ferplus-train.pack.npz      # here
    python scripts/gpu_sweep.py --park /tmp/parked --pack .gpu/ferplus-train.pack.npz \\
        --jobs base-s0 mix02-s0                                                  # here
    PYTHONPATH=src python3 scripts/gpu_sweep.py --pack .gpu/ferplus-train.pack.npz \\
        --jobs base-s0 mix02-s0 --out $OUT --deadline 480        # there (carry: .gpu)
    python scripts/gpu_sweep.py --unpark /tmp/parked                             # here
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import tarfile
import textwrap
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
    # a check of the machinery, not a recipe: over every job's own settings
    smoke = {"epochs": 1, "max_train": 600, "warmup_epochs": 0.0} if spec.get("smoke") else {}
    out = Path(spec["out"])
    t0 = time.perf_counter()
    if spec["name"] in QUICK or spec["name"] in LAST_STAGE:  # one stage
        if spec["name"] in QUICK:
            over = {**common, **QUICK[spec["name"]], **smoke}
            cfg, stage = _config("configs/quick-v5.json", over), 1
        else:
            path, over = LAST_STAGE[spec["name"]]
            cfg, stage = _config(path, {**common, **over, **smoke}), 2
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
            base = _config("configs/default.json", {**common, **smoke})  # the faces it loads
            teacher = make_teacher_targets(models, base, out / "teacher.npz")
        s1 = s2 = {"teacher": str(teacher), "teacher_weight": weight}
    else:
        s1, s2 = JOBS[spec["name"]]
    cfg1 = _config("configs/default.json", {**common, **s1, **smoke})
    r1 = train(cfg1, out / "stage1", progress=False)
    t1 = time.perf_counter()
    over2 = {**common, **s2, **smoke, "init_from": str(out / "stage1")}
    cfg2 = _config("configs/default-swa30.json", over2)
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


#: what comes back from the device machine's $OUT (its README): files, bytes each, in all
OUT_FILES, OUT_FILE_BYTES, OUT_BYTES = 8, 16 * 2**20, 64 * 2**20
#: what may travel to it: the working tree with the carried pack
UPLOAD_BYTES = 64 * 2**20
#: a job's files that always come back (its figures and its final weights), per stage
FIGURES = ("metrics.jsonl", "readout.jsonl", "swa.json", "config.json", "train_config.json")
#: a run's resumable state: comes back for ``--state-of`` jobs and jobs stopped early
STATE = ("state.pt", "last.safetensors")
#: bytes a tar member costs beyond its data (header, padding), counted generously
_TAR_OVERHEAD = 2048


def _job_files(job: Path, name: str, with_state: bool) -> tuple[list[Any], list[Any]]:
    """``(figures, state)``: ``(path, name in the tarball)`` of a job's files that always
    come back (its summary and log, every stage's figures, the latest model), and of its
    latest checkpoint's resumable state when ``with_state``."""
    figures, state = [], []
    for f in ("summary.json", "log.txt"):
        if (job / f).is_file():
            figures.append((job / f, f"{name}/{f}"))
    stages = sorted(p.name for p in job.glob("stage[0-9]") if p.is_dir())
    for stage in stages:
        for f in FIGURES:
            if (job / stage / f).is_file():
                figures.append((job / stage / f, f"{name}/{stage}/{f}"))
    # the latest weights: a job stopped in stage 2 before its first checkpoint restarts
    # that stage from stage 1's model
    modelled = [st for st in stages if (job / st / "model.safetensors").is_file()]
    if modelled:
        path = job / modelled[-1] / "model.safetensors"
        figures.append((path, f"{name}/{modelled[-1]}/model.safetensors"))
    checkpointed = [st for st in stages if (job / st / "state.pt").is_file()]
    if with_state and checkpointed:
        last = checkpointed[-1]
        state += [
            (job / last / f, f"{name}/{last}/{f}") for f in STATE if (job / last / f).is_file()
        ]
    return figures, state


def _place(path: Path, arc: str, bins: list[list[Any]], sizes: list[int], tars: int) -> int:
    """Put ``(path, arc)`` in the first tarball of ``bins`` with room (a new one while
    fewer than ``tars``); 1 + its index, or 0 when it fits nowhere."""
    size = path.stat().st_size + _TAR_OVERHEAD
    if sum(sizes) + size > OUT_BYTES - OUT_FILE_BYTES:  # summary.json keeps its room
        return 0
    room = [i for i, used in enumerate(sizes) if used + size <= OUT_FILE_BYTES - 10240]
    if room:
        bins[room[0]].append((path, arc))
        sizes[room[0]] += size
        return room[0] + 1
    if len(bins) < tars and size <= OUT_FILE_BYTES - 10240:
        bins.append([(path, arc)])
        sizes.append(size)
        return len(bins)
    return 0


def _pack_results(
    work: Path,
    out: Path,
    exits: dict[str, int],
    state_of: set[str] | None = None,
    tars: int = OUT_FILES - 2,
) -> list[str]:
    """The jobs' files into at most ``tars`` tarballs under ``out`` (``runs-<i>.tar``, each
    under :data:`OUT_FILE_BYTES`, all under :data:`OUT_BYTES`; the default leaves two of
    $OUT's 8 files to ``summary.json`` and the call's log): every job's figures and
    final weights first, then the state of ``state_of`` jobs (``None``: every job's) and
    of jobs that did not end well (exit not 0: stopped at the deadline, failed). Returns
    the names of the files that did not fit."""
    units: list[list[Any]] = []  # each comes back whole or not at all
    state: list[list[Any]] = []
    for name, code in exits.items():
        keep = state_of is None or name in state_of or code != 0
        f, st = _job_files(work / "jobs" / name, name, keep)
        units += [[one] for one in f]
        state += [st] if st else []  # a checkpoint resumes only with its last weights
    bins: list[list[Any]] = []
    sizes: list[int] = []
    left: list[str] = []
    for unit in units + state:
        placed = [_place(path, arc, bins, sizes, tars) for path, arc in unit]
        if not all(placed):
            for (path, arc), where in zip(unit, placed, strict=True):
                if where:  # take back what went in
                    bins[where - 1].remove((path, arc))
                    sizes[where - 1] -= path.stat().st_size + _TAR_OVERHEAD
            while bins and not bins[-1]:  # a tarball opened for it alone
                bins.pop(), sizes.pop()
            left += [arc for _, arc in unit]
    for i, members in enumerate(bins):
        with tarfile.open(work / f"runs-{i}.tar", "w") as tar:
            for path, arc in members:
                tar.add(path, arcname=arc)
        os.replace(work / f"runs-{i}.tar", out / f"runs-{i}.tar")
    return left


def _job_summary(job: Path, code: int | None) -> dict[str, Any]:
    """A job's ``summary.json`` once it ended well, else how far it got: its exit (``None``:
    still running), epochs done and the last epoch's figures."""
    f = job / "summary.json"
    if code == 0 and f.is_file():
        return dict(json.loads(f.read_text()))
    rows = _epoch_rows(job)
    return {"exit": code, "epochs_done": len(rows), "last": rows[-1] if rows else None}


def _write_summary(out: Path, work: Path, jobs: list[str], exits: dict[str, Any]) -> None:
    """``out/summary.json``, whole or not at all: every started job's summary (its seeds
    included) as far as it got."""
    doc = {}
    for name in jobs:
        if name not in exits:
            continue
        job = work / "jobs" / name
        entry = _job_summary(job, exits[name])
        cfg = job / "stage1" / "train_config.json"
        cfg = cfg if cfg.is_file() else job / "stage2" / "train_config.json"
        if cfg.is_file():
            saved = json.loads(cfg.read_text())
            entry["seed"], entry["split_seed"] = saved.get("seed"), saved.get("split_seed")
        doc[name] = entry
    tmp = out / ".summary.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, out / "summary.json")


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


def _job_epochs(name: str, smoke: bool = False) -> int:
    """Epochs a job runs, both stages (for the deadline projection); with ``smoke`` one a
    stage, as :func:`worker` runs it."""
    if smoke:
        return 1 if name in LAST_STAGE or name in QUICK else 2
    if name in LAST_STAGE or name in QUICK:
        path = LAST_STAGE[name][0] if name in LAST_STAGE else "configs/quick-v5.json"
        over = LAST_STAGE[name][1] if name in LAST_STAGE else QUICK[name]
        return int(over.get("epochs", json.loads((ROOT / path).read_text())["epochs"]))
    s1, s2 = JOBS.get(name, ({}, {}))
    stages = (("configs/default.json", s1), ("configs/default-swa30.json", s2))
    return sum(
        int(over.get("epochs", json.loads((ROOT / path).read_text())["epochs"]))
        for path, over in stages
    )


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

    def __init__(
        self, t0: float, deadline: float, window: float = 60.0, smoke: bool = False
    ) -> None:
        self.t0, self.deadline, self.window = t0, deadline, window
        self.smoke = smoke
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
            left = max(0, _job_epochs(name, self.smoke) - len(rows))
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
    shed = _Shedder(t0, args.deadline, smoke=args.smoke)
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
                _write_summary(out, work, args.jobs, {**dict.fromkeys(running), **done})
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
    exits = {n: done[n] for n in args.jobs if n in done}
    state_of = None if args.state_of is None else set(args.state_of)
    left = _pack_results(work, out, exits, state_of)
    _write_summary(out, work, args.jobs, exits)
    summaries = json.loads((out / "summary.json").read_text())
    if left:
        summaries["_left_out"] = left  # over what $OUT can hand back
        (out / "summary.json").write_text(json.dumps(summaries, indent=2) + "\n")
        print(f"left out (over $OUT's limits): {' '.join(left)}", flush=True)
    for name, entry in summaries.items():  # one line a job: the output tail is 12,000 chars
        print(name, json.dumps(entry)[:400], flush=True)
    print(f"total {time.time() - t0:.1f} s")
    return 0


def _needed(jobs: list[str], teacher: str | None) -> set[str]:
    """Tracked files (relative to the checkout) the jobs read beyond the code and configs:
    the ``init_from`` weights of one-stage jobs, the shipped weights when a student makes
    its teacher targets on the machine."""
    need = set()
    for name in jobs:
        path = LAST_STAGE[name][0] if name in LAST_STAGE else None
        path = "configs/quick-v5.json" if name in QUICK else path
        init = json.loads((ROOT / path).read_text()).get("init_from") if path else None
        if init:
            found = [f"{init}/{n}" for n in ("model.safetensors", "last.safetensors")]
            need.add(next((f for f in found if (ROOT / f).is_file()), found[0]))
        if name in STUDENTS and STUDENTS[name][1] and not teacher:
            need |= {f"{SHIPPED}/{n}" for n in ("config.json", "model.safetensors")}
    return need


def _travelling() -> list[tuple[str, int]]:
    """``(path, bytes)`` of what a device call takes along: tracked files that are there,
    and untracked ones git does not ignore."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    return [(n, (ROOT / n).lstat().st_size) for n in names if n and os.path.lexists(ROOT / n)]


def park(folder: Path, jobs: list[str], teacher: str | None, pack: Path | None) -> int:
    """Move the tracked files the jobs do not read (``runs/``, the shipped weights) to
    ``folder`` (listed in its ``parked.txt``), then say what travels; 1 when it is still
    over :data:`UPLOAD_BYTES`, or when ``pack`` is given and is not there (nothing moved:
    it was counted as 0 MiB carried, and the call would run without its data)."""
    if pack is not None and not pack.is_file():
        what = "not a file" if pack.exists() else "no such file"
        print(f"--pack {pack}: {what} (--make-pack makes one); nothing parked", file=sys.stderr)
        return 1
    need = _needed(jobs, teacher)
    missing = sorted(n for n in need if not (ROOT / n).is_file())
    if missing:
        print(f"the jobs need {', '.join(missing)}, which is not here", file=sys.stderr)
        return 1
    movable = [
        n
        for n, _ in _travelling()
        if (n.startswith("runs/") or n.startswith(SHIPPED + "/")) and n not in need
    ]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "parked.txt", "a") as listed:
        for n in movable:
            # listed before it moves: a kill at any point leaves every moved file listed
            # (a listed file still here is simply not put back); the list is only appended
            # to, so an interrupted write cannot empty it
            listed.write(n + "\n")
            listed.flush()
            os.fsync(listed.fileno())
            (folder / n).parent.mkdir(parents=True, exist_ok=True)
            os.replace(ROOT / n, folder / n)
    tree = sum(size for _, size in _travelling())
    carried = pack.stat().st_size if pack is not None and pack.is_file() else 0
    total = tree + carried
    print(
        f"parked {len(movable)} files in {folder}; travelling: {tree / 2**20:.1f} MiB of the "
        f"checkout + {carried / 2**20:.1f} MiB carried = {total / 2**20:.1f} MiB "
        f"(limit {UPLOAD_BYTES / 2**20:.0f} MiB); needed: {', '.join(sorted(need)) or 'none'}"
    )
    print(f"afterwards: python scripts/gpu_sweep.py --unpark {folder}")
    return 0 if total <= UPLOAD_BYTES else 1


def unpark(folder: Path) -> int:
    """Put back what :func:`park` moved to ``folder``; a file whose place has been taken
    meanwhile is never overwritten: it stays parked and listed, and the exit is 1."""
    listed = folder / "parked.txt"
    if not listed.is_file():
        print(f"{listed}: not there (nothing parked in {folder})", file=sys.stderr)
        return 1
    names = list(dict.fromkeys(n for n in listed.read_text().splitlines() if n))
    back, blocked, lost = 0, [], []
    for n in names:
        if not os.path.lexists(folder / n):
            if not os.path.lexists(ROOT / n):
                lost.append(n)  # listed, but neither here nor there
            continue  # listed before its move and never moved: still in the checkout
        if os.path.lexists(ROOT / n):
            blocked.append(n)  # something new took its place: never overwritten
            continue
        (ROOT / n).parent.mkdir(parents=True, exist_ok=True)
        os.replace(folder / n, ROOT / n)
        back += 1
    print(f"put back {back} of {len(names)} parked files")
    if blocked:
        tmp = folder / ".parked.txt.tmp"
        tmp.write_text("".join(n + "\n" for n in blocked))
        os.replace(tmp, listed)
        print(
            f"not put back, their place is taken (still in {folder}, still listed): "
            + " ".join(blocked),
            file=sys.stderr,
        )
    else:
        listed.unlink()
    if lost:
        print(f"listed but found neither here nor in {folder}: {' '.join(lost)}", file=sys.stderr)
    return 1 if blocked or lost else 0


def _at_least_one(text: str) -> int:
    """``--parallel``: an integer >= 1 (0 starts no job and waits out the deadline)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _seconds(text: str) -> float:
    """``--deadline``: a finite number of seconds > 0 (nan never fires, <= 0 stops all)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--make-pack", type=Path, help="write the data pack here and stop")
    ap.add_argument("--pack", type=Path, help="data pack made by --make-pack")
    names = [*JOBS, *STUDENTS, *QUICK, *LAST_STAGE]
    ap.add_argument(
        "--jobs",
        nargs="+",
        default=list(JOBS),
        choices=names,
        metavar="JOB",  # the choices are listed once, here, not in the usage and errors
        help="jobs to run, in this order (default: every two-stage job of JOBS), of:\n"
        + textwrap.fill(" ".join(names), 76),
    )
    ap.add_argument(
        "--out", default="sweep-out", help="summary and run tarballs go here (default: sweep-out)"
    )
    ap.add_argument("--work", default="/tmp/sweep", help="run folders (default: /tmp/sweep)")
    ap.add_argument(
        "--parallel", type=_at_least_one, default=6, help="jobs at a time, >= 1 (default: 6)"
    )
    ap.add_argument(
        "--state-of",
        nargs="*",
        help="only these jobs' resumable state comes back (default: every job's)",
    )
    ap.add_argument(
        "--deadline",
        type=_seconds,
        default=480.0,
        help="seconds, > 0; then stop all (default: 480)",
    )
    ap.add_argument("--device", default="cuda", help="the jobs' torch device (default: cuda)")
    ap.add_argument(
        "--shed", action="store_true", help="stop the last jobs when the deadline would be missed"
    )
    ap.add_argument(
        "--teacher",
        help="students use this teacher-target file (make_teacher_targets) instead of "
        "waiting for their teacher jobs",
    )
    ap.add_argument("--smoke", action="store_true", help="1 epoch on 600 faces per stage")
    ap.add_argument(
        "--park",
        type=Path,
        help="here, before a call: move the tracked files the jobs do not read to this "
        "folder and say what travels (exit 1 if over 64 MiB)",
    )
    ap.add_argument("--unpark", type=Path, help="here, after the call: put them back")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    # removed 2026-12-05 (the results now pack by size); kept so the model card's older
    # commands still parse
    ap.add_argument("--per-tar", type=int, help=argparse.SUPPRESS)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    if args.per_tar is not None:
        print("--per-tar is ignored (since 2026-12-05 the results pack by size)", file=sys.stderr)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    if args.make_pack:
        make_pack(args.make_pack)
        return 0
    if args.park:
        return park(args.park, args.jobs, args.teacher, args.pack)
    if args.unpark:
        return unpark(args.unpark)
    if not args.pack:
        ap.error("--pack is needed (or --make-pack)")
    if not args.pack.is_file():  # checked before --out and --work are made
        what = "not a file" if args.pack.exists() else "no such file"
        print(
            f"{ap.prog}: error: --pack {args.pack}: {what} (--make-pack makes one)", file=sys.stderr
        )
        return 2
    Path(args.out).mkdir(parents=True, exist_ok=True)
    return sweep(args)


if __name__ == "__main__":
    raise SystemExit(main())
