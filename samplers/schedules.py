"""Timestep schedules: the scheduler's own spacing, a spacing override, Align Your Steps, or an explicit list.

AYS (Sabour et al., arXiv 2404.14507) publishes 10-step schedules for SD-1.5, SDXL and SVD (:data:`AYS_PUBLISHED`;
the same numbers as ``diffusers.schedulers.AysSchedules``, which a test checks: this package imports torch only).
Other step counts are obtained as the AYS paper does: log-linear interpolation
of the published noise levels. For DDIM-type models the noise levels are mapped to the nearest integer training
timestep of the model's own noise table, so DDIM runs on AYS too (diffusers' DDIMScheduler refuses custom timesteps;
the solvers here do not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence, Union

ScheduleSpec = Union[str, Sequence[int], None]

SPACINGS = ("leading", "trailing", "linspace")
#: the published 10-step schedules: DDIM timesteps (None for the EDM-type SVD) and 11 noise levels ending in 0
AYS_PUBLISHED: dict[str, tuple[tuple[int, ...] | None, tuple[float, ...]]] = {
    "sd": ((999, 850, 736, 645, 545, 455, 343, 233, 124, 24),
           (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.0)),
    "sdxl": ((999, 845, 730, 587, 443, 310, 193, 116, 53, 13),
             (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.38, 0.234, 0.113, 0.0)),
    "svd": (None, (700.0, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.0)),
}


@dataclass(frozen=True)
class SchedulePlan:
    """What a solver builder needs: a spacing override, explicit timesteps, or explicit sigmas (at most one)."""

    name: str
    spacing: str | None = None
    timesteps: tuple[float, ...] | None = None
    sigmas: tuple[float, ...] | None = None  # includes the final level (num_steps + 1 entries)


def published_ays(family: str) -> tuple[list[int] | None, list[float]]:
    """The published 10-step AYS timesteps (None for sigma-only families) and 11 sigmas (ending in 0)."""
    if family not in AYS_PUBLISHED:
        raise ValueError(f"unknown AYS family {family!r}; known: {', '.join(AYS_PUBLISHED)}")
    timesteps, sigmas = AYS_PUBLISHED[family]
    return (list(timesteps) if timesteps else None), [float(s) for s in sigmas]


def loglinear_interpolate(values: Sequence[float], num: int) -> list[float]:
    """Resample a decreasing positive sequence to ``num`` points, linearly in log space over a uniform grid."""
    if num < 2:
        raise ValueError("interpolation needs at least 2 points")
    logs = [math.log(v) for v in values]
    out = []
    last = len(logs) - 1
    for j in range(num):
        pos = j * last / (num - 1)
        k = min(int(pos), last - 1)
        frac = pos - k
        out.append(math.exp(logs[k] + frac * (logs[k + 1] - logs[k])))
    return out


def ays_sigmas(family: str, num_steps: int) -> list[float]:
    """AYS noise levels for ``num_steps`` steps: ``num_steps + 1`` values ending in 0."""
    _, sigmas = published_ays(family)
    body = sigmas[:-1] if sigmas[-1] == 0.0 else sigmas
    if num_steps == len(body):
        return list(body) + [0.0]
    if num_steps == 1:
        return [body[0], 0.0]
    return loglinear_interpolate(body, num_steps) + [0.0]


def sigmas_to_timesteps(sigmas: Sequence[float], alphas_cumprod: Sequence[float]) -> list[int]:
    """Nearest integer training timestep for each noise level sigma = sqrt((1 - abar) / abar)."""
    table = [math.log(math.sqrt((1.0 - a) / a)) if 0.0 < a < 1.0 else None for a in alphas_cumprod]
    valid = [(t, ls) for t, ls in enumerate(table) if ls is not None]
    out = []
    for s in sigmas:
        target = math.log(s)
        best = min(valid, key=lambda tl: abs(tl[1] - target))
        out.append(best[0])
    return out


def resolve_schedule(spec: ScheduleSpec, scheduler: Any, num_steps: int) -> SchedulePlan:
    """Turn a schedule spec into a :class:`SchedulePlan` for ``scheduler``."""
    if spec is None or spec == "default":
        return SchedulePlan(name="default")
    if isinstance(spec, str):
        if spec in SPACINGS:
            return SchedulePlan(name=spec, spacing=spec)
        if spec == "ays":
            raise ValueError("schedule 'ays' needs a model family: use 'ays:sd', 'ays:sdxl' or 'ays:svd' "
                             "(model adapters fill it in for their family)")
        if spec.startswith("ays:"):
            return _ays_plan(spec[4:], scheduler, num_steps)
        raise ValueError(f"unknown schedule {spec!r}; use 'default', one of {SPACINGS}, 'ays:<family>' "
                         "or a list of timesteps")
    timesteps = [float(t) for t in spec]
    _check_timesteps(timesteps, scheduler)
    if len(timesteps) != num_steps:
        raise ValueError(f"explicit schedule has {len(timesteps)} timesteps but num_steps={num_steps}")
    return SchedulePlan(name="custom", timesteps=tuple(timesteps))


def _check_timesteps(timesteps: Sequence[float], scheduler: Any) -> None:
    n_train = int(scheduler.config.get("num_train_timesteps", 1000))
    if not timesteps:
        raise ValueError("explicit schedule is empty")
    if any(not (0 <= t < n_train) for t in timesteps):
        raise ValueError(f"explicit timesteps must lie in [0, {n_train}), got {list(timesteps)}")
    if any(b >= a for a, b in zip(timesteps, timesteps[1:])):
        raise ValueError(f"explicit timesteps must be strictly decreasing, got {list(timesteps)}")


def _ays_plan(family: str, scheduler: Any, num_steps: int) -> SchedulePlan:
    kind = type(scheduler).__name__
    name = f"ays:{family}"
    if "FlowMatch" in kind:
        raise ValueError("AYS publishes no schedule for flow-matching models")
    timesteps, published_sigmas = published_ays(family)
    if "Euler" in kind:
        return SchedulePlan(name=name, sigmas=tuple(ays_sigmas(family, num_steps)))
    # DDIM-type: integer timesteps of the model's own noise table
    if timesteps is not None and num_steps == len(timesteps):
        return SchedulePlan(name=name, timesteps=tuple(float(t) for t in timesteps))
    if timesteps is None:
        raise ValueError(f"AYS family {family!r} publishes sigmas only (an EDM model); it has no DDIM timesteps")
    abar = [float(a) for a in scheduler.alphas_cumprod]
    ts = sigmas_to_timesteps(ays_sigmas(family, num_steps)[:-1], abar)
    if any(b >= a for a, b in zip(ts, ts[1:])):
        raise ValueError(f"AYS:{family} at {num_steps} steps maps two noise levels to the same DDIM timestep; "
                         "use fewer steps or an Euler scheduler")
    return SchedulePlan(name=name, timesteps=tuple(float(t) for t in ts))
