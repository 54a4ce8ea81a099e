"""The ShapeBench world: flat coloured shapes on a plain dark background, drawn from GenEval-style metadata.

Everything here is deterministic given a ``numpy.random.Generator``. Shapes fill their square bounding box exactly
(a star is stretched to its box, a diamond touches the middle of each side), so an oracle can match a detected
component against the seven templates rendered in that box. Edges are anti-aliased by supersampling, which is also
what the model learns to draw. Each object's colour is its palette colour plus a small per-object offset (``JITTER``),
in training renders and ground-truth renders alike.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

IMAGE_SIZE = 32
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "diamond", "ring")
PLURALS: dict[str, str] = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars",
                           "cross": "crosses", "diamond": "diamonds", "ring": "rings"}
#: RGB in 0..255: eight hues around the colour wheel, in wheel order, plus white. Wheel neighbours are close on
#: purpose (77-100 apart in RGB, against 140-200 for v1's six colours) and every colour is far from the background
#: and from the others' multiples, so that a pixel's colour is still decidable against the dark background.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (222, 44, 44),
    "orange": (240, 130, 36),
    "yellow": (226, 212, 44),
    "green": (54, 178, 64),
    "teal": (32, 168, 158),
    "blue": (54, 104, 232),
    "purple": (146, 68, 222),
    "pink": (238, 110, 182),
    "white": (232, 232, 232),
}
COLORS: tuple[str, ...] = tuple(PALETTE)
#: the colours a caption's colour may be confused with (training-caption noise): wheel neighbours; white with the
#: two lightest hues
COLOR_NEIGHBOURS: dict[str, tuple[str, ...]] = {
    "red": ("orange", "pink"), "orange": ("red", "yellow"), "yellow": ("orange", "green", "white"),
    "green": ("yellow", "teal"), "teal": ("green", "blue"), "blue": ("teal", "purple"), "purple": ("blue", "pink"),
    "pink": ("purple", "red", "white"), "white": ("yellow", "pink"),
}
#: the shapes a caption's shape may be confused with (training-caption noise)
SHAPE_CONFUSIONS: dict[str, tuple[str, ...]] = {
    "circle": ("ring",), "ring": ("circle",), "square": ("diamond",), "diamond": ("square", "triangle"),
    "triangle": ("diamond",), "star": ("cross",), "cross": ("star",),
}
BACKGROUND: tuple[int, int, int] = (22, 22, 28)
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
MIRROR: dict[str, str] = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}

#: bounding-box side in pixels, by the number of objects in the scene
SIZE_RANGE: dict[int, tuple[int, int]] = {1: (11, 17), 2: (10, 14), 3: (10, 12), 4: (9, 11)}
#: minimum empty pixels between two bounding boxes (keeps same-coloured shapes in separate components)
GAP = 2
#: the supersampling factor of the anti-aliased edges
SUPERSAMPLE = 4
#: half-width of a cross arm, in units of the half box
CROSS_ARM = 0.36
#: inner / outer radius of the five-pointed star
STAR_INNER = 0.45
#: inner / outer radius of the ring: at the smallest box (9 px) the band is 2.2 px wide around a 4.5 px hole
RING_INNER = 0.5
#: per-object colour offset: each RGB channel shifted by an integer drawn uniformly from [-JITTER, JITTER]
JITTER = 8


def _star_polygon() -> np.ndarray:
    angles = -np.pi / 2 + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, 1.0, STAR_INNER)
    pts = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    lo, hi = pts.min(0), pts.max(0)
    return (pts - lo) / (hi - lo) * 2.0 - 1.0  # stretch the star to fill [-1, 1]^2


def _inside_polygon(u: np.ndarray, v: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over the points."""
    inside = np.zeros(u.shape, dtype=bool)
    n = len(poly)
    for k in range(n):
        (x1, y1), (x2, y2) = poly[k], poly[(k + 1) % n]
        crosses = (y1 > v) != (y2 > v)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (v - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (u < x_at)
    return inside


def shape_indicator(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether points (u, v) of the box [-1, 1]^2 (v grows downwards) lie inside ``shape``."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
    if shape == "triangle":  # apex at the top centre, base along the bottom edge
        return (v >= -1.0) & (v <= 1.0) & (np.abs(u) <= (v + 1.0) / 2.0)
    if shape == "star":
        return _inside_polygon(u, v, _star_polygon())
    if shape == "cross":
        return ((np.abs(u) <= CROSS_ARM) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= CROSS_ARM) & (np.abs(u) <= 1.0))
    if shape == "diamond":  # the square turned by 45 degrees, corners at the middle of the box sides
        return np.abs(u) + np.abs(v) <= 1.0
    if shape == "ring":
        r2 = u * u + v * v
        return (r2 <= 1.0) & (r2 >= RING_INNER * RING_INNER)
    raise ValueError(f"shape must be one of {', '.join(SHAPES)}; got {shape!r}")


@functools.lru_cache(maxsize=None)
def coverage(shape: str, size: int) -> np.ndarray:
    """Anti-aliased coverage (size, size) float32 in [0, 1] of ``shape`` filling a size x size pixel box."""
    if not isinstance(size, int) or size < 2:
        raise ValueError(f"size must be an integer >= 2, got {size!r}")
    n = size * SUPERSAMPLE
    centres = (np.arange(n) + 0.5) / n * 2.0 - 1.0
    u, v = np.meshgrid(centres, centres)
    inside = shape_indicator(shape, u, v).astype(np.float32)
    cov = inside.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))
    cov.setflags(write=False)
    return cov


@dataclass(frozen=True)
class ShapeObject:
    """One drawn object: class, colour name, its bounding box (x0, y0 top-left, side ``size``) in pixels and its
    colour offset from the palette colour (``jitter``, RGB)."""

    shape: str
    color: str
    x0: int
    y0: int
    size: int
    jitter: tuple[int, int, int] = (0, 0, 0)

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The drawn colour: the palette colour plus the jitter, clipped to 0..255."""
        return tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(PALETTE[self.color], self.jitter))

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x0 + self.size / 2.0, self.y0 + self.size / 2.0)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), x1/y1 exclusive."""
        return (self.x0, self.y0, self.x0 + self.size, self.y0 + self.size)


def render(objects: Sequence[ShapeObject], image_size: int = IMAGE_SIZE) -> np.ndarray:
    """Draw the objects on the background: uint8 (H, W, 3)."""
    img = np.empty((image_size, image_size, 3), dtype=np.float32)
    img[:] = BACKGROUND
    for obj in objects:
        a = coverage(obj.shape, obj.size)[..., None]
        x0, y0, x1, y1 = obj.box
        if x0 < 0 or y0 < 0 or x1 > image_size or y1 > image_size:
            raise ValueError(f"object {obj} does not fit in a {image_size}x{image_size} image")
        region = img[y0:y1, x0:x1]
        region[:] = region * (1.0 - a) + np.asarray(obj.rgb, dtype=np.float32) * a
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- layout
def relation_holds(a: ShapeObject, b: ShapeObject, relation: str) -> bool:
    """A clean-layout version of the relation: ``a`` is clearly ``relation`` ``b`` (dominant axis at least 2x)."""
    (ax, ay), (bx, by) = a.centre, b.centre
    dx, dy = ax - bx, ay - by
    if relation in ("left of", "right of"):
        main, other = dx, dy
        sign = -1 if relation == "left of" else 1
    elif relation in ("above", "below"):
        main, other = dy, dx
        sign = -1 if relation == "above" else 1
    else:
        raise ValueError(f"relation must be one of {', '.join(RELATIONS)}; got {relation!r}")
    return main * sign > 0 and abs(other) <= 0.5 * abs(main)


def _separated(a: ShapeObject, b: ShapeObject, gap: int = GAP) -> bool:
    ax0, ay0, ax1, ay1 = a.box
    bx0, by0, bx1, by1 = b.box
    return ax1 + gap <= bx0 or bx1 + gap <= ax0 or ay1 + gap <= by0 or by1 + gap <= ay0


def layout(specs: Sequence[dict[str, Any]], rng: np.random.Generator, image_size: int = IMAGE_SIZE,
           max_tries: int = 400) -> list[ShapeObject]:
    """Place objects without overlap.

    ``specs``: one dict per object with ``shape``, ``color`` and optionally ``relation`` = (relation, index): this
    object must be ``relation`` the object ``index`` of the list (placed earlier).
    """
    n = len(specs)
    if n < 1 or n > max(SIZE_RANGE):
        raise ValueError(f"a scene has 1 to {max(SIZE_RANGE)} objects; got {n}")
    lo, hi = SIZE_RANGE[n]
    for _ in range(max_tries):
        placed: list[ShapeObject] = []
        ok = True
        for spec in specs:
            size = int(rng.integers(lo, hi + 1))
            for _ in range(60):
                x0 = int(rng.integers(1, image_size - size))
                y0 = int(rng.integers(1, image_size - size))
                obj = ShapeObject(spec["shape"], spec["color"], x0, y0, size)
                if not all(_separated(obj, p) for p in placed):
                    continue
                rel = spec.get("relation")
                if rel is not None and not relation_holds(obj, placed[rel[1]], rel[0]):
                    continue
                placed.append(obj)
                break
            else:
                ok = False
                break
        if ok:
            return placed
    raise RuntimeError(f"could not lay out {n} objects in {max_tries} tries")  # not reached with the size table


def scene_from_metadata(meta: dict[str, Any], rng: np.random.Generator) -> list[ShapeObject]:
    """A scene that satisfies GenEval-style metadata (``include`` clauses; exactly ``count`` of each class).

    Unspecified colours are drawn at random per object. A clause with ``position: [relation, idx]`` is placed
    relative to the first object of clause ``idx``. Every object gets its own colour jitter (drawn after the layout).
    """
    include = meta.get("include")
    if not include:
        raise ValueError("metadata must have a non-empty 'include' list")
    specs: list[dict[str, Any]] = []
    first_index: list[int] = []
    for clause in include:
        first_index.append(len(specs))
        for k in range(int(clause.get("count", 1))):
            color = clause.get("color") or COLORS[int(rng.integers(len(COLORS)))]
            spec: dict[str, Any] = {"shape": clause["class"], "color": color}
            if "position" in clause and k == 0:
                rel, idx = clause["position"]
                spec["relation"] = (rel, first_index[int(idx)])
            specs.append(spec)
    objects = layout(specs, rng)
    offsets = rng.integers(-JITTER, JITTER + 1, size=(len(objects), 3))
    return [ShapeObject(o.shape, o.color, o.x0, o.y0, o.size, tuple(int(v) for v in off))
            for o, off in zip(objects, offsets)]


def render_metadata(meta: dict[str, Any], seed: int) -> np.ndarray:
    """Ground-truth render (uint8 HxWx3) of one metadata item with a seeded layout."""
    return render(scene_from_metadata(meta, np.random.default_rng(seed)))
