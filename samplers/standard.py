"""Standard classifier-free guidance: one batched [uncond, cond] call per step (2 NFE)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from .base import Denoiser, Network, Sampler, SamplerOutput, StepCallback, guide
from .settings import non_negative, optional, setting
from .solvers import LinearSolver


def _gammas(name: str, value: Any) -> list[float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"{name} must be a non-empty list of guidance scales (one per step), got {value!r}")
    return [non_negative(f"{name}[{k}]", v) for k, v in enumerate(value)]


#: gamma1's default: a schedule given without gamma1 sets it to the schedule's mean
GAMMA1_DEFAULT = next(f.default for f in dataclasses.fields(Sampler) if f.name == "gamma1")


def schedule_mean(schedule: Sequence[float], gamma1: float | None = None) -> float:
    """The mean of a gamma_schedule, which becomes gamma1; a ``gamma1`` given beside it must be that mean (it would
    be overwritten), else ValueError."""
    mean = sum(schedule) / len(schedule)
    if gamma1 is not None and not math.isclose(gamma1, mean, rel_tol=1e-9, abs_tol=1e-12):
        raise ValueError(f"standard: gamma1 = {gamma1:g} and a gamma_schedule of mean {mean:g} were both given; with "
                         "a schedule, gamma1 is the schedule's mean: give the schedule alone")
    return mean


def _schedule_label(standard: "Standard") -> str | None:
    return None if standard.gamma_schedule is None else f"per-step γ ({len(standard.gamma_schedule)})"


def resample(values: Sequence[float], count: int) -> list[float]:
    """A per-step list resampled to ``count`` steps, linearly over the run's fraction (the ends are kept)."""
    if count == len(values):
        return list(values)
    if len(values) == 1 or count == 1:
        return [values[0]] * count if len(values) == 1 else [sum(values) / len(values)]
    out = []
    for j in range(count):
        pos = j * (len(values) - 1) / (count - 1)
        k = min(int(math.floor(pos)), len(values) - 2)
        out.append(values[k] + (pos - k) * (values[k + 1] - values[k]))
    return out


@dataclass(kw_only=True, eq=False)
class Standard(Sampler):
    """x_{i+1} = a_i x_i + b_i (u + gamma_i (c - u)), gamma_i = gamma1 on every step unless ``gamma_schedule``.

    Args:
        match_nfe: name or label of another sampler of the experiment; this sampler then takes the fewest steps
            whose NFE reaches that sampler's NFE (an NFE-matched baseline that follows the experiment's steps).
            Resolved by the pipeline when the experiment is built; exclusive with ``steps``.
        gamma_schedule: one guidance scale per step (as many as the steps that run); ``gamma1`` is then set to its
            mean. What a CFG twin runs (:mod:`zeta_eval.twins`); a smoke run's ``max_steps`` resamples it linearly.
    """

    name = "standard"

    # resolved into steps by the pipeline, which are part of the sample id
    match_nfe: str | None = setting(None, identity="never")
    # came after the first results: outside the sample id while unset, so theirs stay valid
    gamma_schedule: list[float] | None = setting(None, check=optional(_gammas), identity="if_changed",
                                                 label=_schedule_label)

    def check_settings(self) -> None:
        if self.match_nfe is not None and self.steps is not None:
            raise ValueError("standard: give either steps or match_nfe, not both")
        if self.gamma_schedule is not None:
            self.gamma1 = schedule_mean(self.gamma_schedule,
                                        None if self.gamma1 == GAMMA1_DEFAULT else self.gamma1)

    def validate(self, num_steps: int) -> None:
        super().validate(num_steps)
        if self.gamma_schedule is not None and len(self.gamma_schedule) != num_steps:
            raise ValueError(f"standard: gamma_schedule has {len(self.gamma_schedule)} scales for {num_steps} steps")

    def _scale_step_settings(self, before: int, after: int) -> None:
        if self.gamma_schedule is not None:
            self.gamma_schedule = resample(self.gamma_schedule, after)
            self.gamma1 = schedule_mean(self.gamma_schedule)

    def per_sample(self, gammas: torch.Tensor) -> "Standard":
        """A copy that runs sample k of a batch with the per-step scales ``gammas[k]`` ((batch, steps)): the CFG
        twins of a batch, each with its own schedule, in one batched run. Each sample's latents are those of a run
        with ``gamma_schedule=gammas[k]`` (the same float operations per element)."""
        if gammas.dim() != 2:
            raise ValueError(f"per-sample guidance scales must be (batch, steps), got shape {tuple(gammas.shape)}")
        twin = dataclasses.replace(self)
        twin._per_sample = gammas.detach().to("cpu", torch.float64)
        return twin

    def expected_nfe(self, num_steps: int) -> int:
        return 2 * num_steps

    def _step_scales(self, x: torch.Tensor, num_steps: int) -> torch.Tensor | None:
        """(batch, steps) scales in the latents' dtype, or None for the constant gamma1 (a Python float)."""
        per_sample = getattr(self, "_per_sample", None)
        if per_sample is not None:
            if per_sample.shape != (x.shape[0], num_steps):
                raise ValueError(f"per-sample guidance scales of shape {tuple(per_sample.shape)} for a batch of "
                                 f"{x.shape[0]} and {num_steps} steps")
            return per_sample.to(x.device, x.dtype)
        if self.gamma_schedule is None:
            return None
        if len(self.gamma_schedule) != num_steps:
            raise ValueError(f"standard: gamma_schedule has {len(self.gamma_schedule)} scales for {num_steps} steps")
        row = torch.tensor(self.gamma_schedule, dtype=torch.float64)
        return row.expand(x.shape[0], num_steps).to(x.device, x.dtype)

    def sample(self, denoiser: Denoiser, x, solver: LinearSolver, callback: StepCallback | None = None) -> SamplerOutput:
        net = Network(denoiser, solver)
        scales = self._step_scales(x, solver.num_steps)
        for i in range(solver.num_steps):
            gamma = self.gamma1 if scales is None else scales[:, i].view(-1, *([1] * (x.dim() - 1)))
            x = solver.step(x, guide(*net(x, i), gamma), i)
            if callback is not None:
                callback(i, {"x": x})
        return SamplerOutput(x, net.nfe)
