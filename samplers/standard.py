"""Standard classifier-free guidance: one batched [uncond, cond] call per step (2 NFE)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Denoiser, Network, Sampler, SamplerOutput, StepCallback, guide
from .settings import setting
from .solvers import LinearSolver


@dataclass(kw_only=True, eq=False)
class Standard(Sampler):
    """x_{i+1} = a_i x_i + b_i (u + gamma1 (c - u)).

    Args:
        match_nfe: name or label of another sampler of the experiment; this sampler then takes the fewest steps
            whose NFE reaches that sampler's NFE (an NFE-matched baseline that follows the experiment's steps).
            Resolved by the pipeline when the experiment is built; exclusive with ``steps``.
    """

    name = "standard"

    # resolved into steps by the pipeline, which are part of the sample id
    match_nfe: str | None = setting(None, identity="never")

    def check_settings(self) -> None:
        if self.match_nfe is not None and self.steps is not None:
            raise ValueError("standard: give either steps or match_nfe, not both")

    def expected_nfe(self, num_steps: int) -> int:
        return 2 * num_steps

    def sample(self, denoiser: Denoiser, x, solver: LinearSolver, callback: StepCallback | None = None) -> SamplerOutput:
        net = Network(denoiser, solver)
        for i in range(solver.num_steps):
            x = solver.step(x, guide(*net(x, i), self.gamma1), i)
            if callback is not None:
                callback(i, {"x": x})
        return SamplerOutput(x, net.nfe)
