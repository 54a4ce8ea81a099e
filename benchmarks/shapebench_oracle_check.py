"""Check the ShapeBench oracle on generated images: a labelled grid to judge by eye, and the degradation levels
(background tint, pixel noise, edge blur) of the model's samples that the oracle tests replay on ground truth.

    python benchmarks/shapebench_oracle_check.py --model zeta_eval/assets/shapebench --n 60 \
        --grid docs/shapebench/oracle_check_grid.png --json docs/shapebench/oracle_check.json
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch
from scipy import ndimage


def degradation(image: torch.Tensor) -> dict[str, float]:
    """Tint, noise and blur of one generated image (0..255 units; blur in pixels)."""
    from metrics import shapebench as O
    from datamodules.shapebench.world import BACKGROUND

    rgb = O.to_rgb255(image)
    bg = O.estimate_background(rgb)
    a, _ = O.coverage_maps(rgb, bg)
    _, near, cov = O.pixel_labels(rgb, bg)
    grown = ndimage.binary_dilation(cov > 0.1, iterations=2)  # keep 2 pixels (4-connected) away from anything drawn
    background = rgb[~grown]
    noise = float(background.std(0).mean()) if len(background) > 20 else float("nan")
    blurs = []
    for d in O.analyze(image):
        x0, y0, x1, y1 = d.box
        k = O.COLORS.index(d.color)
        soft = np.where(near == k, np.clip(a[..., k], 0, 1), 0.0)
        crop = np.pad(soft, O.PAD + 1)[y0 + 1: y1 + 1 + 2 * O.PAD, x0 + 1: x1 + 1 + 2 * O.PAD]
        grid = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
        ious = [np.minimum(crop, t).sum() / np.maximum(crop, t).sum()
                for t in (O.template(d.shape, x1 - x0, y1 - y0, s) for s in grid)]
        blurs.append(grid[int(np.argmax(ious))])
    return {"tint": float(np.abs(bg - np.asarray(BACKGROUND)).max()), "noise": noise,
            "blur": float(np.median(blurs)) if blurs else float("nan")}


def draw_grid(images: torch.Tensor, labels: list[str], verdicts: list[bool], path: str, cols: int = 10) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = (len(images) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.9, rows * 2.25))
    for ax in np.atleast_1d(axes).flat:
        ax.axis("off")
    for k, (img, label, ok) in enumerate(zip(images, labels, verdicts)):
        ax = np.atleast_1d(axes).flat[k]
        ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(f"{k}: {label}\n{'PASS' if ok else 'FAIL'}", fontsize=6.5, color="green" if ok else "red")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    from metrics.shapebench import judge
    from samplers import build_sampler
    from zeta_eval.adapters.shapebench import DEFAULT_MODEL, ShapeBenchAdapter
    from zeta_eval.shapebench import evaluation_set
    from zeta_eval.shapebench.evaluate import generate

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--n", type=int, default=60, help="images in the grid (taken evenly from the full set)")
    p.add_argument("--guidance", type=float, default=5.0)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--grid", default="docs/shapebench/oracle_check_grid.png")
    p.add_argument("--json", default=None)
    p.add_argument("--degradation-n", type=int, default=240, help="images measured for the degradation levels")
    p.add_argument("--images", help="reuse (if it exists) or save the generated images in this .npz")
    args = p.parse_args()
    torch.set_num_threads(1)
    adapter = ShapeBenchAdapter(model=args.model)
    adapter.load("cpu")
    full = evaluation_set("full")
    step = max(1, len(full) // args.degradation_n)
    items = full[::step][: args.degradation_n]
    if args.images and os.path.isfile(args.images):
        images = torch.from_numpy(np.load(args.images)["images"])
    else:
        images = generate(adapter, items, build_sampler("standard", gamma1=args.guidance), args.steps, 48)
        if args.images:
            np.savez_compressed(args.images, images=images.numpy(), ids=[it["id"] for it in items])
    levels = [degradation(img) for img in images]
    summary = {k: {"median": float(np.nanmedian([l[k] for l in levels])),
                   "p90": float(np.nanpercentile([l[k] for l in levels], 90))} for k in ("tint", "noise", "blur")}
    grid_idx = np.linspace(0, len(items) - 1, args.n).round().astype(int)
    verdicts = [judge(images[i], items[i]) for i in grid_idx]
    draw_grid(images[grid_idx], [items[i]["prompt"] for i in grid_idx], [v[0] for v in verdicts], args.grid)
    out = {"model": args.model, "guidance": args.guidance, "steps": args.steps, "degradation": summary,
           "grid": [{"index": k, "id": items[i]["id"], "prompt": items[i]["prompt"], "oracle": v[0], "reason": v[1]}
                    for k, (i, v) in enumerate(zip(grid_idx, verdicts))]}
    print(json.dumps(summary, indent=1))
    for row in out["grid"]:
        print(row["index"], row["prompt"], "PASS" if row["oracle"] else "FAIL", row["reason"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
