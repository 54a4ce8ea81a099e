"""First-order solvers as one affine map per step.

Every deterministic first-order step used by zeta_eval, for every scheduler and parameterisation, has the form

    x_s = alpha_next * x0_hat + sigma_next * eps_hat,     x0_hat = P x + Q m,   eps_hat = R x + S m

where ``m`` is the raw network output (epsilon, v or flow velocity) at the current state ``x``. Collapsed, that is
the affine step ``x_s = a x + b m`` with ``a = alpha_next P + sigma_next R`` and ``b = alpha_next Q + sigma_next S``
(ALGORITHMS.md section 1), whose exact inverse for a fixed ``m`` is ``x = (x_s - b m) / a``. Keeping the four
numbers instead of only (a, b) gives, for free, CFG++ (data and noise predicted from different guidance), and the
epsilon-equivalent rescaling of a cached guidance difference (``S`` maps a change of ``m`` to a change of epsilon).

The coefficients are read from a diffusers scheduler *by duck typing* (``config``, ``alphas_cumprod``, ``sigmas``,
``timesteps``, ``set_timesteps``); this module never imports diffusers. ``scheduler.step`` is never called: Euler and
flow-matching schedulers advance an internal step index on every call, which breaks any sampler that evaluates the
network more than once per timestep.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from .schedules import SchedulePlan, ScheduleSpec, resolve_schedule

#: parameterisations the solvers understand ("flow" = rectified-flow velocity, v = eps - x0)
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample", "flow")

_DDIM_LIKE = ("DDIMScheduler", "CogVideoXDDIMScheduler")
_EULER_LIKE = ("EulerDiscreteScheduler",)
_FLOW_LIKE = ("FlowMatchEulerDiscreteScheduler",)
SUPPORTED_SCHEDULERS = _DDIM_LIKE + _EULER_LIKE + _FLOW_LIKE


@dataclass(frozen=True)
class DDIMTable:
    """What the public Z-Sampling code's ``DDIMInverseScheduler`` call needs (``official_compat`` only)."""

    alphas_cumprod: tuple[float, ...]
    step_ratio: int  # num_train_timesteps // num_inference_steps
    initial_alpha_cumprod: float  # DDIMInverseScheduler's value below timestep 0
    num_train_timesteps: int


@dataclass(frozen=True)
class LinearSolver:
    """Per-step coefficients of a first-order solver over one timestep schedule (T steps).

    Step ``i`` goes from ``timesteps[i]`` to the next noise level; the network is evaluated at
    ``c_in[i] * x`` with timestep label ``timesteps[i]``.
    """

    kind: str  # "ddim" | "euler" | "flow"
    prediction_type: str
    timesteps: tuple[float, ...]
    c_in: tuple[float, ...]
    P: tuple[float, ...]
    Q: tuple[float, ...]
    R: tuple[float, ...]
    S: tuple[float, ...]
    alpha_next: tuple[float, ...]
    sigma_next: tuple[float, ...]
    init_noise_sigma: float = 1.0
    schedule_name: str = "default"
    ddim_table: DDIMTable | None = None

    def __post_init__(self) -> None:
        n = len(self.timesteps)
        for name in ("c_in", "P", "Q", "R", "S", "alpha_next", "sigma_next"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"LinearSolver.{name} has {len(getattr(self, name))} entries, expected {n}")
        if n == 0:
            raise ValueError("LinearSolver needs at least one step")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {self.prediction_type!r}")
        a = tuple(an * p + sn * r for an, p, r, sn in zip(self.alpha_next, self.P, self.R, self.sigma_next))
        b = tuple(an * q + sn * s for an, q, s, sn in zip(self.alpha_next, self.Q, self.S, self.sigma_next))
        if any(not math.isfinite(v) or v == 0.0 for v in a):
            raise ValueError("solver coefficient a_i is zero or not finite: the step is not invertible")
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)

    # ------------------------------------------------------------------ the affine step
    @property
    def num_steps(self) -> int:
        return len(self.timesteps)

    def coefficients(self, i: int) -> tuple[float, float]:
        """(a_i, b_i) of ``x_s = a_i x_t + b_i m``."""
        return self.a[i], self.b[i]  # type: ignore[attr-defined]

    def step(self, x: torch.Tensor, m: torch.Tensor, i: int) -> torch.Tensor:
        """One solver step with model output ``m`` evaluated at ``x``."""
        return self.a[i] * x + self.b[i] * m  # type: ignore[attr-defined]

    def invert(self, x_next: torch.Tensor, m: torch.Tensor, i: int) -> torch.Tensor:
        """Exact algebraic inverse of :meth:`step` for the same interval and the same ``m``."""
        return (x_next - self.b[i] * m) / self.a[i]  # type: ignore[attr-defined]

    def shift_coefficient(self, i: int) -> float:
        """b_i / a_i: the zag-then-zig algebra of the zigzag family moves x by (b_i/a_i) (g1 - g2) Delta."""
        return self.b[i] / self.a[i]  # type: ignore[attr-defined]

    def step_split(self, x: torch.Tensor, m_data: torch.Tensor, m_noise: torch.Tensor, i: int) -> torch.Tensor:
        """Step whose data prediction uses ``m_data`` and whose re-noising uses ``m_noise`` (CFG++)."""
        an, sn = self.alpha_next[i], self.sigma_next[i]
        x0 = self.P[i] * x + self.Q[i] * m_data
        eps = self.R[i] * x + self.S[i] * m_noise
        return an * x0 + sn * eps

    def epsilon_scale(self, i: int) -> float:
        """d eps_hat / d m at step i: how a change of the model output changes the predicted noise."""
        return self.S[i]

    # ------------------------------------------------------------------ official Z-Sampling inversion
    def official_inverse(self, x_next: torch.Tensor, m: torch.Tensor, i: int) -> torch.Tensor:
        """What ``DDIMInverseScheduler.step(m, timesteps[i + 1], x_next)`` computes in diffusers >= 0.22.

        The public Z-Sampling code makes this call for the zag of step i. Since diffusers PR #5145 the call maps
        level ``timesteps[i+1] - k`` to level ``timesteps[i+1]``: the coefficients of the *next* interval
        (ALGORITHMS.md, "Known quirk"). Reproduced here for comparisons only.
        """
        table = self.ddim_table
        if table is None:
            raise ValueError("official_compat inversion needs a DDIM solver (DDIMScheduler); got kind=" + self.kind)
        if i + 1 >= self.num_steps:
            raise ValueError(f"official inversion at step {i} needs timesteps[{i + 1}], past the last step")
        to_t = int(round(self.timesteps[i + 1]))
        from_t = min(to_t - table.step_ratio, table.num_train_timesteps - 1)
        abar_from = table.alphas_cumprod[from_t] if from_t >= 0 else table.initial_alpha_cumprod
        abar_to = table.alphas_cumprod[to_t]
        p, q, r, s = _ddim_xe(abar_from, self.prediction_type)
        return math.sqrt(abar_to) * (p * x_next + q * m) + math.sqrt(1.0 - abar_to) * (r * x_next + s * m)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "prediction_type": self.prediction_type,
            "schedule": self.schedule_name,
            "num_steps": self.num_steps,
            "timesteps": [float(t) for t in self.timesteps],
        }


# ---------------------------------------------------------------------------------------------- builders
def _ddim_xe(abar: float, prediction_type: str) -> tuple[float, float, float, float]:
    """(P, Q, R, S) for a VP latent at level abar: x0_hat = P x + Q m, eps_hat = R x + S m."""
    al, be = math.sqrt(abar), math.sqrt(1.0 - abar)
    if prediction_type == "epsilon":
        return 1.0 / al, -be / al, 0.0, 1.0
    if prediction_type == "v_prediction":
        return al, -be, be, al
    if prediction_type == "sample":
        return 0.0, 1.0, 1.0 / be, -al / be
    raise ValueError(f"DDIM solver does not support prediction_type={prediction_type!r}; "
                     "use epsilon, v_prediction or sample")


def ddim_solver(
    alphas_cumprod: Sequence[float],
    timesteps: Sequence[float],
    prediction_type: str,
    final_alpha_cumprod: float,
    *,
    prev_timesteps: Sequence[int] | None = None,
    schedule_name: str = "default",
    ddim_table: DDIMTable | None = None,
) -> LinearSolver:
    """DDIM (eta = 0) between integer timesteps. ``prev_timesteps[i] < 0`` means the final level."""
    n = len(timesteps)
    if prev_timesteps is None:  # custom schedules: the next entry, then the final level
        prev_timesteps = [int(round(t)) for t in timesteps[1:]] + [-1]
    cols: dict[str, list[float]] = {k: [] for k in ("P", "Q", "R", "S", "an", "sn")}
    for t, prev in zip(timesteps, prev_timesteps):
        abar_t = float(alphas_cumprod[int(round(t))])
        abar_s = float(alphas_cumprod[prev]) if prev >= 0 else float(final_alpha_cumprod)
        p, q, r, s = _ddim_xe(abar_t, prediction_type)
        for k, v in zip(("P", "Q", "R", "S", "an", "sn"), (p, q, r, s, math.sqrt(abar_s), math.sqrt(1.0 - abar_s))):
            cols[k].append(v)
    return LinearSolver(
        kind="ddim",
        prediction_type=prediction_type,
        timesteps=tuple(float(t) for t in timesteps),
        c_in=(1.0,) * n,
        P=tuple(cols["P"]), Q=tuple(cols["Q"]), R=tuple(cols["R"]), S=tuple(cols["S"]),
        alpha_next=tuple(cols["an"]), sigma_next=tuple(cols["sn"]),
        init_noise_sigma=1.0,
        schedule_name=schedule_name,
        ddim_table=ddim_table,
    )


def euler_solver(
    sigmas: Sequence[float], timesteps: Sequence[float], prediction_type: str, init_noise_sigma: float,
    *, schedule_name: str = "default",
) -> LinearSolver:
    """Euler on the variance-exploding sample x = x0 + sigma eps (diffusers' EulerDiscreteScheduler)."""
    n = len(timesteps)
    if len(sigmas) != n + 1:
        raise ValueError(f"Euler solver needs {n + 1} sigmas for {n} steps, got {len(sigmas)}")
    cols: dict[str, list[float]] = {k: [] for k in ("c", "P", "Q", "R", "S", "sn")}
    for i in range(n):
        sig, sig_next = float(sigmas[i]), float(sigmas[i + 1])
        if prediction_type == "epsilon":
            p, q = 1.0, -sig
        elif prediction_type == "v_prediction":
            p, q = 1.0 / (sig * sig + 1.0), -sig / math.sqrt(sig * sig + 1.0)
        else:
            raise ValueError(f"Euler solver supports epsilon and v_prediction, not {prediction_type!r}")
        # eps_hat = (x - x0_hat) / sigma, as EulerDiscreteScheduler's derivative
        r, s = (1.0 - p) / sig, -q / sig
        for k, v in zip(("c", "P", "Q", "R", "S", "sn"), (1.0 / math.sqrt(sig * sig + 1.0), p, q, r, s, sig_next)):
            cols[k].append(v)
    return LinearSolver(
        kind="euler",
        prediction_type=prediction_type,
        timesteps=tuple(float(t) for t in timesteps),
        c_in=tuple(cols["c"]),
        P=tuple(cols["P"]), Q=tuple(cols["Q"]), R=tuple(cols["R"]), S=tuple(cols["S"]),
        alpha_next=(1.0,) * n, sigma_next=tuple(cols["sn"]),
        init_noise_sigma=float(init_noise_sigma),
        schedule_name=schedule_name,
    )


def flow_solver(sigmas: Sequence[float], timesteps: Sequence[float], *, schedule_name: str = "default") -> LinearSolver:
    """Euler for rectified flow x = (1 - sigma) x0 + sigma eps with velocity v = eps - x0."""
    n = len(timesteps)
    if len(sigmas) != n + 1:
        raise ValueError(f"flow solver needs {n + 1} sigmas for {n} steps, got {len(sigmas)}")
    sig = [float(s) for s in sigmas]
    return LinearSolver(
        kind="flow",
        prediction_type="flow",
        timesteps=tuple(float(t) for t in timesteps),
        c_in=(1.0,) * n,
        P=(1.0,) * n, Q=tuple(-s for s in sig[:-1]), R=(1.0,) * n, S=tuple(1.0 - s for s in sig[:-1]),
        alpha_next=tuple(1.0 - s for s in sig[1:]), sigma_next=tuple(sig[1:]),
        init_noise_sigma=1.0,
        schedule_name=schedule_name,
    )


def _as_floats(values: Any) -> list[float]:
    if isinstance(values, torch.Tensor):
        return [float(v) for v in values.detach().to("cpu", torch.float64).flatten()]
    return [float(v) for v in values]


def _ddim_from_scheduler(sched: Any, plan: SchedulePlan, num_steps: int, kwargs: dict[str, Any]) -> LinearSolver:
    """DDIM over the scheduler's own timesteps (its prev_timestep rule) or the plan's explicit ones."""
    config = sched.config
    abar = _as_floats(sched.alphas_cumprod)
    n_train = int(config.num_train_timesteps)
    if plan.timesteps is None:
        sched.set_timesteps(num_steps, **kwargs)
        timesteps = _as_floats(sched.timesteps)
        ratio = n_train // sched.num_inference_steps
        prev = [int(round(t)) - ratio for t in timesteps]  # the scheduler's own prev_timestep rule
    else:
        timesteps = [float(t) for t in plan.timesteps]
        ratio = n_train // len(timesteps)
        prev = None
    table = DDIMTable(
        alphas_cumprod=tuple(abar),
        step_ratio=ratio,
        initial_alpha_cumprod=1.0 if config.get("set_alpha_to_one", True) else abar[0],
        num_train_timesteps=n_train,
    )
    return ddim_solver(abar, timesteps, config.prediction_type, float(sched.final_alpha_cumprod), prev_timesteps=prev,
                       schedule_name=plan.name, ddim_table=table)


def _euler_from_scheduler(sched: Any, plan: SchedulePlan, num_steps: int, kwargs: dict[str, Any]) -> LinearSolver:
    """Euler over the plan's sigmas, its timesteps or the scheduler's own spacing."""
    if plan.sigmas is not None:
        sched.set_timesteps(sigmas=list(plan.sigmas), **kwargs)
    elif plan.timesteps is not None:
        sched.set_timesteps(timesteps=list(plan.timesteps), **kwargs)
    else:
        sched.set_timesteps(num_steps, **kwargs)
    return euler_solver(_as_floats(sched.sigmas), _as_floats(sched.timesteps), sched.config.prediction_type,
                        float(sched.init_noise_sigma), schedule_name=plan.name)


def _flow_from_scheduler(sched: Any, plan: SchedulePlan, num_steps: int, kwargs: dict[str, Any]) -> LinearSolver:
    """Flow-matching Euler over the scheduler's own sigmas (custom schedules are not defined for it)."""
    if plan.timesteps is not None or plan.sigmas is not None:
        raise ValueError("custom timestep schedules (AYS, explicit lists) are not defined for flow-matching models")
    if plan.spacing is not None:  # the scheduler has no timestep_spacing: the override would change nothing
        raise ValueError(f"schedule {plan.spacing!r}: timestep spacings are not defined for flow-matching models, "
                         "whose schedule is the scheduler's own (shifted) sigmas; use schedule 'default'")
    sched.set_timesteps(num_steps, **kwargs)
    return flow_solver(_as_floats(sched.sigmas), _as_floats(sched.timesteps), schedule_name=plan.name)


#: the solver builder of each supported scheduler class (by name: this module never imports diffusers)
_BUILDERS: dict[str, Callable[[Any, SchedulePlan, int, dict[str, Any]], LinearSolver]] = {
    **{name: _ddim_from_scheduler for name in _DDIM_LIKE},
    **{name: _euler_from_scheduler for name in _EULER_LIKE},
    **{name: _flow_from_scheduler for name in _FLOW_LIKE},
}


def _check_scheduler(scheduler: Any, num_steps: int) -> None:
    """Refuse an unsupported scheduler, a bad step count, and a DDIM whose step is not affine."""
    name = type(scheduler).__name__
    if name not in SUPPORTED_SCHEDULERS:
        raise ValueError(
            f"scheduler {name} is not supported by the first-order solvers; supported: {', '.join(SUPPORTED_SCHEDULERS)} "
            "(convert with e.g. DDIMScheduler.from_config(pipe.scheduler.config))"
        )
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    config = scheduler.config
    if name in _DDIM_LIKE and (config.get("clip_sample", False) or config.get("thresholding", False)):
        raise ValueError("DDIM with clip_sample or thresholding is not an affine step; set clip_sample=False, "
                         "thresholding=False in the scheduler config")
    if name in _FLOW_LIKE and config.get("stochastic_sampling", False):
        raise ValueError("flow matching with stochastic_sampling re-draws the noise at every step, which is not an "
                         "affine step; set stochastic_sampling=False in the scheduler config")


def solver_from_scheduler(
    scheduler: Any, num_steps: int, schedule: ScheduleSpec = "default", **set_timesteps_kwargs: Any
) -> LinearSolver:
    """Build the solver of a diffusers scheduler over ``num_steps`` steps of ``schedule``.

    ``schedule``: ``"default"`` (the scheduler's own spacing), ``"leading" | "trailing" | "linspace"`` (spacing
    override), ``"ays"`` / ``"ays:sd" | "ays:sdxl" | "ays:svd"`` (Align Your Steps), or an explicit list of
    timesteps. The scheduler passed in is not modified.
    """
    _check_scheduler(scheduler, num_steps)
    plan = resolve_schedule(schedule, scheduler, num_steps)
    sched = copy.deepcopy(scheduler)
    if plan.spacing is not None:
        sched = type(sched).from_config(sched.config, timestep_spacing=plan.spacing)
    return _BUILDERS[type(scheduler).__name__](sched, plan, num_steps, set_timesteps_kwargs)
