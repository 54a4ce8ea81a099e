"""Z-Sampling (explicit zigzag) and its exact-noise-reuse form (implicit zigzag).

Zigzag step i (i < lambda_steps), in the notation of ALGORITHMS.md:

    y        = a_i x_i + b_i m_g1(x_i; t_i)            zig
    x~_i     = (y - b_i m_g2(y; t_zag)) / a_i           zag: exact inverse of the same interval
    x_{i+1}  = a_i x~_i + b_i m_g1(x~_i; t_i)          zig again

Implicit zigzag evaluates the zag's guidance at the anchor x_i instead of y, so that y cancels:

    x~_i     = x_i + (b_i / a_i)(g1 - g2) Delta(x_i)
    x_{i+1}  = a_i x~_i + b_i m_g1(x~_i)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from .base import UC, Denoiser, Network, SamplerOutput, StepCallback, ZigzagGuidance, guide, scale_count, zigzag_shift
from .settings import flag, integer, one_of, optional, setting
from .solvers import LinearSolver


@dataclass(kw_only=True, eq=False)
class _ZigzagFamily(ZigzagGuidance):
    """Shared parameters: inversion guidance g2 and the number of zigzag steps lambda (counted from step 0)."""

    lambda_steps: int | None = setting(None, check=optional(integer(0)), label="λ={}")

    def zigzag_steps(self, num_steps: int) -> int:
        """lambda: zigzag on steps i < lambda; default T - 1 (every step but the last)."""
        return num_steps - 1 if self.lambda_steps is None else self.lambda_steps

    def validate(self, num_steps: int) -> None:
        super().validate(num_steps)
        if self.lambda_steps is not None and self.lambda_steps >= num_steps:
            raise ValueError(f"lambda_steps must be in [0, {num_steps - 1}] for {num_steps} steps "
                             f"(the last step cannot zigzag), got {self.lambda_steps}")
        if self.zigzag_steps(num_steps) == 0:
            what = ("lambda_steps 0" if self.lambda_steps is not None
                    else f"{num_steps} step (the last step cannot zigzag)")
            raise self.no_zigzag_error(what)

    def _scale_step_settings(self, before: int, after: int) -> None:
        if self.lambda_steps is not None:
            self.lambda_steps = scale_count(self.lambda_steps, after / before, min(self.lambda_steps, 1), after - 1)


@dataclass(kw_only=True, eq=False)
class Zigzag(_ZigzagFamily):
    """Explicit Z-Sampling (Bai et al., ICLR 2025).

    Args:
        gamma2: inversion (zag) guidance; 0 = unconditional zag, for which only the uncond branch is evaluated
            (1 NFE; likewise only the cond branch for gamma2 = 1).
        lambda_steps: zigzag on steps i < lambda_steps (default: all but the last).
        rounds: (zag, zig) repetitions per zigzag step (the official code's T_max).
        zag_timestep: timestep label of the zag's network call: ``"current"`` (t_i, the official SDXL code) or
            ``"next"`` (t_{i+1}, the lab's flow-matching code).
        zag_evaluation: ``"network"`` evaluates the zag at y; ``"anchor"`` reuses the zig's outputs at x_i (no
            network call), which is algebraically the implicit zigzag (Theorem 1 of the zeta paper).
        official_compat: reproduce the public Z-Sampling code: both branches batched in the zag even when
            gamma2 = 0, and its DDIMInverseScheduler call, which inverts the next interval (DDIM only).
    """

    name = "zigzag"

    rounds: int = setting(1, check=integer(1), label="rounds={}")
    zag_timestep: Literal["current", "next"] = setting("current", check=one_of("current", "next"), label="zag@t_{}")
    zag_evaluation: Literal["network", "anchor"] = setting("network", check=one_of("network", "anchor"),
                                                           label="zag@{}")
    official_compat: bool = setting(False, check=flag, label="official")

    def check_settings(self) -> None:
        if self.official_compat and (self.zag_evaluation != "network" or self.zag_timestep != "current"):
            raise ValueError("official_compat reproduces the public code: it needs zag_evaluation='network' and "
                             "zag_timestep='current'")

    def zag_branches(self) -> tuple[str, ...]:
        if self.zag_evaluation == "anchor":
            return ()
        if self.official_compat or self.gamma2 not in (0.0, 1.0):
            return UC
        return ("uncond",) if self.gamma2 == 0.0 else ("cond",)

    def expected_nfe(self, num_steps: int) -> int:
        per_zigzag = (len(self.zag_branches()) + 2) * self.rounds
        return 2 * num_steps + per_zigzag * self.zigzag_steps(num_steps)

    def check_solver(self, solver: LinearSolver) -> None:
        if self.official_compat and solver.ddim_table is None:
            raise ValueError("zigzag official_compat reproduces a DDIMInverseScheduler call and needs a DDIM "
                             f"scheduler; this model's solver is {solver.kind}")

    def _zag(self, net: Network, solver: LinearSolver, y, i: int, anchor: tuple) -> Any:
        """x~_i from y = x_{i+1}: the inverse of interval i with the gamma2 prediction."""
        branches = self.zag_branches()
        if not branches:  # reuse the anchor's predictions
            m2 = guide(anchor[0], anchor[1], self.gamma2)
        else:
            j = i if self.zag_timestep == "current" else i + 1
            out = net(y, j, branches)
            m2 = out[0] if len(out) == 1 else guide(out[0], out[1], self.gamma2)
        if self.official_compat:
            return solver.official_inverse(y, m2, i)
        return solver.invert(y, m2, i)

    def sample(self, denoiser: Denoiser, x, solver: LinearSolver, callback: StepCallback | None = None) -> SamplerOutput:
        net = Network(denoiser, solver)
        lam = self.zigzag_steps(solver.num_steps)
        for i in range(solver.num_steps):
            u, c = net(x, i)
            y = solver.step(x, guide(u, c, self.gamma1), i)
            if i < lam:
                for _ in range(self.rounds):
                    x_tilde = self._zag(net, solver, y, i, (u, c))
                    u, c = net(x_tilde, i)
                    y = solver.step(x_tilde, guide(u, c, self.gamma1), i)
            x = y
            if callback is not None:
                callback(i, {"x": x})
        return SamplerOutput(x, net.nfe, zigzag_steps=_per_sample(x, min(lam, solver.num_steps)))


@dataclass(kw_only=True, eq=False)
class ImplicitZigzag(_ZigzagFamily):
    """Implicit Z-Sampling: the zag reuses the anchor's guidance difference; 4 NFE per zigzag step."""

    name = "implicit_zigzag"

    def expected_nfe(self, num_steps: int) -> int:
        return 2 * num_steps + 2 * self.zigzag_steps(num_steps)

    def sample(self, denoiser: Denoiser, x, solver: LinearSolver, callback: StepCallback | None = None) -> SamplerOutput:
        net = Network(denoiser, solver)
        lam = self.zigzag_steps(solver.num_steps)
        gap = self.gamma1 - self.gamma2
        for i in range(solver.num_steps):
            u, c = net(x, i)
            if i < lam:
                x = zigzag_shift(solver, x, c - u, i, gap)
                u, c = net(x, i)
            x = solver.step(x, guide(u, c, self.gamma1), i)
            if callback is not None:
                callback(i, {"x": x})
        return SamplerOutput(x, net.nfe, zigzag_steps=_per_sample(x, min(lam, solver.num_steps)))


def _per_sample(x: torch.Tensor, count: int) -> torch.Tensor:
    return torch.full((x.shape[0],), count, dtype=torch.long)
