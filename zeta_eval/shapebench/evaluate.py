"""Oracle accuracy of a ShapeBench model per task, for a sampler at several guidance scales.

    python -m zeta_eval.shapebench.evaluate --model zeta_eval/assets/shapebench --steps 20 --guidance 1 3 5 7.5

Prints one table row per guidance scale (per-task accuracy and the overall = unweighted mean of the six tasks);
``--json`` also writes the numbers, ``--save-images`` the generated images (one npz per guidance) for inspection.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch

from samplers import build_sampler

from .prompts import SUBSETS, TASKS, evaluation_set


def generate(adapter: Any, items: list[dict[str, Any]], sampler: Any, steps: int, batch_size: int) -> torch.Tensor:
    """Images in [0, 1] (N, 3, H, W) for the items, in order."""
    solver = adapter.solver(steps)
    out = []
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        cond = adapter.encode([it["prompt"] for it in batch])
        x = adapter.initial_latents([it["seed"] for it in batch], solver)
        res = sampler.sample(adapter.denoiser(cond), x, solver)
        out.append(adapter.decode(res.latents))
    return torch.cat(out)


def accuracy(images: torch.Tensor, items: list[dict[str, Any]]) -> tuple[dict[str, float], list[tuple[bool, str]]]:
    from metrics.shapebench import judge

    verdicts = [judge(img, it) for img, it in zip(images, items)]
    per: dict[str, list[bool]] = {}
    for (ok, _), it in zip(verdicts, items):
        per.setdefault(it["tag"], []).append(ok)
    table = {t: float(np.mean(per[t])) for t in TASKS if t in per}
    table["overall"] = float(np.mean([table[t] for t in TASKS if t in table]))
    return table, verdicts


def main(argv: list[str] | None = None) -> None:
    from zeta_eval.adapters.shapebench import DEFAULT_MODEL, ShapeBenchAdapter

    p = argparse.ArgumentParser(prog="python -m zeta_eval.shapebench.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--model", default=DEFAULT_MODEL, help="ShapeBench model folder (default: the packaged one)")
    p.add_argument("--sampler", default="standard", help="a registered sampler name (default: standard)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--guidance", type=float, nargs="+", default=[1.0, 3.0, 5.0, 7.5])
    p.add_argument("--subset", default="full", choices=SUBSETS)
    p.add_argument("--batch-size", type=int, default=48)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write the table to this JSON file")
    p.add_argument("--save-images", help="write images, prompts and verdicts to <this stem>_g<guidance>.npz")
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or args.threads < 1:
        p.error("--steps, --batch-size and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    adapter = ShapeBenchAdapter(model=args.model)
    adapter.load("cpu")
    items = evaluation_set(args.subset)
    rows = []
    header = f"{'guidance':>8} " + " ".join(f"{t:>13}" for t in TASKS) + f" {'overall':>8} {'seconds':>8}"
    print(f"model {args.model} ({adapter.describe().get('trained_steps')} steps), sampler {args.sampler}, "
          f"{args.steps} steps, subset {args.subset} ({len(items)} items)")
    print(header)
    for g in args.guidance:
        sampler = build_sampler(args.sampler, gamma1=g)
        t0 = time.time()
        images = generate(adapter, items, sampler, args.steps, args.batch_size)
        seconds = time.time() - t0
        table, verdicts = accuracy(images, items)
        rows.append({"guidance": g, **table, "seconds": seconds, "nfe_per_sample": sampler.expected_nfe(args.steps)})
        print(f"{g:>8g} " + " ".join(f"{table.get(t, float('nan')):>13.3f}" for t in TASKS)
              + f" {table['overall']:>8.3f} {seconds:>8.1f}", flush=True)
        if args.save_images:  # one file per guidance scale: <stem>_g<guidance>.npz
            np.savez_compressed(f"{args.save_images.removesuffix('.npz')}_g{g:g}.npz", images=images.numpy(), ids=[it["id"] for it in items],
                                prompts=[it["prompt"] for it in items], correct=[v[0] for v in verdicts],
                                reasons=[v[1] for v in verdicts], guidance=g)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "sampler": args.sampler, "steps": args.steps, "subset": args.subset,
                       "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
