"""Helpers to validate the ShapeBench oracle: image degradation like a generated sample's, prompt equivalence, near
misses, and the validation tables (ground truth accepted; renders of another prompt and near misses rejected; all
under degradation).

    python -m zeta_eval.shapebench.validation --tint 10 --noise 6 --blur 0.5

A near miss is the item's scene with the smallest change that makes it wrong, the errors a model trained on noisy
captions makes: one colour turned into a wheel neighbour, one shape into a confusable shape, a count off by one, a
relation mirrored, or (color_attr) the two colours swapped between the objects.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np
from scipy import ndimage

from datamodules.shapebench.prompts import NUMBER_WORDS, TASKS, evaluation_set, task_prompts
from datamodules.shapebench.world import COLOR_NEIGHBOURS, MIRROR, SHAPE_CONFUSIONS, render_metadata

from ..flags import Parser


def degrade(img: np.ndarray, rng: np.random.Generator, tint: float, noise: float, blur: float) -> np.ndarray:
    """uint8 (H, W, 3) with a uniform colour shift in [-tint, tint] per channel, a Gaussian blur of ``blur`` pixels
    and Gaussian pixel noise of std ``noise`` (0..255 units)."""
    x = img.astype(np.float64) + rng.uniform(-tint, tint, size=3)
    if blur > 0:  # cut at 3 sigma (rounded up); edge pixels repeat outside the image
        x = ndimage.gaussian_filter(x, blur, mode="nearest", radius=int(np.ceil(3 * blur)), axes=(0, 1))
    x = x + rng.normal(0.0, noise, x.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def canonical_scene(meta: dict[str, Any]) -> frozenset:
    """What an image must show, whatever the wording ("a A left of a B" = "a B right of a A")."""
    inc = meta["include"]
    if meta["tag"] == "position":
        b, a = inc
        rel = a["position"][0]
        return frozenset({(a["class"], rel, b["class"]), (b["class"], MIRROR[rel], a["class"])})
    return frozenset((c["class"], c.get("color"), c["count"]) for c in inc)


def other_prompt(item: dict[str, Any]) -> dict[str, Any]:
    """The next evaluation prompt of the item's task that asks for a different scene."""
    prompts = task_prompts(item["tag"])
    k = [p["prompt"] for p in prompts].index(item["prompt"])
    for j in range(1, len(prompts)):
        cand = prompts[(k + j) % len(prompts)]
        if canonical_scene(cand) != canonical_scene(item):
            return cand
    raise ValueError(f"task {item['tag']} has no prompt that differs from {item['prompt']!r}")


def near_misses(item: dict[str, Any]) -> list[dict[str, Any]]:
    """Every near miss of an evaluation item (metadata of scenes that must be judged wrong), in a fixed order.

    One object per include clause is changed (a counting clause keeps its other objects as they were)."""
    include = item["include"]
    out: list[dict[str, Any]] = []

    def variant(k: int, **change: Any) -> dict[str, Any]:
        """The scene with clause k's first object changed, its other objects (count - 1) kept as a clause of
        their own."""
        inc = copy.deepcopy(include)
        clause = inc[k]
        rest = int(clause.get("count", 1)) - 1
        changed = {**{key: v for key, v in clause.items() if key != "count"}, "count": 1, **change}
        inc[k] = changed
        if rest:
            inc.append({key: v for key, v in clause.items() if key not in ("count", "position")} | {"count": rest})
        return {"tag": item["tag"], "include": inc}

    for k, clause in enumerate(include):
        for shape in SHAPE_CONFUSIONS[clause["class"]]:
            out.append(variant(k, **{"class": shape}))
        if "color" in clause:
            for color in COLOR_NEIGHBOURS[clause["color"]]:
                out.append(variant(k, color=color))
        if "position" in clause:
            rel, target = clause["position"]
            out.append(variant(k, position=[MIRROR[rel], target]))
        n = int(clause.get("count", 1))
        if n >= 2:
            for m in (n - 1, n + 1):
                if m <= max(NUMBER_WORDS):
                    inc = copy.deepcopy(include)
                    inc[k]["count"] = m
                    out.append({"tag": item["tag"], "include": inc})
    if item["tag"] == "color_attr":
        inc = copy.deepcopy(include)
        inc[0]["color"], inc[1]["color"] = include[1]["color"], include[0]["color"]
        out.append({"tag": item["tag"], "include": inc})
    return out


def validation_table(judge: Callable[[Any, dict[str, Any]], tuple[bool, str]], tint: float = 0.0,
                     noise: float = 0.0, blur: float = 0.0, stride: int = 1, seed: int = 0) -> dict[str, dict[str, float]]:
    """Per task: fraction of ground-truth renders accepted, of another prompt's renders rejected and of near misses
    rejected (one near miss per item, taken in turn from :func:`near_misses`)."""
    rng = np.random.default_rng(seed)
    degraded = tint > 0 or noise > 0 or blur > 0
    out: dict[str, dict[str, list[bool]]] = {t: {"accept": [], "reject": [], "near_miss": []} for t in TASKS}
    for k, it in enumerate(evaluation_set("full")[::stride]):
        misses = near_misses(it)
        good = render_metadata(it, it["seed"])
        bad = render_metadata(other_prompt(it), it["seed"])
        near = render_metadata(misses[k % len(misses)], it["seed"])
        if degraded:
            good, bad, near = (degrade(x, rng, tint, noise, blur) for x in (good, bad, near))
        out[it["tag"]]["accept"].append(judge(good, it)[0])
        out[it["tag"]]["reject"].append(not judge(bad, it)[0])
        out[it["tag"]]["near_miss"].append(not judge(near, it)[0])
    return {t: {k: float(np.mean(v)) for k, v in d.items()} for t, d in out.items()}


def main(argv: list[str] | None = None) -> None:
    from metrics.shapebench import judge

    p = Parser(prog="python -m zeta_eval.shapebench.validation",
                                description="The oracle's validation table on ground-truth renders of every evaluation "
                                            "item: per task, the share of ground truth accepted, of another prompt's "
                                            "renders rejected and of near misses rejected, under degradation.")
    p.add_argument("--tint", type=float, default=0.0, help="uniform colour shift per channel, up to this (0..255)")
    p.add_argument("--noise", type=float, default=0.0, help="std of the Gaussian pixel noise (0..255)")
    p.add_argument("--blur", type=float, default=0.0, help="sigma of the Gaussian blur (pixels)")
    args = p.parse_args(argv)
    table = validation_table(judge, args.tint, args.noise, args.blur)
    print(f"tint {args.tint:g}, noise {args.noise:g}, blur {args.blur:g}")
    print(f"{'task':>14} {'accepted':>9} {'rejected':>9} {'near miss rejected':>19}")
    for t, row in table.items():
        print(f"{t:>14} {row['accept']:>9.3f} {row['reject']:>9.3f} {row['near_miss']:>19.3f}")


if __name__ == "__main__":
    main()
