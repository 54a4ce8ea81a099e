"""Speed and identity of the ShapeBench oracle's scipy.ndimage connected components and template blur against the
hand-written ones they replaced (a breadth-first flood fill, a per-row ``np.convolve``; kept here as the reference).

    python -m zeta_eval.shapebench.evaluate --guidance 1 3 --subset full --seeds 2 --save_images /tmp/gen/img
    python benchmarks/shapebench_oracle_speed.py /tmp/gen/img_g*.npz --json /tmp/oracle_speed.json

Judges every image with both implementations (each from cold template caches, then warm) and reports the seconds
per image and the two functions alone; any image whose verdict or reason differs between the two, or from the
verdict stored in the npz by ``evaluate``, is listed and the exit code is 1. Without npz files it judges degraded
ground-truth renders of the full evaluation set (v1's measured degradation: tint 10, noise 6, blur 0.5).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections import deque
from typing import Any, Iterator
from unittest import mock

import numpy as np


def legacy_components(mask: np.ndarray) -> list[np.ndarray]:
    """The oracle's former 4-connected components: a breadth-first flood fill from each unseen pixel."""
    seen = np.zeros_like(mask, dtype=bool)
    h, w = mask.shape
    out = []
    for r0, c0 in zip(*np.nonzero(mask)):
        if seen[r0, c0]:
            continue
        seen[r0, c0] = True
        queue, pix = deque([(r0, c0)]), []
        while queue:
            r, c = queue.popleft()
            pix.append((r, c))
            for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if 0 <= rr < h and 0 <= cc < w and mask[rr, cc] and not seen[rr, cc]:
                    seen[rr, cc] = True
                    queue.append((rr, cc))
        out.append(np.asarray(pix))
    return out


def legacy_gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """The oracle's former template blur: a Gaussian cut at ceil(3 sigma), zero padding, one axis at a time."""
    if sigma <= 0:
        return x
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    for axis in (0, 1):
        x = np.apply_along_axis(lambda v: np.convolve(np.pad(v, r), k, mode="valid"), axis, x)
    return x


@contextlib.contextmanager
def oracle(legacy: bool) -> Iterator[Any]:
    """The oracle module, with the legacy functions patched in if ``legacy``, its template caches cleared."""
    from metrics import shapebench as O

    patches = [mock.patch.object(O, "components", legacy_components),
               mock.patch.object(O, "_gaussian_blur", legacy_gaussian_blur)] if legacy else []
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        O.template.cache_clear()
        O._template_stack.cache_clear()
        yield O


def load_images(paths: list[str]) -> tuple[list[np.ndarray], list[dict[str, Any]], list[tuple[bool, str] | None]]:
    """Images, evaluation items and stored verdicts of ``evaluate --save_images`` npz files, or degraded ground-truth
    renders (no stored verdicts) without files."""
    from zeta_eval.shapebench import evaluation_set, render_metadata
    from zeta_eval.shapebench.validation import degrade

    full = evaluation_set("full")
    if not paths:
        rng = np.random.default_rng(0)
        return ([degrade(render_metadata(it, it["seed"]), rng, 10.0, 6.0, 0.5) for it in full], full,
                [None] * len(full))
    by_id = {it["id"]: it for it in full}
    images, items, stored = [], [], []
    for path in paths:
        z = np.load(path)
        for img, item_id, ok, reason in zip(z["images"], z["ids"], z["correct"], z["reasons"]):
            images.append(img)
            items.append(by_id[str(item_id)])
            stored.append((bool(ok), str(reason)))
    return images, items, stored


def judge_all(images: list[np.ndarray], items: list[dict[str, Any]], legacy: bool) -> tuple[list, float, float]:
    """Verdicts of every image, process seconds per image from cold template caches, and warm (a second pass)."""
    with oracle(legacy) as O:
        seconds = []
        for _ in range(2):
            t0 = time.process_time()
            verdicts = [O.judge(img, it) for img, it in zip(images, items)]
            seconds.append((time.process_time() - t0) / len(images))
    return verdicts, seconds[0], seconds[1]


def time_functions(images: list[np.ndarray], repeats: int) -> dict[str, float]:
    """Process seconds of the components of every image's foreground mask, and of blurring one template of each
    size 9..24 at each blur level, legacy and scipy."""
    from metrics import shapebench as O

    masks = []
    for img in images:  # the foreground, whose components the oracle takes first
        rgb = O.to_rgb255(img)
        masks.append(O.pixel_labels(rgb, O.estimate_background(rgb))[0] >= 0)
    canvases = [np.pad(np.ones((n, n)), O.PAD) for n in range(9, 25)]

    def seconds(fn, work) -> float:
        t0 = time.process_time()
        for _ in range(repeats):
            for args in work:
                fn(*args)
        return (time.process_time() - t0) / repeats

    blurs = [(c, s) for c in canvases for s in O.TEMPLATE_BLURS if s > 0]
    return {"components_legacy_s": seconds(legacy_components, [(m,) for m in masks]),
            "components_scipy_s": seconds(O.components, [(m,) for m in masks]),
            "blur_legacy_s": seconds(legacy_gaussian_blur, blurs),
            "blur_scipy_s": seconds(O._gaussian_blur, blurs)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("npz", nargs="*", help="npz files written by `zeta_eval.shapebench.evaluate --save_images`")
    p.add_argument("--repeats", type=int, default=3, help="repeats of the per-function timings")
    p.add_argument("--json", help="write the numbers to this file")
    args = p.parse_args()
    images, items, stored = load_images(args.npz)
    new, new_cold, new_warm = judge_all(images, items, legacy=False)
    old, old_cold, old_warm = judge_all(images, items, legacy=True)
    mismatches = [{"index": k, "id": it["id"], "legacy": o, "scipy": n, "stored": s}
                  for k, (it, o, n, s) in enumerate(zip(items, old, new, stored))
                  if o != n or (s is not None and s != n)]
    out = {"images": len(images), "source": args.npz or "degraded ground truth (10, 6, 0.5)",
           "correct": int(sum(ok for ok, _ in new)), "mismatches": mismatches,
           "judge_s_per_image": {"legacy_cold": old_cold, "scipy_cold": new_cold,
                                 "legacy_warm": old_warm, "scipy_warm": new_warm},
           **time_functions(images[:240], args.repeats)}
    out["speedup"] = {"judge_cold": old_cold / new_cold, "judge_warm": old_warm / new_warm,
                      "components": out["components_legacy_s"] / out["components_scipy_s"],
                      "blur": out["blur_legacy_s"] / out["blur_scipy_s"]}
    print(json.dumps({k: v for k, v in out.items() if k != "mismatches"}, indent=1))
    print(f"{len(mismatches)} of {len(images)} images judged differently", *mismatches[:20], sep="\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
