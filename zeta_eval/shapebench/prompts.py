"""ShapeBench prompts: GenEval's six tasks over the ShapeBench world, a held-out evaluation set and the training
caption distribution.

Every prompt comes with GenEval's metadata (``tag``, ``include``, optional ``exclude``). Position prompts follow
GenEval: "a A left of a B" has ``include = [{B}, {A, position: ["left of", 0]}]``.

Hold-out (see docs/shapebench/README.md):

- two_object: three unordered pairs (``HELD_OUT_PAIRS``) never appear as "a X and a Y" in training, in either order;
  the two shapes do meet in coloured training captions.
- position: six (unordered pair, axis) groups (``HELD_OUT_POSITION``) never appear in any training caption, plain or
  coloured: the model never sees those two shapes related along that axis.
- color_attr: sixty scenes {(colour1, shape1), (colour2, shape2)} (``held_out_color_attr()``) never appear in any
  training caption (colour pair or coloured position), in either order.
- single_object, colors, counting: the evaluation prompts are also training captions (there are only 5, 30 and 15 of
  them); the evaluation images still come from unseen seeds.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import numpy as np

from .world import COLORS, PLURALS, RELATIONS, SHAPES

TASKS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
NUMBER_WORDS: dict[int, str] = {2: "two", 3: "three", 4: "four"}
AXIS = {"left of": "horizontal", "right of": "horizontal", "above": "vertical", "below": "vertical"}

HELD_OUT_PAIRS: tuple[frozenset[str], ...] = (
    frozenset({"circle", "star"}), frozenset({"square", "triangle"}), frozenset({"triangle", "cross"}))
HELD_OUT_POSITION: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"circle", "square"}), "horizontal"),
    (frozenset({"triangle", "star"}), "horizontal"),
    (frozenset({"square", "cross"}), "horizontal"),
    (frozenset({"circle", "cross"}), "vertical"),
    (frozenset({"square", "star"}), "vertical"),
    (frozenset({"triangle", "circle"}), "vertical"),
)
N_HELD_OUT_COLOR_ATTR_SCENES = 60
#: evaluation items per task (a task with fewer distinct prompts repeats them with other seeds)
ITEMS_PER_TASK = 120
DEMO_PER_TASK = 8
SUBSETS: tuple[str, ...] = ("full", "demo", "smoke") + TASKS


# ---------------------------------------------------------------------------------------------- metadata
def single_object(shape: str) -> dict[str, Any]:
    return {"tag": "single_object", "include": [{"class": shape, "count": 1}], "prompt": f"a {shape}"}


def two_object(a: str, b: str) -> dict[str, Any]:
    return {"tag": "two_object", "include": [{"class": a, "count": 1}, {"class": b, "count": 1}],
            "prompt": f"a {a} and a {b}"}


def counting(shape: str, n: int, color: str | None = None) -> dict[str, Any]:
    clause: dict[str, Any] = {"class": shape, "count": n}
    if color is not None:
        clause["color"] = color
    words = f"{NUMBER_WORDS[n]} {color + ' ' if color else ''}{PLURALS[shape]}"
    return {"tag": "counting", "include": [clause], "exclude": [{"class": shape, "count": n + 1}], "prompt": words}


def colors(shape: str, color: str) -> dict[str, Any]:
    return {"tag": "colors", "include": [{"class": shape, "count": 1, "color": color}], "prompt": f"a {color} {shape}"}


def position(a: str, relation: str, b: str, color_a: str | None = None, color_b: str | None = None) -> dict[str, Any]:
    """"a A <relation> a B" (GenEval: B is clause 0, A carries the relation to it)."""
    if relation not in RELATIONS:
        raise ValueError(f"relation must be one of {', '.join(RELATIONS)}; got {relation!r}")
    cb: dict[str, Any] = {"class": b, "count": 1}
    ca: dict[str, Any] = {"class": a, "count": 1, "position": [relation, 0]}
    if color_b:
        cb["color"] = color_b
    if color_a:
        ca["color"] = color_a
    pa = f"{color_a} {a}" if color_a else a
    pb = f"{color_b} {b}" if color_b else b
    return {"tag": "position", "include": [cb, ca], "prompt": f"a {pa} {relation} a {pb}"}


def color_attr(c1: str, s1: str, c2: str, s2: str) -> dict[str, Any]:
    return {"tag": "color_attr", "include": [{"class": s1, "count": 1, "color": c1}, {"class": s2, "count": 1, "color": c2}],
            "prompt": f"a {c1} {s1} and a {c2} {s2}"}


def partial_color_pair(c1: str | None, s1: str, c2: str | None, s2: str) -> dict[str, Any]:
    """Training-only form "a red circle and a square" (one colour given)."""
    i1: dict[str, Any] = {"class": s1, "count": 1}
    i2: dict[str, Any] = {"class": s2, "count": 1}
    if c1:
        i1["color"] = c1
    if c2:
        i2["color"] = c2
    p1 = f"{c1} {s1}" if c1 else s1
    p2 = f"{c2} {s2}" if c2 else s2
    return {"tag": "two_object", "include": [i1, i2], "prompt": f"a {p1} and a {p2}"}


# ---------------------------------------------------------------------------------------------- hold-out
def held_out_color_attr() -> tuple[frozenset[tuple[str, str]], ...]:
    """Sixty colour-attribute scenes, drawn once with a fixed seed: a scene is {(colour, shape), (colour, shape)}
    with two different shapes and two different colours."""
    scenes = sorted({frozenset({(c1, s1), (c2, s2)})
                     for c1, c2 in itertools.permutations(COLORS, 2) for s1, s2 in itertools.permutations(SHAPES, 2)},
                    key=lambda s: sorted(s))
    rng = np.random.default_rng(20240611)
    pick = rng.choice(len(scenes), size=N_HELD_OUT_COLOR_ATTR_SCENES, replace=False)
    return tuple(scenes[int(i)] for i in sorted(pick))


_HELD_OUT_CA = frozenset(held_out_color_attr())


def is_held_out_position(a: str, relation: str, b: str) -> bool:
    return (frozenset({a, b}), AXIS[relation]) in HELD_OUT_POSITION


def is_held_out_binding(c1: str | None, s1: str, c2: str | None, s2: str) -> bool:
    return c1 is not None and c2 is not None and frozenset({(c1, s1), (c2, s2)}) in _HELD_OUT_CA


# ---------------------------------------------------------------------------------------------- evaluation
def task_prompts(task: str) -> list[dict[str, Any]]:
    """The evaluation prompts of one task (metadata dicts), in a fixed order."""
    if task == "single_object":
        return [single_object(s) for s in SHAPES]
    if task == "two_object":
        out = []
        for pair in HELD_OUT_PAIRS:
            a, b = sorted(pair)
            out += [two_object(a, b), two_object(b, a)]
        return out
    if task == "counting":
        return [counting(s, n) for n in NUMBER_WORDS for s in SHAPES]
    if task == "colors":
        return [colors(s, c) for c in COLORS for s in SHAPES]
    if task == "position":
        out = []
        for pair, axis in HELD_OUT_POSITION:
            a, b = sorted(pair)
            for rel in (r for r in RELATIONS if AXIS[r] == axis):
                out += [position(a, rel, b), position(b, rel, a)]
        return out
    if task == "color_attr":
        out = []
        for scene in held_out_color_attr():
            (c1, s1), (c2, s2) = sorted(scene)
            out += [color_attr(c1, s1, c2, s2), color_attr(c2, s2, c1, s1)]
        return out
    raise ValueError(f"task must be one of {', '.join(TASKS)}; got {task!r}")


def _seed(item_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"shapebench/{item_id}".encode()).digest()[:4], "big") % (2**31 - 1)


def _task_items(task: str) -> list[dict[str, Any]]:
    prompts = task_prompts(task)
    items = []
    for k in range(ITEMS_PER_TASK):
        meta = prompts[k % len(prompts)]  # prompt-major cycling: the first items of a task cover distinct prompts
        item_id = f"{task}/{k:03d}"
        item: dict[str, Any] = {"id": item_id, "prompt": meta["prompt"], "seed": _seed(item_id), "tag": task,
                                "include": [dict(c) for c in meta["include"]]}
        if "exclude" in meta:
            item["exclude"] = [dict(c) for c in meta["exclude"]]
        items.append(item)
    return items


def evaluation_set(subset: str = "full") -> list[dict[str, Any]]:
    """The fixed held-out evaluation items.

    Args:
        subset: ``"full"`` (120 items per task, 720), ``"demo"`` (8 per task, 48), ``"smoke"`` (8 items: one per
            task plus a second single_object and colors item), or a task name (its 120 items).

    Returns:
        dicts with ``id`` (stable, e.g. ``"position/007"``), ``prompt``, ``seed``, ``tag``, ``include`` and, for
        counting, ``exclude``.
    """
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {', '.join(SUBSETS)}; got {subset!r}")
    per_task = {t: _task_items(t) for t in TASKS}
    if subset == "full":
        return [it for t in TASKS for it in per_task[t]]
    if subset == "demo":
        return [it for t in TASKS for it in per_task[t][:DEMO_PER_TASK]]
    if subset == "smoke":
        out = [per_task[t][0] for t in TASKS]
        return out + [per_task["single_object"][1], per_task["colors"][1]]
    return per_task[subset]


# ---------------------------------------------------------------------------------------------- training
#: (form, weight) of the training caption distribution; the empty caption is added by the trainer (CFG dropout)
TRAIN_FORMS: tuple[tuple[str, float], ...] = (
    ("single_object", 0.06),
    ("colors", 0.12),
    ("two_object", 0.10),
    ("counting", 0.12),
    ("counting_colored", 0.06),
    ("position", 0.18),
    ("position_colored", 0.10),
    ("color_attr", 0.18),
    ("partial_color_pair", 0.08),
)


def sample_training_caption(rng: np.random.Generator) -> dict[str, Any]:
    """One training caption with its metadata, drawn from the training distribution (never a held-out prompt)."""
    forms, weights = zip(*TRAIN_FORMS)
    form = forms[int(rng.choice(len(forms), p=np.asarray(weights) / sum(weights)))]

    def shape() -> str:
        return SHAPES[int(rng.integers(len(SHAPES)))]

    def color() -> str:
        return COLORS[int(rng.integers(len(COLORS)))]

    def two_shapes() -> tuple[str, str]:
        a, b = rng.choice(len(SHAPES), size=2, replace=False)
        return SHAPES[int(a)], SHAPES[int(b)]

    def two_colors() -> tuple[str, str]:
        a, b = rng.choice(len(COLORS), size=2, replace=False)
        return COLORS[int(a)], COLORS[int(b)]

    while True:
        if form == "single_object":
            return single_object(shape())
        if form == "colors":
            return colors(shape(), color())
        if form == "counting":
            return counting(shape(), int(rng.integers(2, 5)))
        if form == "counting_colored":
            return counting(shape(), int(rng.integers(2, 5)), color())
        if form == "two_object":
            a, b = two_shapes()
            if frozenset({a, b}) not in HELD_OUT_PAIRS:
                return two_object(a, b)
        elif form == "position":
            a, b = two_shapes()
            rel = RELATIONS[int(rng.integers(len(RELATIONS)))]
            if not is_held_out_position(a, rel, b):
                return position(a, rel, b)
        elif form == "position_colored":
            a, b = two_shapes()
            ca, cb = two_colors()
            rel = RELATIONS[int(rng.integers(len(RELATIONS)))]
            if not is_held_out_position(a, rel, b) and not is_held_out_binding(ca, a, cb, b):
                return position(a, rel, b, ca, cb)
        elif form == "color_attr":
            a, b = two_shapes()
            ca, cb = two_colors()
            if not is_held_out_binding(ca, a, cb, b):
                return color_attr(ca, a, cb, b)
        elif form == "partial_color_pair":
            a, b = two_shapes()
            c = color()
            return partial_color_pair(c, a, None, b) if rng.random() < 0.5 else partial_color_pair(None, a, c, b)
        else:  # pragma: no cover - the form table and this switch are written together
            raise AssertionError(form)


def vocabulary() -> list[str]:
    """Every word of the grammar, sorted."""
    words = {"a", "and", "of", "left", "right", "above", "below"} | set(NUMBER_WORDS.values())
    words |= set(SHAPES) | set(PLURALS.values()) | set(COLORS)
    return sorted(words)
