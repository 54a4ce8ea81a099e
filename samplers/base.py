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

from .registry import Registry
from .settings import check_int, identity_params, integer, label_parts, non_negative, normalise, optional, setting
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
    ``guidance``: the measured guidance strength (:class:`samplers.guidance.MeasuredGuidance`) when the run was
    measured (:func:`samplers.guidance.sample_measured`), else None.
    """

    latents: torch.Tensor
    nfe: int
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)
    zigzag_steps: torch.Tensor | None = None
    guidance: Any = None


StepCallback = Callable[[int, dict[str, Any]], None]


class Network:
    """Evaluates the denoiser for solver step ``i`` (input scaling and timestep label of that step) and counts NFE.

    On a measured run (:mod:`samplers.guidance`) it also shows each evaluation to the solver's guidance meter;
    ``probe=True`` marks an evaluation made only to measure (it is labelled ``"probe"`` there).
    """

    def __init__(self, denoiser: Denoiser, solver: LinearSolver):
        self.denoiser = denoiser
        self.solver = solver
        self.nfe = 0
        self.meter = getattr(solver, "guidance_meter", None)

    def __call__(self, x: torch.Tensor, i: int, branches: Sequence[str] = UC,
                 probe: bool = False) -> tuple[torch.Tensor, ...]:
        out = self.denoiser(x * self.solver.c_in[i], self.solver.timesteps[i], tuple(branches))
        if len(out) != len(branches):
            raise RuntimeError(f"denoiser returned {len(out)} outputs for branches {tuple(branches)}")
        self.nfe += len(branches)
        outputs = tuple(o.to(x.dtype) for o in out)
        if self.meter is not None:
            self.meter.evaluated(x, i, branches, outputs, probe)
        return outputs


#: the CFG twins a sampler can ask for (``twins``): plain CFG from the same noise with the measured per-step scale
#: schedule, with its constant mean, and with the mean at the step count whose NFE matches
TWIN_KINDS = ("schedule", "constant", "nfe_matched")


def twin_kinds(name: str, value: Any) -> list[str] | None:
    """``twins``: true (every kind), false / null (none) or a list of :data:`TWIN_KINDS`."""
    if value is None or value is False:
        return None
    if value is True:
        return list(TWIN_KINDS)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or any(v not in TWIN_KINDS for v in value):
        raise ValueError(f"{name} must be true, false or a list of {', '.join(TWIN_KINDS)}; got {value!r}")
    return [k for k in TWIN_KINDS if k in value]


def guide(u: torch.Tensor, c: torch.Tensor, gamma: float | torch.Tensor) -> torch.Tensor:
    """Classifier-free guidance in the diffusers convention: u + gamma (c - u); gamma = 1 is no guidance (a tensor
    gamma broadcasts: one scale per sample)."""
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


def scale_count(value: int, factor: float, lo: int, hi: int) -> int:
    """A step count scaled by ``factor``, rounded half up and clamped to [lo, hi] (lo wins if hi < lo)."""
    return max(lo, min(hi, math.floor(value * factor + 0.5)))


@dataclass(kw_only=True, eq=False)
class Sampler(ABC):
    """Base class of every sampler: a dataclass of settings (see :mod:`samplers.settings`). Subclasses set ``name``
    and implement :meth:`sample` and :meth:`expected_nfe`; :meth:`check_settings` checks settings together.

    Args:
        gamma1: denoising guidance scale (diffusers convention: 1 = no guidance).
        steps: number of solver steps; ``None`` takes the experiment's default (set by the pipeline).
        label: a display name for reports (default: derived from the name and settings).
        twins: also run, for each sample, plain CFG from the same initial noise with this sampler's measured guidance
            (``true``, or some of ``schedule``, ``constant``, ``nfe_matched``; see :mod:`zeta_eval.twins`). Not part
            of this sampler's sample ids: the twins are samples of their own.
    """

    name: ClassVar[str] = ""
    #: guidance branches this sampler needs from the denoiser
    branches: ClassVar[tuple[str, ...]] = UC

    gamma1: float = setting(5.5, check=non_negative, label="γ={:g}", shown="always")
    # steps enter the sample id as the steps that run (sampler_identity), the label is for display
    steps: int | None = setting(None, check=optional(integer(1)), identity="never")
    label: str | None = setting(None, identity="never")
    # twins are other samples (zeta_eval.twins), not a change of this sampler's output
    twins: bool | list[str] | None = setting(None, check=lambda name, value: twin_kinds(name, value), identity="never")

    def __post_init__(self) -> None:
        _check_declared_as_dataclass(type(self))
        normalise(self)
        self.check_settings()

    def check_settings(self) -> None:
        """Raise ValueError for settings that are wrong together (each field checks itself)."""

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
        """The settings that define the sampler's output (plain JSON; part of the sample id), from the fields."""
        return identity_params(self)

    def display_name(self) -> str:
        """A short label for tables and figures, e.g. ``zeta γ=5.5 τ=3`` or ``standard γ=5.5 · 124 steps``."""
        if self.label:
            return self.label
        text = " ".join([self.name, *label_parts(self)])
        return text + (f" · {self.steps} steps" if self.steps is not None else "")

    # -- the loop
    @abstractmethod
    def sample(self, denoiser: Denoiser, x: torch.Tensor, solver: LinearSolver,
               callback: StepCallback | None = None) -> SamplerOutput:
        """Run the sampler from the initial latent ``x`` (already scaled by ``solver.init_noise_sigma``)."""


@dataclass(kw_only=True, eq=False)
class ZigzagGuidance(Sampler):
    """The zigzag family's guidance: denoising guidance gamma1 and inversion (zag) guidance gamma2.

    To first order a zigzag step acts like CFG at gamma_eff = 2 gamma1 - gamma2 (ALGORITHMS.md section 5).
    """

    gamma2: float = setting(0.0, check=non_negative, label="γ2={:g}")

    @property
    def gamma_eff(self) -> float:
        return 2 * self.gamma1 - self.gamma2

    def no_zigzag_error(self, what: str) -> ValueError:
        """The refusal of a setting that zigzags on no step: its output is plain CFG at gamma1, so its rows would
        carry a gamma_eff (and a label) that does not describe what ran."""
        return ValueError(f"{self.name}: {what} leaves no zigzag step, so it would run standard CFG at "
                          f"γ1 = {self.gamma1:g} under the label γ_eff = {self.gamma_eff:g}; use the standard sampler "
                          "for that, or change the setting")


def _check_declared_as_dataclass(cls: type) -> None:
    """A subclass that declares settings without ``@dataclass`` would leave them out of ``params()`` (the sample id)."""
    for klass in cls.__mro__:
        declared = [n for n, a in vars(klass).get("__annotations__", {}).items() if "ClassVar" not in str(a)]
        if declared and "__dataclass_fields__" not in vars(klass):
            raise TypeError(f"{klass.__qualname__} declares the settings {', '.join(declared)} but is not decorated "
                            "with @dataclass(kw_only=True, eq=False): they would not be part of its sample ids")


#: every sampler by name; plugins add theirs through the ``zeta_eval.samplers`` entry-point group
SAMPLERS: Registry[type[Sampler]] = Registry("sampler", Sampler, {
    "standard": "samplers.standard:Standard",
    "zigzag": "samplers.zigzag:Zigzag",
    "implicit_zigzag": "samplers.zigzag:ImplicitZigzag",
    "zeta": "samplers.zeta:Zeta",
    "cfgpp": "samplers.cfgpp:CFGPlusPlus",
    "seg": "samplers.seg:SEG",
}, group="zeta_eval.samplers")


def build_sampler(name: str, **params: Any) -> Sampler:
    """Instantiate a registered sampler by name."""
    return SAMPLERS[name](**params)
