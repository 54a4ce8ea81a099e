"""Sampling math for zeta_eval: first-order solvers, timestep schedules and the samplers.

Model-agnostic: this package imports torch only. A sampler runs ``sample(denoiser, x_T, solver)``, where the
denoiser is the network with its conditioning (from a model adapter) and the solver holds the per-step
coefficients of a diffusers scheduler over a timestep schedule. A sampler is a dataclass of settings
(:mod:`samplers.settings`), registered by name in :data:`SAMPLERS` (:mod:`samplers.registry`, shared by the other
libraries' registries).
"""

from .base import BRANCHES, SAMPLERS, TWIN_KINDS, Denoiser, Network, Sampler, SamplerOutput, build_sampler, guide
from .guidance import GuidanceMeter, MeasuredGuidance, MeteredSolver, guidance_columns, sample_measured
from .registry import Registry, RegistryError, UnknownNameError
from .cfgpp import CFGPlusPlus
from .schedules import SchedulePlan, ays_sigmas, loglinear_interpolate, resolve_schedule
from .seg import SEG
from .settings import setting
from .solvers import LinearSolver, ddim_solver, euler_solver, flow_solver, solver_from_scheduler
from .standard import Standard
from .zeta import Zeta
from .zigzag import ImplicitZigzag, Zigzag

__all__ = [
    "BRANCHES", "SAMPLERS", "TWIN_KINDS", "CFGPlusPlus", "Denoiser", "GuidanceMeter", "ImplicitZigzag",
    "LinearSolver", "MeasuredGuidance", "MeteredSolver", "Network", "Registry",
    "RegistryError", "SEG", "Sampler", "SamplerOutput", "SchedulePlan", "Standard", "UnknownNameError", "Zeta",
    "Zigzag", "ays_sigmas", "build_sampler", "ddim_solver", "euler_solver", "flow_solver", "guide", "guidance_columns",
    "loglinear_interpolate", "resolve_schedule", "sample_measured", "setting", "solver_from_scheduler",
]
