"""ShapeBench prompts: GenEval's six tasks over the ShapeBench world, a held-out evaluation set, the training
caption distribution and the training-caption noise.

Every prompt comes with GenEval's metadata (``tag``, ``include``, optional ``exclude``). Position prompts follow
GenEval: "a A left of a B" has ``include = [{B}, {A, position: ["left of", 0]}]``.

Hold-out (see docs/shapebench/README.md):

- two_object: five unordered pairs (``HELD_OUT_PAIRS``) never appear as "a X and a Y" in training, in either order;
  the two shapes do meet in coloured training captions.
- position: twelve scenes (``HELD_OUT_SCENES``, an ordered pair and a relation) never appear in any training
  caption, plain or coloured, in either wording ("a A left of a B" = "a B right of a A"); the mirrored scene ("a B
  left of a A") and the pair on the other axis are trained.
- color_attr: 120 scenes {(colour1, shape1), (colour2, shape2)} (``held_out_color_attr()``) never appear in any
  training caption (colour pair or coloured position), in either order.
- single_object, colors, counting: the evaluation prompts are also training captions (there are only 7, 63 and 21 of
  them); the evaluation images still come from unseen seeds.

Training-caption noise (:func:`noisy_render_metadata`, training only): the image drawn for a caption sometimes
disagrees with it, as web captions do: a colour becomes a neighbour on the colour wheel, a shape a confusable shape,
a count n +- 1, a relation its mirror. The caption itself never changes, and a noisy render never shows a held-out
scene.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from .world import COLOR_NEIGHBOURS, COLORS, MIRROR, PLURALS, RELATIONS, SHAPE_CONFUSIONS, SHAPES

TASKS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
NUMBER_WORDS: dict[int, str] = {2: "two", 3: "three", 4: "four"}
AXIS = {"left of": "horizontal", "right of": "horizontal", "above": "vertical", "below": "vertical"}

#: five of the 21 unordered shape pairs, every shape in at least one
HELD_OUT_PAIRS: tuple[frozenset[str], ...] = (
    frozenset({"circle", "star"}), frozenset({"square", "triangle"}), frozenset({"cross", "ring"}),
    frozenset({"diamond", "circle"}), frozenset({"triangle", "ring"}))
#: twelve position scenes (A, relation, B) = "a A relation a B", twelve different unordered pairs (so the same pair
#: is trained on the other axis and in the mirrored order), every shape in two to four of them
HELD_OUT_SCENES: tuple[tuple[str, str, str], ...] = (
    ("circle", "left of", "square"),
    ("triangle", "left of", "square"),
    ("triangle", "left of", "star"),
    ("cross", "left of", "star"),
    ("cross", "left of", "diamond"),
    ("ring", "left of", "diamond"),
    ("circle", "above", "star"),
    ("cross", "above", "square"),
    ("triangle", "above", "diamond"),
    ("star", "above", "ring"),
    ("cross", "above", "circle"),
    ("diamond", "above", "square"),
)
N_HELD_OUT_COLOR_ATTR_SCENES = 120
#: evaluation items per task (a task with fewer distinct prompts repeats them with other seeds)
ITEMS_PER_TASK = 120
DEMO_PER_TASK = 8
SUBSETS: tuple[str, ...] = ("full", "demo", "smoke") + TASKS


# ---------------------------------------------------------------------------------------------- metadata
def article(word: str) -> str:
    """"a" or "an" before ``word`` ("an orange star")."""
    return "an" if word[0] in "aeiou" else "a"


def _noun(shape: str, color: str | None = None) -> str:
    """"a star", "a red star", "an orange star"."""
    words = f"{color} {shape}" if color else shape
    return f"{article(words)} {words}"


def single_object(shape: str) -> dict[str, Any]:
    return {"tag": "single_object", "include": [{"class": shape, "count": 1}], "prompt": _noun(shape)}


def two_object(a: str, b: str) -> dict[str, Any]:
    return {"tag": "two_object", "include": [{"class": a, "count": 1}, {"class": b, "count": 1}],
            "prompt": f"{_noun(a)} and {_noun(b)}"}


def counting(shape: str, n: int, color: str | None = None) -> dict[str, Any]:
    clause: dict[str, Any] = {"class": shape, "count": n}
    if color is not None:
        clause["color"] = color
    words = f"{NUMBER_WORDS[n]} {color + ' ' if color else ''}{PLURALS[shape]}"
    return {"tag": "counting", "include": [clause], "exclude": [{"class": shape, "count": n + 1}], "prompt": words}


def colors(shape: str, color: str) -> dict[str, Any]:
    return {"tag": "colors", "include": [{"class": shape, "count": 1, "color": color}], "prompt": _noun(shape, color)}


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
    return {"tag": "position", "include": [cb, ca], "prompt": f"{_noun(a, color_a)} {relation} {_noun(b, color_b)}"}


def color_attr(c1: str, s1: str, c2: str, s2: str) -> dict[str, Any]:
    return {"tag": "color_attr", "include": [{"class": s1, "count": 1, "color": c1}, {"class": s2, "count": 1, "color": c2}],
            "prompt": f"{_noun(s1, c1)} and {_noun(s2, c2)}"}


def partial_color_pair(c1: str | None, s1: str, c2: str | None, s2: str) -> dict[str, Any]:
    """Training-only form "a red circle and a square" (one colour given)."""
    i1: dict[str, Any] = {"class": s1, "count": 1}
    i2: dict[str, Any] = {"class": s2, "count": 1}
    if c1:
        i1["color"] = c1
    if c2:
        i2["color"] = c2
    return {"tag": "two_object", "include": [i1, i2], "prompt": f"{_noun(s1, c1)} and {_noun(s2, c2)}"}


# ---------------------------------------------------------------------------------------------- hold-out
def held_out_color_attr() -> tuple[frozenset[tuple[str, str]], ...]:
    """120 colour-attribute scenes, drawn once with a fixed seed: a scene is {(colour, shape), (colour, shape)}
    with two different shapes and two different colours (1,512 such scenes)."""
    scenes = sorted({frozenset({(c1, s1), (c2, s2)})
                     for c1, c2 in itertools.permutations(COLORS, 2) for s1, s2 in itertools.permutations(SHAPES, 2)},
                    key=lambda s: sorted(s))
    rng = np.random.default_rng(20261130)
    pick = rng.choice(len(scenes), size=N_HELD_OUT_COLOR_ATTR_SCENES, replace=False)
    return tuple(scenes[int(i)] for i in sorted(pick))


_HELD_OUT_CA = frozenset(held_out_color_attr())
_HELD_OUT_WORDINGS = frozenset(HELD_OUT_SCENES) | frozenset((b, MIRROR[r], a) for a, r, b in HELD_OUT_SCENES)


def is_held_out_position(a: str, relation: str, b: str) -> bool:
    """Whether "a A relation a B" shows a held-out scene (in either wording)."""
    return (a, relation, b) in _HELD_OUT_WORDINGS


def is_held_out_binding(c1: str | None, s1: str, c2: str | None, s2: str) -> bool:
    return c1 is not None and c2 is not None and frozenset({(c1, s1), (c2, s2)}) in _HELD_OUT_CA


def is_held_out_scene(meta: dict[str, Any]) -> bool:
    """Whether metadata (a caption's, or what a training image shows) is a held-out evaluation scene: an uncoloured
    held-out pair, a held-out position scene (coloured or not) or a held-out colour binding (pair or position)."""
    include = meta["include"]
    if len(include) != 2 or any(int(c.get("count", 1)) != 1 for c in include):
        return False
    first, second = include
    if "position" in second:
        if is_held_out_position(second["class"], second["position"][0], first["class"]):
            return True
    elif first.get("color") is None and second.get("color") is None:
        return frozenset({first["class"], second["class"]}) in HELD_OUT_PAIRS
    return is_held_out_binding(first.get("color"), first["class"], second.get("color"), second["class"])


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
        for a, rel, b in HELD_OUT_SCENES:
            out += [position(a, rel, b), position(b, MIRROR[rel], a)]
        return out
    if task == "color_attr":  # one wording per held-out scene, the two orders alternating
        out = []
        for k, scene in enumerate(held_out_color_attr()):
            (c1, s1), (c2, s2) = sorted(scene) if k % 2 == 0 else sorted(scene)[::-1]
            out.append(color_attr(c1, s1, c2, s2))
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
            meta = two_object(*two_shapes())
        elif form == "position":
            a, b = two_shapes()
            meta = position(a, RELATIONS[int(rng.integers(len(RELATIONS)))], b)
        elif form == "position_colored":
            a, b = two_shapes()
            ca, cb = two_colors()
            meta = position(a, RELATIONS[int(rng.integers(len(RELATIONS)))], b, ca, cb)
        elif form == "color_attr":
            a, b = two_shapes()
            ca, cb = two_colors()
            meta = color_attr(ca, a, cb, b)
        elif form == "partial_color_pair":
            a, b = two_shapes()
            c = color()
            return partial_color_pair(c, a, None, b) if rng.random() < 0.5 else partial_color_pair(None, a, c, b)
        else:  # pragma: no cover - the form table and this switch are written together
            raise AssertionError(form)
        if not is_held_out_scene(meta):
            return meta


@dataclass(frozen=True)
class CaptionNoise:
    """Rates of the training-caption noise: per object, the colour becomes a wheel neighbour (``color``) and the
    shape a confusable shape (``shape``); per counting clause, n objects are drawn as n - 1 or n + 1 (``count``,
    within 1..4); per position caption, the relation is mirrored (``position``)."""

    color: float = 0.25
    shape: float = 0.15
    count: float = 0.2
    position: float = 0.15

    def __post_init__(self) -> None:
        for name in ("color", "shape", "count", "position"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"caption noise rate {name} must be in [0, 1], got {rate}")


NO_NOISE = CaptionNoise(0.0, 0.0, 0.0, 0.0)


def noisy_render_metadata(meta: dict[str, Any], rng: np.random.Generator, noise: CaptionNoise) -> dict[str, Any]:
    """What the training image of caption ``meta`` shows: one include clause per object (count 1), each possibly
    changed by the caption noise. The caption is not changed; a draw that would show a held-out scene (see
    :func:`is_held_out_scene`) is replaced by the clean scene."""
    objects: list[dict[str, Any]] = []
    first: list[int] = []
    for clause in meta["include"]:
        n = int(clause.get("count", 1))
        move = rng.random() < noise.count
        up = rng.random() < 0.5
        if n >= 2 and move:
            n = n + 1 if up and n < max(NUMBER_WORDS) else n - 1
        first.append(len(objects))
        for k in range(n):
            obj: dict[str, Any] = {"class": clause["class"], "count": 1}
            if "color" in clause:
                obj["color"] = clause["color"]
            if "position" in clause and k == 0:
                obj["position"] = list(clause["position"])
            objects.append(obj)
    for obj in objects:
        swap_shape, shape_pick = rng.random() < noise.shape, rng.random()
        swap_color, color_pick = rng.random() < noise.color, rng.random()
        mirror = rng.random() < noise.position
        if swap_shape:
            options = SHAPE_CONFUSIONS[obj["class"]]
            obj["class"] = options[int(shape_pick * len(options))]
        if swap_color and "color" in obj:
            options = COLOR_NEIGHBOURS[obj["color"]]
            obj["color"] = options[int(color_pick * len(options))]
        if "position" in obj:
            rel, target = obj["position"]
            obj["position"] = [MIRROR[rel] if mirror else rel, first[int(target)]]
    shown = {"tag": meta["tag"], "include": objects}
    if is_held_out_scene(shown):
        return {"tag": meta["tag"], "include": copy.deepcopy(meta["include"])}
    return shown


def vocabulary() -> list[str]:
    """Every word of the grammar, sorted."""
    words = {"a", "an", "and", "of", "left", "right", "above", "below"} | set(NUMBER_WORDS.values())
    words |= set(SHAPES) | set(PLURALS.values()) | set(COLORS)
    return sorted(words)
