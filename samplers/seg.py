"""Smoothed Energy Guidance (Hong, arXiv 2408.00760) combined with CFG.

A third branch evaluates the conditional prediction with Gaussian-blurred self-attention queries (the adapter
installs the attention hook; this sampler only says what the perturbation is):

    m = u + gamma1 (c - u) + seg_scale (c - p)         3 NFE per step
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from .base import Denoiser, Network, Sampler, SamplerOutput, StepCallback
from .settings import non_negative, optional, setting
from .solvers import LinearSolver


def _blur_sigma(name: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or math.isnan(value) or value <= 0:
        raise ValueError(f"{name} must be > 0 (inf allowed), got {value!r}")
    return float(value)


def _layer_names(name: str, value: Sequence[Any]) -> list[str]:
    return [str(x) for x in value]


def _plain_json_sigma(sigma: float) -> float | str:
    """Sample ids are plain JSON: an infinite blur (the mean of the queries) is written "inf"."""
    return sigma if math.isfinite(sigma) else "inf"


@dataclass(kw_only=True, eq=False)
class SEG(Sampler):
    """SEG + CFG.

    Args:
        seg_scale: weight of the (c - perturbed) term (the SEG paper's default 3.0).
        blur_sigma: std of the Gaussian blur applied to the attention queries, in query-grid units; ``inf`` replaces
            each query by its mean (the paper's limit case).
        layers: which self-attention layers to perturb; None uses the adapter's default (the UNet mid block).
    """

    name = "seg"
    branches = ("uncond", "cond", "perturbed")

    seg_scale: float = setting(3.0, check=non_negative, label="seg={:g}", shown="always")
    blur_sigma: float = setting(10.0, check=_blur_sigma, encode=_plain_json_sigma, label="σ={:g}", shown="always")
    layers: Sequence[str] | None = setting(None, check=optional(_layer_names))

    @property
    def perturbation(self) -> dict[str, Any]:
        return {"kind": "seg", "blur_sigma": self.blur_sigma, "layers": self.layers}

    def expected_nfe(self, num_steps: int) -> int:
        return 3 * num_steps

    def sample(self, denoiser: Denoiser, x, solver: LinearSolver, callback: StepCallback | None = None) -> SamplerOutput:
        net = Network(denoiser, solver)
        for i in range(solver.num_steps):
            u, c, p = net(x, i, self.branches)
            m = u + self.gamma1 * (c - u) + self.seg_scale * (c - p)
            x = solver.step(x, m, i)
            if callback is not None:
                callback(i, {"x": x})
        return SamplerOutput(x, net.nfe)
