"""Oracle accuracy of a ShapeBench model per task, for a sampler at several guidance scales.

    python -m zeta_eval.shapebench.evaluate --model zeta_eval/assets/shapebench --steps 20 --guidance 1 3 5 7.5
    python -m zeta_eval.shapebench.evaluate --model runs/sb2_train --guidance 1 3 5 --seeds 2   # a training run

``--model`` is a model folder (``model_index.json``: the packaged one, a run's ``pipeline/`` or ``snapshots/step_N/``),
a training checkpoint (``checkpoints/step_N.pt``) or a training folder (its last checkpoint); a checkpoint is
evaluated with its EMA weights. ``--seeds N`` evaluates every item at seeds ``seed, seed + 1, ..., seed + N - 1``
(the ``source`` seed policy of ``make demo`` and the study). Prints one table row per guidance scale (per-task
accuracy and the overall = unweighted mean of the six tasks); ``--json`` also writes the numbers,
``--save_images`` the generated images (one npz per guidance) for inspection.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Any

import numpy as np
import torch

from datamodules.shapebench.prompts import SUBSETS, TASKS, evaluation_set
from samplers import build_sampler

from ..flags import Parser


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


def model_folder(path: str, scratch: str) -> str:
    """A loadable model folder for ``path``: itself if it is one, else its checkpoint's EMA exported into
    ``scratch``."""
    if os.path.isfile(os.path.join(path, "model_index.json")):
        return path
    from .export import export

    return export(path, os.path.join(scratch, "model"))


def with_seeds(items: list[dict[str, Any]], seeds: int) -> list[dict[str, Any]]:
    """Every item at seeds seed, seed + 1, ..., seed + seeds - 1 (item-major)."""
    return [{**it, "seed": it["seed"] + j} for it in items for j in range(seeds)]


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

    p = Parser(prog="python -m zeta_eval.shapebench.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="model folder, training checkpoint (.pt) or training folder (default: the packaged model)")
    p.add_argument("--sampler", default="standard", help="a registered sampler name (default: standard)")
    p.add_argument("--steps", type=int, default=20, help="DDIM steps per sample")
    p.add_argument("--guidance", type=float, nargs="+", default=[1.0, 3.0, 5.0, 7.5],
                   help="guidance scales (gamma1 of the sampler); one table row each")
    p.add_argument("--subset", default="full", choices=SUBSETS, help="held-out items to evaluate")
    p.add_argument("--seeds", type=int, default=1, help="seeds per item (seed, seed + 1, ...)")
    p.add_argument("--batch_size", type=int, default=48, help="samples per network batch")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--json", help="write the table to this JSON file")
    p.add_argument("--save_images", help="write images, prompts and verdicts to <this stem>_g<guidance>.npz")
    args = p.parse_args(argv)
    if min(args.steps, args.batch_size, args.threads, args.seeds) < 1:
        p.error("--steps, --batch_size, --threads and --seeds must be >= 1")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="shapebench_eval_") as scratch:
        try:
            adapter = ShapeBenchAdapter(model=model_folder(args.model, scratch))
        except ValueError as err:  # not a model folder, checkpoint or training folder
            p.error(str(err))
        adapter.load("cpu")
    items = with_seeds(evaluation_set(args.subset), args.seeds)
    rows = []
    header = f"{'guidance':>8} " + " ".join(f"{t:>13}" for t in TASKS) + f" {'overall':>8} {'seconds':>8}"
    print(f"model {args.model} ({adapter.describe().get('trained_steps')} steps), sampler {args.sampler}, "
          f"{args.steps} steps, subset {args.subset} x {args.seeds} seed(s) ({len(items)} samples)")
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
            json.dump({"model": args.model, "trained_steps": adapter.describe().get("trained_steps"),
                       "sampler": args.sampler, "steps": args.steps, "subset": args.subset, "seeds": args.seeds,
                       "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
