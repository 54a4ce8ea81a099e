"""Standard classifier-free guidance: one batched [uncond, cond] call per step (2 NFE)."""

from __future__ import annotations

from .base import Denoiser, Network, Sampler, SamplerOutput, StepCallback, guide
from .solvers import LinearSolver


class Standard(Sampler):
    """x_{i+1} = a_i x_i + b_i (u + gamma1 (c - u))."""

    name = "standard"

    def expected_nfe(self, num_steps: int) -> int:
        return 2 * num_steps

    def sample(self, denoiser: Denoiser, x, solver: LinearSolver, callback: StepCallback | None = None) -> SamplerOutput:
        net = Network(denoiser, solver)
        for i in range(solver.num_steps):
            x = solver.step(x, guide(*net(x, i), self.gamma1), i)
            if callback is not None:
                callback(i, {"x": x})
        return SamplerOutput(x, net.nfe)
