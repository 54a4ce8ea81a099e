"""Measured guidance strength: what a sampler's steps did, in units of plain CFG's guidance direction.

Every step of every sampler here ends in the solver's affine form x_{i+1} = a_i x + b_i m (or CFG++'s split form).
Seen from the state x_i the step started from (the anchor), the step acted as if the model had returned

    m_eff,i = (x_{i+1} - a_i x_i) / b_i.

With u, c the unconditional and conditional outputs at the anchor and D = c - u:

    gamma_par,i = <m_eff,i - u, D> / ||D||^2           the CFG scale that comes closest to what the step did
    rho_i       = ||(m_eff,i - u) - gamma_par,i D|| / ||D||   what no CFG scale explains, in units of ||D||

per sample (flattened; the tensors stay in their dtype, the reductions run in float64). Plain CFG gives
gamma_par = gamma and rho = 0; the scale is that of the model output m the solver consumes (epsilon, v or flow
velocity: CFG's gamma means the same in each, since m is linear in the guidance).

The meter needs nothing from a sampler beyond the contract every sampler already follows: it evaluates the network
through :class:`samplers.base.Network` and advances with ``solver.step`` / ``solver.step_split``. The sampler runs on
a :class:`MeteredSolver` (the same coefficients) whose steps report to a :class:`GuidanceMeter`, and the Network reports
its evaluations to the same meter. Rules (which a plugin written like the built-in samplers meets without knowing):

- the anchor of step i is the result of step i - 1 (the initial latent for i = 0); step i's result is the output of
  its last ``step`` call;
- u, c at the anchor come from a network evaluation of step i's label (``Network(x, i)`` with both branches) at a
  state equal to the anchor, per sample, before step i's first ``step`` call. Evaluations at a state that is not the
  anchor give the free estimate (u, c at the evaluated point: ``"evaluated"``), used only where no evaluation at the
  anchor exists for that sample; evaluations that a sampler makes only to measure (``Network(..., probe=True)``, e.g.
  zeta's ``probe``) give the exact values, labelled ``"probe"``;
- the last step event of step i fixes m_eff (for the zigzag family, the second zig): intermediate zigs are
  overwritten.

A step without u, c (a sampler that never calls the network through ``Network``) is NaN, and so is a step whose D is
not resolved: ||D|| <= sqrt(eps) ||u|| in the outputs' dtype (eps = 2^-23 in float32), where D is rounding noise of u
rather than a direction (late steps on which c and u have converged) and the ratios would be noise; the values of the
others are then exact to about sqrt(eps) (3e-4 in float32).
Extra memory while sampling: the anchor, u and D of the current step (three latent-sized tensors, D and u in float64).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import torch

from .solvers import LinearSolver

if TYPE_CHECKING:
    from .base import Denoiser, Sampler, SamplerOutput, StepCallback

#: where the anchor outputs of a step came from, by rank (a better source replaces a worse one)
NONE, EVALUATED, PROBE, EXACT = 0, 1, 2, 3
SOURCE_NAMES = {EVALUATED: "evaluated", PROBE: "probe", EXACT: "exact"}


@dataclass
class MeasuredGuidance:
    """Per sample and step: ``gamma_par`` and ``rho`` (float64, NaN where undefined) and ``source`` (int8 codes
    :data:`NONE`, :data:`EVALUATED`, :data:`PROBE`, :data:`EXACT`)."""

    gamma_par: torch.Tensor
    rho: torch.Tensor
    source: torch.Tensor

    def mean_gamma(self) -> torch.Tensor:
        """Mean gamma_par per sample over the steps where it is defined (NaN if none)."""
        return _nanmean(self.gamma_par)

    def mean_rho(self) -> torch.Tensor:
        return _nanmean(self.rho)

    def source_labels(self) -> list[str | None]:
        """Per sample, what its values rest on: ``"evaluated"`` if any step used the free estimate, else ``"probe"``
        if any step used a probe, else ``"exact"``; None when no step could be measured."""
        labels: list[str | None] = []
        for row in self.source.tolist():
            used = [code for code in row if code != NONE]
            labels.append(SOURCE_NAMES[min(used)] if used else None)
        return labels


def _nanmean(values: torch.Tensor) -> torch.Tensor:
    defined = ~torch.isnan(values)
    count = defined.sum(1)
    total = torch.where(defined, values, torch.zeros_like(values)).sum(1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


def _flat64(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).double()


def _same_rows(x: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """Per sample: is ``x`` the anchor? (one comparison pass, skipped when it is the same tensor)."""
    if x is anchor:
        return torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    if x.shape != anchor.shape:
        return torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    return (x == anchor).reshape(x.shape[0], -1).all(1)


def _rows(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, *([1] * (like.dim() - 1)))


class GuidanceMeter:
    """Follows one sampling run through its solver steps and network evaluations (see the module docstring)."""

    def __init__(self, x_T: torch.Tensor, num_steps: int):
        batch, device = x_T.shape[0], x_T.device  # kept on the latents' device: no synchronisation per step
        self.gamma_par = torch.full((batch, num_steps), float("nan"), dtype=torch.float64, device=device)
        self.rho = torch.full((batch, num_steps), float("nan"), dtype=torch.float64, device=device)
        self.source = torch.zeros((batch, num_steps), dtype=torch.int8, device=device)
        self.current = -1  # the step whose anchor is fixed; -1 before the first step call
        self.result = x_T  # the latest step result: the anchor of step current + 1
        self.anchor: torch.Tensor | None = None
        self.anchor_u: torch.Tensor | None = None  # float64, flattened
        self.anchor_d: torch.Tensor | None = None  # float64, flattened
        self.anchor_dd: torch.Tensor | None = None  # ||D||^2 per sample
        self.anchor_code = torch.zeros(batch, dtype=torch.int8, device=device)
        self._next: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # (u, c, codes) for step current + 1
        self.lost = False  # a step call the rules cannot follow: everything from there on stays NaN

    # ------------------------------------------------------------------ events
    def evaluated(self, x: torch.Tensor, i: int, branches: Sequence[str], outputs: Sequence[torch.Tensor],
                  probe: bool = False) -> None:
        """A network evaluation at state ``x`` with step i's label: a candidate for the anchor outputs of step i."""
        if self.lost or i != self.current + 1 or "uncond" not in branches or "cond" not in branches:
            return
        u, c = outputs[list(branches).index("uncond")], outputs[list(branches).index("cond")]
        same = _same_rows(x, self.result).to(self.source.device)
        codes = torch.where(same, torch.tensor(PROBE if probe else EXACT, dtype=torch.int8),
                            torch.tensor(EVALUATED, dtype=torch.int8))
        if self._next is None:
            self._next = (u, c, codes)
            return
        old_u, old_c, old_codes = self._next
        better = codes > old_codes
        if bool(better.all()):
            self._next = (u, c, codes)
        elif bool(better.any()):
            keep = _rows(better.to(u.device), u)  # (a second evaluation for one step: a probe, a zag)
            self._next = (torch.where(keep, u, old_u), torch.where(keep, c, old_c), torch.maximum(codes, old_codes))

    def stepped(self, solver: LinearSolver, i: int, x_in: torch.Tensor, out: torch.Tensor,
                m_data: torch.Tensor, m_noise: torch.Tensor | None = None) -> None:
        """A solver step of interval i from ``x_in`` with model output ``m_data`` (and CFG++'s re-noising output
        ``m_noise``) gave ``out``."""
        if self.lost:
            return
        if i == self.current + 1:
            self._open(i)
        elif i != self.current:
            self.lost = True
            self.gamma_par[:, max(self.current, 0):] = float("nan")
            self.rho[:, max(self.current, 0):] = float("nan")
            return
        self._measure(solver, i, x_in, m_data, m_noise)
        self.result = out
        self._next = None  # evaluations at the previous result no longer describe the next anchor

    def _open(self, i: int) -> None:
        """Step i begins: its anchor is the last result, its anchor outputs what was evaluated since."""
        self.current = i
        self.anchor = self.result
        if self._next is None:
            self.anchor_u = self.anchor_d = self.anchor_dd = None
            self.anchor_code = torch.zeros_like(self.anchor_code)
            return
        u, c, codes = self._next
        self._next = None
        self.anchor_u = _flat64(u)
        self.anchor_d = _flat64(c) - self.anchor_u
        # D below half the digits of u is rounding, not a direction (the guidance difference has collapsed)
        floor = torch.finfo(u.dtype).eps ** 0.5 * self.anchor_u.norm(dim=1)
        dd = (self.anchor_d * self.anchor_d).sum(1)
        self.anchor_dd = torch.where(dd.sqrt() > floor, dd, torch.zeros_like(dd))
        self.anchor_code = codes

    def _measure(self, solver: LinearSolver, i: int, x_in: torch.Tensor, m_data: torch.Tensor,
                 m_noise: torch.Tensor | None) -> None:
        if self.anchor_u is None:
            return
        a, b = solver.coefficients(i)
        if m_noise is None:
            m_eff = _flat64(m_data)
        else:  # CFG++: b m_eff = alpha_next Q m_data + sigma_next S m_noise
            wd, wn = solver.alpha_next[i] * solver.Q[i] / b, solver.sigma_next[i] * solver.S[i] / b
            m_eff = wd * _flat64(m_data) + wn * _flat64(m_noise)
        if x_in is not self.anchor:  # a step from a moved state (a zag): x_{i+1} - a x_i = b m + a (x_in - x_i)
            m_eff = m_eff + (a / b) * (_flat64(x_in) - _flat64(self.anchor))
        r = m_eff - self.anchor_u.to(m_eff.device)
        d, dd = self.anchor_d.to(m_eff.device), self.anchor_dd.to(m_eff.device)
        defined = dd > 0
        gamma = torch.where(defined, (r * d).sum(1) / dd.clamp_min(1e-300), torch.full_like(dd, float("nan")))
        perp = (r - gamma.unsqueeze(1) * d).norm(dim=1)
        rho = torch.where(defined, perp / dd.clamp_min(1e-300).sqrt(), torch.full_like(dd, float("nan")))
        self.gamma_par[:, i] = gamma.to(self.gamma_par.device)
        self.rho[:, i] = rho.to(self.rho.device)
        self.source[:, i] = self.anchor_code.to(self.source.device)

    def result_measurement(self) -> MeasuredGuidance:
        """The measurement, on the CPU."""
        return MeasuredGuidance(self.gamma_par.cpu(), self.rho.cpu(), self.source.cpu())


class MeteredSolver(LinearSolver):
    """A :class:`LinearSolver` with the same coefficients whose steps report to a :class:`GuidanceMeter` (the steps
    compute exactly what the plain solver computes)."""

    guidance_meter: GuidanceMeter

    @classmethod
    def of(cls, solver: LinearSolver, meter: GuidanceMeter) -> "MeteredSolver":
        values = {f.name: getattr(solver, f.name) for f in dataclasses.fields(LinearSolver)}
        metered = cls(**values)
        object.__setattr__(metered, "guidance_meter", meter)
        return metered

    def step(self, x: torch.Tensor, m: torch.Tensor, i: int) -> torch.Tensor:
        out = super().step(x, m, i)
        self.guidance_meter.stepped(self, i, x, out, m)
        return out

    def step_split(self, x: torch.Tensor, m_data: torch.Tensor, m_noise: torch.Tensor, i: int) -> torch.Tensor:
        out = super().step_split(x, m_data, m_noise, i)
        self.guidance_meter.stepped(self, i, x, out, m_data, m_noise)
        return out


def sample_measured(sampler: "Sampler", denoiser: "Denoiser", x: torch.Tensor, solver: LinearSolver,
                    callback: "StepCallback | None" = None) -> "SamplerOutput":
    """``sampler.sample`` with its guidance measured: the same latents, NFE and diagnostics, and ``guidance`` set."""
    meter = GuidanceMeter(x, solver.num_steps)
    out = sampler.sample(denoiser, x, MeteredSolver.of(solver, meter), callback)
    out.guidance = meter.result_measurement()
    return out


def guidance_columns(measurement: MeasuredGuidance | None, k: int) -> dict[str, Any]:
    """The row columns of sample ``k``: ``guidance_measured`` and ``guidance_orthogonal`` (means over the steps where
    they are defined), the per-step lists (None where undefined) and ``guidance_source`` (all None if unmeasured)."""
    if measurement is None:
        return {"guidance_measured": None, "guidance_orthogonal": None, "guidance_measured_steps": None,
                "guidance_orthogonal_steps": None, "guidance_source": None}
    mean_g, mean_r = float(measurement.mean_gamma()[k]), float(measurement.mean_rho()[k])
    nan_none = lambda v: None if v != v else float(v)  # noqa: E731
    return {"guidance_measured": nan_none(mean_g), "guidance_orthogonal": nan_none(mean_r),
            "guidance_measured_steps": [nan_none(v) for v in measurement.gamma_par[k].tolist()],
            "guidance_orthogonal_steps": [nan_none(v) for v in measurement.rho[k].tolist()],
            "guidance_source": measurement.source_labels()[k]}
