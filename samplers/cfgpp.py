"""CFG++ (Chung et al., arXiv 2406.08070): guidance on the data prediction, re-noising with the unconditional one.

    x_s = alpha_s x0_hat(u + lam (c - u)) + sigma_s eps_hat(u)

lam in [0, 1] plays the role of the guidance scale. With the solver's generic (P, Q, R, S) form this is defined
for DDIM (epsilon, v_prediction), Euler and flow matching alike. 2 NFE per step.
"""

from __future__ import annotations

from .base import Denoiser, Network, Sampler, SamplerOutput, StepCallback, guide
from .solvers import LinearSolver


class CFGPlusPlus(Sampler):
    """CFG++; ``gamma1`` is the paper's lambda and must lie in [0, 1]."""

    name = "cfgpp"

    def __init__(self, gamma1: float = 0.6, steps: int | None = None, label: str | None = None):
        super().__init__(gamma1=gamma1, steps=steps, label=label)
        if self.gamma1 > 1.0:
            raise ValueError(f"cfgpp gamma1 (CFG++'s lambda) must be in [0, 1], got {self.gamma1}")

    def expected_nfe(self, num_steps: int) -> int:
        return 2 * num_steps

    def display_name(self) -> str:
        if self.label:
            return self.label
        return f"cfgpp λ={self.gamma1:g}" + (f" · {self.steps} steps" if self.steps is not None else "")

    def sample(self, denoiser: Denoiser, x, solver: LinearSolver, callback: StepCallback | None = None) -> SamplerOutput:
        net = Network(denoiser, solver)
        for i in range(solver.num_steps):
            u, c = net(x, i)
            x = solver.step_split(x, guide(u, c, self.gamma1), u, i)
            if callback is not None:
                callback(i, {"x": x})
        return SamplerOutput(x, net.nfe)
