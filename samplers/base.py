"""The sampler contract: a denoiser (the network with its conditioning), a solver, and a sampling loop.

A :class:`Denoiser` is what a model adapter hands to a sampler: one batched network evaluation of the requested
guidance branches at a model input and a timestep label. Samplers never see prompts, models or schedulers.

Branches:
  - ``"uncond"``: the unconditional (negative-prompt) prediction u(x)
  - ``"cond"``: the conditional prediction c(x)
  - ``"perturbed"``: the conditional prediction under an attention perturbation (SEG); what the perturbation is comes
    from :attr:`Sampler.perturbation`, which the adapter reads when it builds the denoiser.

NFE are counted per sample: evaluating k branches for a batch costs every sample k network evaluations.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol, Sequence

import torch

from .solvers import LinearSolver

BRANCHES = ("uncond", "cond", "perturbed")
UC: tuple[str, str] = ("uncond", "cond")


class Denoiser(Protocol):
    """``denoiser(x_in, t, branches) -> tuple of outputs``, one per branch, each shaped like ``x_in``."""

    def __call__(self, x: torch.Tensor, t: float, branches: Sequence[str]) -> tuple[torch.Tensor, ...]: ...


@dataclass
class SamplerOutput:
    """The final latent and what it cost.

    ``diagnostics`` maps a name to a (batch, steps) float tensor (NaN where a value is undefined for a step).
    ``zigzag_steps``: for the zigzag family, the number of steps each sample actually zigzagged (a (batch,) integer
    tensor; it can differ per sample with an adaptive warm-up); None for samplers that never zigzag.
    """

    latents: torch.Tensor
    nfe: int
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)
    zigzag_steps: torch.Tensor | None = None


StepCallback = Callable[[int, dict[str, Any]], None]


class Network:
    """Evaluates the denoiser for solver step ``i`` (input scaling and timestep label of that step) and counts NFE."""

    def __init__(self, denoiser: Denoiser, solver: LinearSolver):
        self.denoiser = denoiser
        self.solver = solver
        self.nfe = 0

    def __call__(self, x: torch.Tensor, i: int, branches: Sequence[str] = UC) -> tuple[torch.Tensor, ...]:
        out = self.denoiser(x * self.solver.c_in[i], self.solver.timesteps[i], tuple(branches))
        if len(out) != len(branches):
            raise RuntimeError(f"denoiser returned {len(out)} outputs for branches {tuple(branches)}")
        self.nfe += len(branches)
        return tuple(o.to(x.dtype) for o in out)


def guide(u: torch.Tensor, c: torch.Tensor, gamma: float) -> torch.Tensor:
    """Classifier-free guidance in the diffusers convention: u + gamma (c - u); gamma = 1 is no guidance."""
    return u + gamma * (c - u)


def zigzag_shift(solver: LinearSolver, x: torch.Tensor, delta: torch.Tensor, i: int, gap: float) -> torch.Tensor:
    """The collapsed zag of step i: x + (b_i / a_i)(g1 - g2) Delta (ALGORITHMS.md, implicit_zigzag)."""
    return x + (solver.shift_coefficient(i) * gap) * delta


def per_sample_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of two batched tensors, one value per sample (float64)."""
    a2, b2 = a.flatten(1).double(), b.flatten(1).double()
    denom = a2.norm(dim=1) * b2.norm(dim=1)
    return torch.where(denom > 0, (a2 * b2).sum(1) / denom.clamp_min(1e-300), torch.full_like(denom, float("nan")))


def per_sample_relative_error(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """||estimate - truth|| / ||truth||, one value per sample (float64)."""
    e, t = estimate.flatten(1).double(), truth.flatten(1).double()
    n = t.norm(dim=1)
    return torch.where(n > 0, (e - t).norm(dim=1) / n.clamp_min(1e-300), torch.full_like(n, float("nan")))


# ---------------------------------------------------------------------------------------------- validation
def check_gamma(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    value = float(value)
    if math.isnan(value) or value < 0 or math.isinf(value):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def scale_count(value: int, factor: float, lo: int, hi: int) -> int:
    """A step count scaled by ``factor``, rounded half up and clamped to [lo, hi] (lo wins if hi < lo)."""
    return max(lo, min(hi, math.floor(value * factor + 0.5)))


def check_int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    """An integer in [lo, hi] (hi inclusive, None = unbounded)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        allowed = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an integer {allowed}, got {value}")
    return value


# ---------------------------------------------------------------------------------------------- registry
SAMPLERS: dict[str, type["Sampler"]] = {}


class Sampler(ABC):
    """Base class of every sampler. Subclasses set ``name`` and implement :meth:`sample` and :meth:`expected_nfe`.

    Args:
        gamma1: denoising guidance scale (diffusers convention: 1 = no guidance).
        steps: number of solver steps; ``None`` takes the experiment's default (set by the pipeline).
        label: a display name for reports (default: derived from the name and parameters).
    """

    name: ClassVar[str] = ""
    #: guidance branches this sampler needs from the denoiser
    branches: ClassVar[tuple[str, ...]] = UC

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            if cls.name in SAMPLERS and SAMPLERS[cls.name] is not cls:
                raise ValueError(f"sampler name {cls.name!r} registered twice")
            SAMPLERS[cls.name] = cls

    def __init__(self, gamma1: float = 5.5, steps: int | None = None, label: str | None = None):
        self.gamma1 = check_gamma("gamma1", gamma1)
        self.steps = None if steps is None else check_int("steps", steps, 1)
        self.label = label

    # -- what the pipeline needs to know before running
    @property
    def gamma_eff(self) -> float:
        """First-order equivalent CFG scale (ALGORITHMS.md section 5)."""
        return self.gamma1

    @property
    def gamma2(self) -> float | None:
        return None

    @property
    def perturbation(self) -> dict[str, Any] | None:
        """Definition of the ``perturbed`` branch, for the adapter (None: not needed)."""
        return None

    def num_steps(self, default: int) -> int:
        return self.steps if self.steps is not None else default

    def validate(self, num_steps: int) -> None:
        """Raise ValueError if this sampler cannot run ``num_steps`` steps. Called when the config is built."""
        check_int("steps", num_steps, 1)

    def check_solver(self, solver: LinearSolver) -> None:
        """Raise ValueError if this sampler cannot run on ``solver`` (called before the first batch)."""

    def scale_steps(self, old: int, new: int) -> None:
        """Rescale every step-counted setting from an experiment of ``old`` steps to one of ``new`` steps (the
        pipeline's ``max_steps``, e.g. a smoke run of a 50-step config at 10 steps): a per-sampler ``steps`` and what
        counts steps inside it (warm-up, window, λ), rounded and kept valid."""
        before = self.num_steps(old)
        if self.steps is not None:
            self.steps = scale_count(self.steps, new / old, 1, self.steps)
        self._scale_step_settings(before, self.num_steps(new))

    def _scale_step_settings(self, before: int, after: int) -> None:
        """Subclasses with step-counted parameters rescale them from ``before`` to ``after`` steps."""

    @abstractmethod
    def expected_nfe(self, num_steps: int) -> int:
        """Network evaluations per sample for ``num_steps`` steps."""

    def params(self) -> dict[str, Any]:
        """The parameters that define the sampler's output (JSON-serialisable; part of the sample id)."""
        return {"gamma1": self.gamma1}

    def display_name(self) -> str:
        """A short label for tables and figures, e.g. ``zeta γ=5.5 τ=3`` or ``standard γ=5.5 · 124 steps``."""
        if self.label:
            return self.label
        text = " ".join([self.name, f"γ={self.gamma1:g}", *self.describe_params()])
        return text + (f" · {self.steps} steps" if self.steps is not None else "")

    def describe_params(self) -> list[str]:
        """The parameters worth showing in a label besides gamma1 (subclasses override)."""
        return []

    # -- the loop
    @abstractmethod
    def sample(self, denoiser: Denoiser, x: torch.Tensor, solver: LinearSolver,
               callback: StepCallback | None = None) -> SamplerOutput:
        """Run the sampler from the initial latent ``x`` (already scaled by ``solver.init_noise_sigma``)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"


class ZigzagGuidance(Sampler):
    """The zigzag family's guidance: denoising guidance gamma1 and inversion (zag) guidance gamma2.

    To first order a zigzag step acts like CFG at gamma_eff = 2 gamma1 - gamma2 (ALGORITHMS.md section 5).
    """

    def __init__(self, gamma1: float = 5.5, gamma2: float = 0.0, steps: int | None = None, label: str | None = None):
        super().__init__(gamma1=gamma1, steps=steps, label=label)
        self._gamma2 = check_gamma("gamma2", gamma2)

    @property
    def gamma2(self) -> float:
        return self._gamma2

    @property
    def gamma_eff(self) -> float:
        return 2 * self.gamma1 - self._gamma2

    def no_zigzag_error(self, what: str) -> ValueError:
        """The refusal of a setting that zigzags on no step: its output is plain CFG at gamma1, so its rows would
        carry a gamma_eff (and a label) that does not describe what ran."""
        return ValueError(f"{self.name}: {what} leaves no zigzag step, so it would run standard CFG at "
                          f"γ1 = {self.gamma1:g} under the label γ_eff = {self.gamma_eff:g}; use the standard sampler "
                          "for that, or change the setting")


def build_sampler(name: str, **params: Any) -> Sampler:
    """Instantiate a registered sampler by name."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; known samplers: {', '.join(sorted(SAMPLERS))}")
    return SAMPLERS[name](**params)
