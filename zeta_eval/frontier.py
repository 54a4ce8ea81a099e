"""The CFG frontier: standard classifier-free guidance swept over a grid of guidance scales, and its score at any
scale in between.

``model.frontier`` asks for the sweep::

    model:
      frontier: {gammas: [1, 1.5, 2, 3, 4.5, 6, 9, 12]}   # these scales
      frontier: {gammas: auto}                           # a grid around the experiment's own scales (below)

Each scale becomes one standard setting at the experiment's steps, labelled ``standard γ=4.5 (frontier)``; a scale
that an already configured standard setting runs (same γ, same steps) is not added twice. The report then treats
every standard setting at the experiment's steps as a point of the CFG curve, whether the frontier or the config
added it.

Interpolation (:func:`interpolate`): per item, piecewise linear in log γ between the two neighbouring grid scales,
exactly the grid score at a grid scale, and undefined (NaN) outside the grid: a method whose guidance lies beyond
the largest (or below the smallest) scale of the sweep is not compared with a guess. Scales must therefore be > 0.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

#: the largest ratio between neighbouring scales of an ``auto`` grid
AUTO_RATIO = 1.5
#: an ``auto`` grid reaches this multiple of the largest scale the experiment's samplers use
AUTO_REACH = 1.5


def _round2(value: float) -> float:
    """``value`` rounded to 2 significant digits (3.375 -> 3.4, 11.39 -> 11)."""
    digits = 1 - int(math.floor(math.log10(abs(value))))
    return float(round(value, digits))


def auto_gammas(scales: Sequence[float]) -> list[float]:
    """The ``auto`` grid for an experiment whose samplers use the guidance ``scales`` (each setting's γ1 and
    first-order γ_eff; those below 1 are left out: CFG++'s λ is not a CFG scale): 1 (no guidance), every one of those
    scales and 1.5 times the largest (measured guidance can
    exceed the first-order value) as anchors, and between neighbouring anchors further than 1.5 apart in ratio, the
    fewest points evenly spaced in log γ that bring every ratio to 1.5 or less, rounded to 2 significant digits.
    E.g. scales 1.5 and 3 give 1, 1.5, 2.1, 3, 4.5."""
    anchors = sorted({float(g) for g in scales if math.isfinite(g) and g >= 1} | {1.0})
    anchors = sorted(set(anchors) | {_round2(AUTO_REACH * anchors[-1])})
    grid = set(anchors)
    for lo, hi in zip(anchors, anchors[1:]):
        parts = math.ceil(math.log(hi / lo) / math.log(AUTO_RATIO) - 1e-9)
        grid.update(_round2(lo * (hi / lo) ** (k / parts)) for k in range(1, parts))
    return sorted(grid)


def frontier_gammas(spec: Any, scales: Sequence[float]) -> list[float]:
    """The sorted, distinct scales of ``model.frontier`` (``{gammas: [...]}`` or ``{gammas: auto}``); ValueError,
    naming the option, for anything else."""
    if not isinstance(spec, dict) or set(spec) != {"gammas"}:
        raise ValueError(f"model.frontier must be {{gammas: [1, 1.5, 2, ...]}} or {{gammas: auto}}; got {spec!r}")
    gammas = spec["gammas"]
    if gammas == "auto":
        return auto_gammas(scales)
    if (not isinstance(gammas, list)
            or not all(isinstance(g, (int, float)) and not isinstance(g, bool) for g in gammas)
            or len({float(g) for g in gammas}) < 2):
        raise ValueError(f"model.frontier.gammas must be auto or a list of at least 2 distinct guidance scales; got "
                         f"{gammas!r}")
    bad = [g for g in gammas if not (math.isfinite(g) and g > 0)]
    if bad:
        raise ValueError(f"model.frontier.gammas must be finite and > 0 (the curve is interpolated in log γ); got "
                         f"{bad[0]!r}")
    return sorted({float(g) for g in gammas})


def frontier_label(gamma: float) -> str:
    return f"standard γ={gamma:g} (frontier)"


def interpolate(grid: Sequence[float], values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Per item, the CFG score at guidance ``at[i]``: piecewise linear in log γ between the grid scales that
    bracket it, NaN outside [min(grid), max(grid)] or where a bracketing score is missing.

    Args:
        grid: the K guidance scales of the curve, increasing, > 0.
        values: (N, K) scores of item i at scale k (NaN: missing).
        at: (N,) the scale to read each item's curve at (NaN: none).
    """
    g = np.log(np.asarray(grid, dtype=float))
    values = np.asarray(values, dtype=float)
    at = np.asarray(at, dtype=float)
    if values.shape != (len(at), len(g)):
        raise ValueError(f"values must be (items, scales) = ({len(at)}, {len(g)}); got {values.shape}")
    if len(g) == 0 or np.any(np.diff(g) <= 0):
        raise ValueError("the grid must hold increasing guidance scales")
    out = np.full(len(at), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.log(at)
    inside = np.isfinite(x) & (x >= g[0] - 1e-12) & (x <= g[-1] + 1e-12)
    if len(g) == 1:
        out[inside] = values[inside, 0]
        return out
    k = np.clip(np.searchsorted(g, x[inside], side="right") - 1, 0, len(g) - 2)  # left bracket
    rows = np.flatnonzero(inside)
    w = np.clip((x[inside] - g[k]) / (g[k + 1] - g[k]), 0.0, 1.0)
    left, right = values[rows, k], values[rows, k + 1]
    # exactly the grid score at a grid scale, even when the other bracket is missing
    value = np.where(w == 0.0, left, np.where(w == 1.0, right, (1 - w) * left + w * right))
    out[rows] = value
    return out
