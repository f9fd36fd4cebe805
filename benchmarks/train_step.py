"""Seconds per training step of a ferplus config's network: fp32, bfloat16 autocast, compiled.

One step = forward through the network and its cosine classifier (``ExprNetV.head``), KL to
random vote distributions plus the embedding's squared norm, backward, Nesterov SGD: the
convolutions that dominate a real step, without data loading or augmentation. Batch 128,
channels-last input, as the trainer runs. Modes:

* ``fp32``: eager, as ``exprsim train`` runs;
* ``bf16``: the same under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (fast only where
  the CPU has AMX; plain AVX-512 BF16 is slower than fp32 for these convolutions);
* ``compile``: ``torch.compile`` of the forward (inductor; the first step compiles).

The modes alternate over ``--rounds`` rounds; each round times ``--steps`` steps after
``--warmup`` untimed ones and keeps the median; the median round is reported.

    .venv/bin/python benchmarks/train_step.py --config configs/quick.json --rounds 2 \\
        --json docs/results/train-step.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

MODES = ("fp32", "bf16", "compile")


def _step_fn(model_kwargs: dict[str, Any], mode: str, batch: int, dim: int) -> Any:
    import torch
    import torch.nn.functional as F

    from exprsim.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("exprnet_v", embedding_dim=dim, **model_kwargs)
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x = torch.randn(batch, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    votes = torch.softmax(torch.randn(batch, 8), 1)
    head = torch.compile(model.head) if mode == "compile" else model.head

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
            emb, logits = head(x)
        loss = F.kl_div(F.log_softmax(logits.float(), 1), votes, reduction="batchmean")
        loss = loss + emb.float().pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def time_steps(step: Any, steps: int, warmup: int) -> float:
    """Median seconds of ``steps`` calls of ``step`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(
    model_kwargs: dict[str, Any],
    modes: tuple[str, ...] = MODES,
    rounds: int = 2,
    steps: int = 20,
    warmup: int = 5,
    batch: int = 128,
    dim: int = 16,
) -> dict[str, Any]:
    """``{mode: {"rounds": [median s per round], "median": s}}`` (module docstring)."""
    steps_of = {m: _step_fn(model_kwargs, m, batch, dim) for m in modes}
    per: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(rounds):
        for m in modes:
            per[m].append(time_steps(steps_of[m], steps, warmup if r == 0 else 1))
    return {m: {"rounds": v, "median": statistics.median(v)} for m, v in per.items()}


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/quick.json", help="a ferplus exprnet_v config")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if min(args.rounds, args.steps, args.batch, args.threads) < 1 or args.warmup < 1:
        p.error("--rounds, --steps, --warmup, --batch and --threads must be >= 1")
    cfg = json.loads(Path(args.config).read_text())
    if cfg.get("model", "exprnet_v") != "exprnet_v":
        p.error(f"{args.config}: an exprnet_v config is needed")
    torch.set_num_threads(args.threads)
    kwargs = cfg.get("model_kwargs", {})
    res = measure(kwargs, tuple(args.modes), args.rounds, args.steps, args.warmup, args.batch,
                  cfg.get("embedding_dim", 16))  # fmt: skip
    for m, r in res.items():
        rounds = " / ".join(f"{s:.3f}" for s in r["rounds"])
        print(f"{m:8s} {r['median']:.3f} s per step ({rounds})")
    if args.json:
        out = {"config": args.config, "batch": args.batch, "threads": args.threads,
               "steps": args.steps, "warmup": args.warmup, "modes": res}  # fmt: skip
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
