"""Smoothed Energy Guidance (Hong, arXiv 2408.00760) combined with CFG.

A third branch evaluates the conditional prediction with Gaussian-blurred self-attention queries (the adapter
installs the attention hook; this sampler only says what the perturbation is):

    m = u + gamma1 (c - u) + seg_scale (c - p)         3 NFE per step
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from .base import Denoiser, Network, Sampler, SamplerOutput, StepCallback, check_gamma
from .solvers import LinearSolver


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

    def __init__(self, gamma1: float = 5.5, seg_scale: float = 3.0, blur_sigma: float = 10.0,
                 layers: Sequence[str] | None = None, steps: int | None = None, label: str | None = None):
        super().__init__(gamma1=gamma1, steps=steps, label=label)
        self.seg_scale = check_gamma("seg_scale", seg_scale)
        if not isinstance(blur_sigma, (int, float)) or math.isnan(blur_sigma) or blur_sigma <= 0:
            raise ValueError(f"blur_sigma must be > 0 (inf allowed), got {blur_sigma!r}")
        self.blur_sigma = float(blur_sigma)
        self.layers = None if layers is None else [str(x) for x in layers]

    @property
    def perturbation(self) -> dict[str, Any]:
        return {"kind": "seg", "blur_sigma": self.blur_sigma, "layers": self.layers}

    def expected_nfe(self, num_steps: int) -> int:
        return 3 * num_steps

    def describe_params(self) -> list[str]:
        return [f"seg={self.seg_scale:g}", f"σ={self.blur_sigma:g}"]

    def params(self) -> dict[str, Any]:
        # plain JSON (part of the sample id): an infinite blur (the mean of the queries) is written "inf"
        sigma = self.blur_sigma if math.isfinite(self.blur_sigma) else "inf"
        return {"gamma1": self.gamma1, "seg_scale": self.seg_scale, "blur_sigma": sigma, "layers": self.layers}

    def sample(self, denoiser: Denoiser, x, solver: LinearSolver, callback: StepCallback | None = None) -> SamplerOutput:
        net = Network(denoiser, solver)
        for i in range(solver.num_steps):
            u, c, p = net(x, i, self.branches)
            m = u + self.gamma1 * (c - u) + self.seg_scale * (c - p)
            x = solver.step(x, m, i)
            if callback is not None:
                callback(i, {"x": x})
        return SamplerOutput(x, net.nfe)
