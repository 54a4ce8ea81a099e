"""zeta (Z^2-Sampling): implicit zigzag with the Temporal Semantic Surrogate, at the cost of plain CFG.

Per step i, with C the raw guidance difference c - u of the previous step's single network call:

    x^      = x_i + (b_i / a_i)(g1 - g2) C        if step i is in the zigzag window and C exists, else x_i
    u, c    = network(x^, t_i)                     one batched call: 2 NFE
    x_{i+1} = a_i x^ + b_i (u + g1 (c - u))
    C      <- c - u                                refreshed after every call, warm-up included

Warm-up steps (the paper's tau) run plain CFG and fill the cache. The window is [start, end): by default
[warmup_steps, T - 1), so the last step stays plain. The sampler holds one latent-sized buffer besides the state.

Beyond the paper:
  - ``adaptive_warmup``: each sample enters the window once the cosine similarity of consecutive guidance
    differences reaches ``adaptive_threshold`` (never before ``warmup_steps``, at the latest at ``max_warmup_steps``).
    The decision is per sample, so an image never depends on the other samples in its batch.
  - ``rescale_surrogate``: use the epsilon-equivalent of the cached difference (scale by S_{i-1} / S_i, the solver's
    d eps / d m); a no-op for epsilon models, matters for v-prediction and flow models at few steps.
  - ``probe``: also evaluate the network at the anchor x_i on window steps (2 extra NFE, debug only) and record
    ||C - Delta(x_i)|| / ||Delta(x_i)||, the error of the surrogate against the implicit zigzag it replaces.

Diagnostics (per sample and step, NaN where undefined): ``cache_cos`` = cos(Delta_i, Delta_{i-1});
``surrogate_rel_err`` = ||C - Delta(x^_i)|| / ||Delta(x^_i)|| (free); ``probe_rel_err`` (probe only); ``zigzag``
= 1 where the shift was applied.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import (Denoiser, Network, SamplerOutput, StepCallback, ZigzagGuidance, check_int, guide,
                   per_sample_cosine, per_sample_relative_error, scale_count, zigzag_shift)
from .solvers import LinearSolver


class Zeta(ZigzagGuidance):
    """zeta-sampling (2 NFE per step).

    Args:
        gamma1: denoising guidance scale.
        gamma2: inversion guidance scale of the collapsed zag (0 in the paper).
        warmup_steps: plain-CFG steps that fill the cache (>= 1; the paper's tau).
        window_start, window_end: zigzag on steps window_start <= i < window_end (defaults: warmup_steps, T - 1).
        surrogate_scale: multiplies the cached difference (1 = the paper; 0 turns zeta into standard CFG).
        rescale_surrogate: epsilon-equivalent rescaling of the cache across timesteps (default off).
        adaptive_warmup, adaptive_threshold, max_warmup_steps: see the module docstring.
        probe: record the surrogate's error at the anchor (costs 2 NFE per window step).
    """

    name = "zeta"

    def __init__(self, gamma1: float = 5.5, gamma2: float = 0.0, warmup_steps: int = 3,
                 window_start: int | None = None, window_end: int | None = None, surrogate_scale: float = 1.0,
                 rescale_surrogate: bool = False, adaptive_warmup: bool = False, adaptive_threshold: float = 0.9,
                 max_warmup_steps: int | None = None, probe: bool = False,
                 steps: int | None = None, label: str | None = None):
        super().__init__(gamma1=gamma1, gamma2=gamma2, steps=steps, label=label)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, 1)
        self.window_start = None if window_start is None else check_int("window_start", window_start, 0)
        self.window_end = None if window_end is None else check_int("window_end", window_end, 0)
        if not isinstance(surrogate_scale, (int, float)) or surrogate_scale != surrogate_scale:
            raise ValueError(f"surrogate_scale must be a finite number, got {surrogate_scale!r}")
        self.surrogate_scale = float(surrogate_scale)
        self.rescale_surrogate = bool(rescale_surrogate)
        self.adaptive_warmup = bool(adaptive_warmup)
        if not isinstance(adaptive_threshold, (int, float)) or not -1.0 <= adaptive_threshold <= 1.0:
            raise ValueError(f"adaptive_threshold must be a cosine in [-1, 1], got {adaptive_threshold!r}")
        self.adaptive_threshold = float(adaptive_threshold)
        self.max_warmup_steps = None if max_warmup_steps is None else check_int("max_warmup_steps", max_warmup_steps, 1)
        if self.max_warmup_steps is not None and not self.adaptive_warmup:
            raise ValueError("max_warmup_steps only applies with adaptive_warmup=true")
        if self.max_warmup_steps is not None and self.max_warmup_steps < self.warmup_steps:
            raise ValueError(f"max_warmup_steps ({self.max_warmup_steps}) must be >= warmup_steps ({self.warmup_steps})")
        self.probe = bool(probe)

    @property
    def gamma_eff(self) -> float:
        """The shift is (b/a)(g1 - g2) s C: to first order CFG at g1 + s (g1 - g2) (2 g1 - g2 for the paper's s = 1)."""
        return self.gamma1 + self.surrogate_scale * (self.gamma1 - self._gamma2)

    def window(self, num_steps: int) -> tuple[int, int]:
        start = self.warmup_steps if self.window_start is None else self.window_start
        end = num_steps - 1 if self.window_end is None else self.window_end
        return start, end

    def validate(self, num_steps: int) -> None:
        super().validate(num_steps)
        start, end = self.window(num_steps)
        explicit = self.window_start is not None or self.window_end is not None
        if explicit and self.warmup_steps >= num_steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) >= steps ({num_steps}) leaves no room for the "
                             "requested window")
        if explicit and not (0 <= start < end <= num_steps):
            raise ValueError(f"zeta window [window_start, window_end) = [{start}, {end}) must satisfy "
                             f"0 <= start < end <= {num_steps} (steps)")
        if self.window_start is not None and self.window_start < self.warmup_steps:
            raise ValueError(f"window_start ({self.window_start}) must be >= warmup_steps ({self.warmup_steps}): "
                             "the cache is empty before the warm-up ends")
        if self.adaptive_warmup and self.max_warmup_steps is not None and self.max_warmup_steps >= num_steps:
            raise ValueError(f"max_warmup_steps must be < steps ({num_steps}), got {self.max_warmup_steps}")
        # adaptive: samples enter the window at warmup_steps at the earliest
        first = self.warmup_steps if self.adaptive_warmup else start
        if first >= end:
            defaults = "" if explicit else f" (warmup_steps {self.warmup_steps} to steps - 1)"
            raise self.no_zigzag_error(f"the window [{first}, {end}){defaults} at {num_steps} steps")

    def _scale_step_settings(self, before: int, after: int) -> None:
        factor = after / before
        self.warmup_steps = scale_count(self.warmup_steps, factor, 1, max(1, after - 2))
        if self.window_start is not None:
            last = after - 1 if self.window_end is not None else after - 2  # the default end is after - 1
            self.window_start = scale_count(self.window_start, factor, self.warmup_steps, last)
        if self.window_end is not None:
            start = self.window_start if self.window_start is not None else self.warmup_steps
            self.window_end = scale_count(self.window_end, factor, start + 1, after)
        if self.max_warmup_steps is not None:
            self.max_warmup_steps = scale_count(self.max_warmup_steps, factor, self.warmup_steps, after - 1)

    def expected_nfe(self, num_steps: int) -> int:
        if not self.probe:
            return 2 * num_steps
        start, end = self.window(num_steps)
        probe_from = max(self.warmup_steps if self.adaptive_warmup else start, 1)
        return 2 * num_steps + 2 * max(0, min(end, num_steps) - probe_from)

    def describe_params(self) -> list[str]:
        out = [f"γ2={self._gamma2:g}"] if self._gamma2 else []
        out.append(f"τ={self.warmup_steps}" + ("+adaptive" if self.adaptive_warmup else ""))
        if self.window_start is not None or self.window_end is not None:
            out.append(f"window=[{self.window_start if self.window_start is not None else self.warmup_steps},"
                       f"{self.window_end if self.window_end is not None else 'T-1'})")
        if self.surrogate_scale != 1.0:
            out.append(f"scale={self.surrogate_scale:g}")
        return out + (["rescaled"] if self.rescale_surrogate else [])

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"gamma1": self.gamma1, "gamma2": self._gamma2, "warmup_steps": self.warmup_steps,
                             "window_start": self.window_start, "window_end": self.window_end}
        if self.surrogate_scale != 1.0:
            p["surrogate_scale"] = self.surrogate_scale
        if self.rescale_surrogate:
            p["rescale_surrogate"] = True
        if self.adaptive_warmup:
            p.update(adaptive_warmup=True, adaptive_threshold=self.adaptive_threshold,
                     max_warmup_steps=self.max_warmup_steps)
        return p  # probe changes no output, so it is not part of the sample identity

    def sample(self, denoiser: Denoiser, x, solver: LinearSolver, callback: StepCallback | None = None) -> SamplerOutput:
        net = Network(denoiser, solver)
        T = solver.num_steps
        start, end = self.window(T)
        gap = (self.gamma1 - self._gamma2) * self.surrogate_scale
        batch = x.shape[0]
        nan = torch.full((batch, T), float("nan"), dtype=torch.float64)
        diag = {"cache_cos": nan.clone(), "surrogate_rel_err": nan.clone(), "zigzag": torch.zeros(batch, T, dtype=torch.float64)}
        if self.probe:
            diag["probe_rel_err"] = nan.clone()
        # per-sample first window step; fixed unless adaptive
        first = torch.full((batch,), start if not self.adaptive_warmup else T, dtype=torch.long)
        if self.adaptive_warmup and self.max_warmup_steps is not None:
            first.fill_(self.max_warmup_steps)

        # probes run on every step that could be in the window, so the NFE never depends on the batch
        probe_from = self.warmup_steps if self.adaptive_warmup else start
        cache: torch.Tensor | None = None  # the surrogate C: the only latent-sized buffer kept across steps
        for i in range(T):
            if cache is not None:
                active = (first <= i) & (i < end)
                surrogate = cache
                if self.rescale_surrogate:
                    surrogate = cache * (solver.epsilon_scale(i - 1) / solver.epsilon_scale(i))
                if self.probe and probe_from <= i < end:
                    u0, c0 = net(x, i)
                    err = per_sample_relative_error(surrogate, c0 - u0)
                    diag["probe_rel_err"][:, i] = torch.where(active, err, diag["probe_rel_err"][:, i])
                    del u0, c0
                if bool(active.any()):
                    shifted = zigzag_shift(solver, x, surrogate, i, gap)
                    # the anchor x_i is not needed past this point: x_{i+1} = a x^ + b m(x^)
                    x = shifted if bool(active.all()) else torch.where(_expand(active, x), shifted, x)
                    del shifted
                    diag["zigzag"][:, i] = active.double()
                del surrogate
            u, c = net(x, i)
            x = solver.step(x, guide(u, c, self.gamma1), i)
            delta = c - u
            del u, c
            if cache is not None:
                cos = per_sample_cosine(delta, cache)
                diag["cache_cos"][:, i] = cos
                diag["surrogate_rel_err"][:, i] = per_sample_relative_error(cache, delta)
                if self.adaptive_warmup:
                    ready = (cos >= self.adaptive_threshold) & (first > i + 1) & (i + 1 >= self.warmup_steps)
                    first = torch.where(ready, torch.full_like(first, i + 1), first)
            cache = delta
            del delta
            if callback is not None:
                callback(i, {"x": x, "cache": cache})
        return SamplerOutput(x, net.nfe, diag, zigzag_steps=diag["zigzag"].sum(1).round().long())


def _expand(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, *([1] * (like.dim() - 1))).to(like.device)
