"""The labels of fair baselines, generated from the settings of the experiment (never hand-written, so they cannot go
stale when a guidance scale or a step count changes).

A sampler without a ``label`` of its own is named by its settings (``standard γ=11``), and a CFG baseline also by
what makes it fair:

- ``match_nfe``: ``standard γ=5.5 · 124 steps (NFE-matched to zigzag γ=5.5)``;
- plain CFG at the effective guidance of a zigzag sampler of the experiment (γ = γ_eff = 2γ1 − γ2):
  ``standard γ=11 (= γ_eff of zigzag γ=5.5)`` (the first such sampler in the config's order);
- plain CFG at γ = 1: ``standard γ=1 (no guidance)``.
"""

from __future__ import annotations

from typing import Sequence

from samplers import Sampler
from samplers.base import ZigzagGuidance


def experiment_label(sampler: Sampler, samplers: Sequence[Sampler], nfe_target: Sampler | None = None) -> str:
    """The label of ``sampler`` in an experiment of ``samplers``; ``nfe_target``: the sampler its ``match_nfe``
    names (resolved by the experiment)."""
    if sampler.label:
        return sampler.label
    own = sampler.display_name()
    if nfe_target is not None:
        return f"{own} (NFE-matched to {nfe_target.display_name()})"
    if sampler.name != "standard" or sampler.perturbation is not None:
        return own
    if sampler.gamma1 == 1.0:
        return f"{own} (no guidance)"
    for other in samplers:
        if (other is not sampler and isinstance(other, ZigzagGuidance) and other.gamma_eff != other.gamma1
                and other.gamma_eff == sampler.gamma1):
            return f"{own} (= γ_eff of {other.display_name()})"
    return own
