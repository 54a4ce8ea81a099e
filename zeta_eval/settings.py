"""Settings resolution: what the configured samplers become before anything runs (steps scaled by ``max_steps``,
NFE-matched steps, one run per distinct setting) and the checks of the settings against each other, the adapter,
``model.compile`` and the metrics."""

from __future__ import annotations

import logging
from typing import Any, Sequence

from metrics.base import SampleMetric
from samplers import Sampler

from .identity import sampler_key

log = logging.getLogger("zeta_eval")


def scale_steps(samplers: Sequence[Sampler], old: int, new: int, schedule: Any) -> list[Sampler]:
    """Scale every sampler's step-counted settings from ``old`` to ``new`` steps (in place), match NFE again, and
    return the samplers with settings that became identical kept once (a warning names them)."""
    for s in samplers:
        before = (s.params(), s.steps)
        s.scale_steps(old, new)
        if s.label and (s.params(), s.steps) != before and getattr(s, "match_nfe", None) is None:
            s.label = None  # a hand-written label may name the old values; the derived one names the new
    resolve_nfe_matching(samplers, new)
    kept: dict[str, tuple[int, Sampler]] = {}
    for k, s in enumerate(samplers):
        key = sampler_key(s, new, schedule)
        if key in kept:
            j, first = kept[key]
            log.warning("samplers[%d] (%s) is the same setting at %d steps as samplers[%d] (%s): it runs once",
                        k, s.display_name(), new, j, first.display_name())
            continue
        kept[key] = (k, s)
    return [s for _, s in kept.values()]


def resolve_nfe_matching(samplers: Sequence[Sampler], steps: int) -> dict[Sampler, Sampler]:
    """Give every ``match_nfe`` sampler the fewest steps whose NFE reaches its target's NFE; returns each such
    sampler's target."""
    targets_of: dict[Sampler, Sampler] = {}
    for s in samplers:
        target_name = getattr(s, "match_nfe", None)
        if target_name is None:
            continue
        targets = [t for t in samplers if t is not s and target_name in (t.name, t.label)]
        if len(targets) != 1:
            found = "no" if not targets else f"{len(targets)}"
            raise ValueError(f"match_nfe={target_name!r} of {s.name} must name exactly one other sampler of the "
                             f"experiment (by name or label); found {found}")
        goal = targets[0].expected_nfe(targets[0].num_steps(steps))
        n = 1
        while s.expected_nfe(n) < goal:
            n += 1
        s.steps = n
        targets_of[s] = targets[0]
    return targets_of


def check_samplers(samplers: Sequence[Sampler], adapter: Any, steps: int, schedule: Any) -> None:
    """Every sampler valid at its steps and runnable by the adapter, no two samplers the same setting (ValueError,
    one line, otherwise)."""
    seen: dict[str, int] = {}
    for k, s in enumerate(samplers):
        s.validate(s.num_steps(steps))
        adapter.check_sampler(s)
        key = sampler_key(s, steps, schedule)
        if key in seen:
            raise ValueError(f"samplers[{seen[key]}] and samplers[{k}] are the same setting ({s.display_name()}): "
                             "they would produce identical samples")
        seen[key] = k


def check_run(samplers: Sequence[Sampler], adapter: Any, metrics: Sequence[SampleMetric], compile: bool) -> None:
    """``model.compile`` possible with these samplers and this adapter, every metric scoring what the adapter makes
    (ValueError, one line, otherwise)."""
    if compile:
        adapter.check_compile()
        for s in samplers:
            if s.perturbation is not None:  # dynamo does not guard on hooks added after compilation
                raise ValueError(f"model.compile cannot run {s.display_name()}: its perturbed branch hooks the "
                                 "network's attention at each call, which a compiled network would silently skip")
    kind = "video" if adapter.is_video else "image"
    for m in metrics:
        if m.media_kind != kind:
            raise ValueError(f"metric {m.name!r} scores {m.media_kind}s but the {adapter.family} adapter "
                             f"produces {kind}s")
