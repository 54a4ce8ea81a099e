"""CFG++ (Chung et al., arXiv 2406.08070): guidance on the data prediction, re-noising with the unconditional one.

    x_s = alpha_s x0_hat(u + lam (c - u)) + sigma_s eps_hat(u)

lam in [0, 1] plays the role of the guidance scale. With the solver's generic (P, Q, R, S) form this is defined
for DDIM (epsilon, v_prediction), Euler and flow matching alike. 2 NFE per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Denoiser, Network, Sampler, SamplerOutput, StepCallback, guide
from .settings import non_negative, setting
from .solvers import LinearSolver


def _lambda(name: str, value: Any) -> float:
    value = non_negative(name, value)
    if value > 1.0:
        raise ValueError(f"cfgpp {name} (CFG++'s lambda) must be in [0, 1], got {value}")
    return value


@dataclass(kw_only=True, eq=False)
class CFGPlusPlus(Sampler):
    """CFG++; ``gamma1`` is the paper's lambda and must lie in [0, 1]."""

    name = "cfgpp"

    gamma1: float = setting(0.6, check=_lambda, label="λ={:g}", shown="always")

    def expected_nfe(self, num_steps: int) -> int:
        return 2 * num_steps

    def sample(self, denoiser: Denoiser, x, solver: LinearSolver, callback: StepCallback | None = None) -> SamplerOutput:
        net = Network(denoiser, solver)
        for i in range(solver.num_steps):
            u, c = net(x, i)
            x = solver.step_split(x, guide(u, c, self.gamma1), u, i)
            if callback is not None:
                callback(i, {"x": x})
        return SamplerOutput(x, net.nfe)
