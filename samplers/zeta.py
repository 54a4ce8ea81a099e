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

from dataclasses import dataclass
from typing import Any

import torch

from .base import (Denoiser, Network, SamplerOutput, StepCallback, ZigzagGuidance, guide, per_sample_cosine,
                   per_sample_relative_error, scale_count, zigzag_shift)
from .settings import flag, integer, optional, setting
from .solvers import LinearSolver


def _finite(name: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or value != value:
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _cosine(name: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or not -1.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a cosine in [-1, 1], got {value!r}")
    return float(value)


def _warmup_label(zeta: "Zeta") -> str:
    return f"τ={zeta.warmup_steps}" + ("+adaptive" if zeta.adaptive_warmup else "")


def _window_label(zeta: "Zeta") -> str | None:
    if zeta.window_start is None and zeta.window_end is None:
        return None
    start = zeta.window_start if zeta.window_start is not None else zeta.warmup_steps
    return f"window=[{start},{zeta.window_end if zeta.window_end is not None else 'T-1'})"


@dataclass(kw_only=True, eq=False)
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

    warmup_steps: int = setting(3, check=integer(1), label=_warmup_label)
    window_start: int | None = setting(None, check=optional(integer(0)), label=_window_label)
    window_end: int | None = setting(None, check=optional(integer(0)))
    # the options below came after the first results: left out of the sample id at their defaults, so those stay valid
    surrogate_scale: float = setting(1.0, check=_finite, identity="if_changed", label="scale={:g}")
    rescale_surrogate: bool = setting(False, check=flag, identity="if_changed", label="rescaled")
    adaptive_warmup: bool = setting(False, check=flag, identity="if_changed")
    adaptive_threshold: float = setting(0.9, check=_cosine, requires="adaptive_warmup")
    max_warmup_steps: int | None = setting(None, check=optional(integer(1)), requires="adaptive_warmup")
    # the probe changes no output, so it is not part of the sample id
    probe: bool = setting(False, check=flag, identity="never")

    def check_settings(self) -> None:
        if self.max_warmup_steps is not None and not self.adaptive_warmup:
            raise ValueError("max_warmup_steps only applies with adaptive_warmup=true")
        if self.max_warmup_steps is not None and self.max_warmup_steps < self.warmup_steps:
            raise ValueError(f"max_warmup_steps ({self.max_warmup_steps}) must be >= warmup_steps "
                             f"({self.warmup_steps})")

    @property
    def gamma_eff(self) -> float:
        """The shift is (b/a)(g1 - g2) s C: to first order CFG at g1 + s (g1 - g2) (2 g1 - g2 for the paper's s = 1)."""
        return self.gamma1 + self.surrogate_scale * (self.gamma1 - self.gamma2)

    def window(self, num_steps: int) -> tuple[int, int]:
        start = self.warmup_steps if self.window_start is None else self.window_start
        end = num_steps - 1 if self.window_end is None else self.window_end
        return start, end

    def earliest_window_step(self, num_steps: int) -> int:
        """The first step any sample can zigzag on: the window's start, or the warm-up's end if adaptive."""
        return self.warmup_steps if self.adaptive_warmup else self.window(num_steps)[0]

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
        first = self.earliest_window_step(num_steps)
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
        end = self.window(num_steps)[1]
        probe_from = max(self.earliest_window_step(num_steps), 1)
        return 2 * num_steps + 2 * max(0, min(end, num_steps) - probe_from)

    # -- the loop
    def sample(self, denoiser: Denoiser, x, solver: LinearSolver, callback: StepCallback | None = None) -> SamplerOutput:
        """Per step: shift by the cached guidance difference where a sample is in the window, one CFG step, and
        that step's difference c - u becomes the cache (the module docstring's four lines)."""
        net = Network(denoiser, solver)
        T = solver.num_steps
        end = self.window(T)[1]
        diag = self._diagnostics(x.shape[0], T)
        first = self._first_window_steps(x.shape[0], T)
        cache: torch.Tensor | None = None  # the surrogate C: the only latent-sized buffer kept across steps
        for i in range(T):
            if cache is not None:
                in_window = (first <= i) & (i < end)
                x = self._collapsed_zag(net, solver, x, self._surrogate(cache, solver, i), i, in_window, end, diag)
            u, c = net(x, i)
            x = solver.step(x, guide(u, c, self.gamma1), i)
            delta = c - u
            del u, c
            if cache is not None:
                cos = self._record_cache_quality(delta, cache, i, diag)
                if self.adaptive_warmup:
                    first = self._enter_window(first, cos, i)
            cache = delta
            del delta
            if callback is not None:
                callback(i, {"x": x, "cache": cache})
        return SamplerOutput(x, net.nfe, diag, zigzag_steps=diag["zigzag"].sum(1).round().long())

    def _diagnostics(self, batch: int, T: int) -> dict[str, torch.Tensor]:
        nan = torch.full((batch, T), float("nan"), dtype=torch.float64)
        diag = {"cache_cos": nan.clone(), "surrogate_rel_err": nan.clone(),
                "zigzag": torch.zeros(batch, T, dtype=torch.float64)}
        if self.probe:
            diag["probe_rel_err"] = nan.clone()
        return diag

    def _first_window_steps(self, batch: int, T: int) -> torch.Tensor:
        """Each sample's first window step: the window's start, or, with the adaptive warm-up, the latest warm-up
        end (T: never, until :meth:`_enter_window` moves it)."""
        if not self.adaptive_warmup:
            return torch.full((batch,), self.window(T)[0], dtype=torch.long)
        return torch.full((batch,), T if self.max_warmup_steps is None else self.max_warmup_steps, dtype=torch.long)

    def _surrogate(self, cache: torch.Tensor, solver: LinearSolver, i: int) -> torch.Tensor:
        """The cached difference of step i - 1 as used at step i: as is (the paper), or rescaled to its epsilon
        equivalent at t_i (``rescale_surrogate``)."""
        if not self.rescale_surrogate:
            return cache
        return cache * (solver.epsilon_scale(i - 1) / solver.epsilon_scale(i))

    def _collapsed_zag(self, net: Network, solver: LinearSolver, x: torch.Tensor, surrogate: torch.Tensor, i: int,
                       in_window: torch.Tensor, end: int, diag: dict[str, torch.Tensor]) -> torch.Tensor:
        """The collapsed zag x^ = x_i + (b_i / a_i)(g1 - g2) s C for the samples in the window (others keep x_i)."""
        # probes run on every step that could be in the window, so the NFE never depends on the batch
        if self.probe and self.earliest_window_step(solver.num_steps) <= i < end:
            self._probe(net, x, surrogate, i, in_window, diag)
        if not bool(in_window.any()):
            return x
        shifted = zigzag_shift(solver, x, surrogate, i, (self.gamma1 - self.gamma2) * self.surrogate_scale)
        diag["zigzag"][:, i] = in_window.double()
        # the anchor x_i is not needed past this point: x_{i+1} = a x^ + b m(x^)
        return shifted if bool(in_window.all()) else torch.where(_expand(in_window, x), shifted, x)

    def _probe(self, net: Network, x: torch.Tensor, surrogate: torch.Tensor, i: int, in_window: torch.Tensor,
               diag: dict[str, torch.Tensor]) -> None:
        """Debug: the surrogate's error against the guidance difference at the anchor x_i, which the implicit
        zigzag would evaluate (2 NFE)."""
        u0, c0 = net(x, i, probe=True)
        err = per_sample_relative_error(surrogate, c0 - u0)
        diag["probe_rel_err"][:, i] = torch.where(in_window, err, diag["probe_rel_err"][:, i])

    def _record_cache_quality(self, delta: torch.Tensor, cache: torch.Tensor, i: int,
                              diag: dict[str, torch.Tensor]) -> torch.Tensor:
        """cos(Delta_i, Delta_{i-1}) and the free surrogate error ||C - Delta_i|| / ||Delta_i||; returns the cosine."""
        cos = per_sample_cosine(delta, cache)
        diag["cache_cos"][:, i] = cos
        diag["surrogate_rel_err"][:, i] = per_sample_relative_error(cache, delta)
        return cos

    def _enter_window(self, first: torch.Tensor, cos: torch.Tensor, i: int) -> torch.Tensor:
        """Adaptive warm-up: a sample enters the window at step i + 1 once consecutive guidance differences agree
        (cosine >= adaptive_threshold), never before warmup_steps and not later than it was due to."""
        ready = (cos >= self.adaptive_threshold) & (first > i + 1) & (i + 1 >= self.warmup_steps)
        return torch.where(ready, torch.full_like(first, i + 1), first)


def _expand(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, *([1] * (like.dim() - 1))).to(like.device)
