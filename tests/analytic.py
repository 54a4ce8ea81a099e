"""An exact denoiser for tests: the posterior mean of an isotropic Gaussian mixture.

Data x0 ~ sum_k w_k N(mu_k, tau_k^2 I); the "prompt" of a sample is a component index. The model input is
x = alpha x0 + s eps at a noise level given by the timestep label, and the network output is the exact
posterior mean of eps (epsilon), alpha eps - s x0 (v_prediction) or eps - x0 (flow): the conditional branch uses the
prompted component only, the unconditional branch the whole mixture. The "perturbed" branch is the conditional one
with every component widened by ``perturb_factor`` (a stand-in for SEG's smoothed energy).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

Levels = Callable[[float], tuple[float, float]]


def vp_levels(alphas_cumprod: Sequence[float]) -> Levels:
    """Label t -> (alpha, s) of a VP model whose noise table is ``alphas_cumprod`` (sigma interpolated linearly in t,
    as diffusers' Euler scheduler does for fractional timesteps)."""
    abar = [float(a) for a in alphas_cumprod]
    sig = [math.sqrt((1 - a) / a) for a in abar]

    def levels(t: float) -> tuple[float, float]:
        t = float(t)
        k = min(max(int(math.floor(t)), 0), len(sig) - 2)
        frac = t - k
        s = sig[k] + frac * (sig[k + 1] - sig[k])
        return 1.0 / math.sqrt(s * s + 1.0), s / math.sqrt(s * s + 1.0)

    return levels


def flow_levels(num_train_timesteps: int = 1000) -> Levels:
    def levels(t: float) -> tuple[float, float]:
        sigma = float(t) / num_train_timesteps
        return 1.0 - sigma, sigma

    return levels


class GaussianMixtureDenoiser:
    def __init__(self, means: torch.Tensor, stds: Sequence[float], prompts: Sequence[int], levels: Levels,
                 parameterization: str = "epsilon", weights: Sequence[float] | None = None,
                 perturb_factor: float = 2.0, shape: tuple[int, ...] | None = None):
        self.means = means.double()  # (K, D)
        self.stds = torch.tensor([float(s) for s in stds], dtype=torch.float64)
        k = self.means.shape[0]
        w = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else torch.tensor(weights, dtype=torch.float64)
        self.log_w = (w / w.sum()).log()
        self.prompts = torch.tensor(list(prompts), dtype=torch.long)
        self.levels = levels
        self.parameterization = parameterization
        self.perturb_factor = perturb_factor
        self.calls: list[tuple[float, tuple[str, ...], int]] = []  # (t, branches, batch rows evaluated)

    def posterior(self, x: torch.Tensor, alpha: float, s: float, comp: torch.Tensor | None, widen: float = 1.0):
        """E[x0 | x], E[eps | x] for flattened x (B, D); comp = component per row or None for the mixture."""
        tau2 = (self.stds * widen) ** 2  # (K,)
        var = alpha * alpha * tau2 + s * s  # (K,)
        diff = x[:, None, :] - alpha * self.means[None]  # (B, K, D)
        d = x.shape[1]
        logp = self.log_w[None] - 0.5 * d * torch.log(2 * math.pi * var)[None] - (diff ** 2).sum(-1) / (2 * var[None])
        if comp is not None:
            mask = torch.full_like(logp, float("-inf"))
            mask[torch.arange(x.shape[0]), comp] = 0.0
            logp = logp + mask
        r = torch.softmax(logp, dim=1)  # (B, K)
        x0_k = self.means[None] + (alpha * tau2 / var)[None, :, None] * diff
        eps_k = (s / var)[None, :, None] * diff
        return (r[..., None] * x0_k).sum(1), (r[..., None] * eps_k).sum(1)

    def output(self, x: torch.Tensor, t: float, comp, widen: float = 1.0) -> torch.Tensor:
        alpha, s = self.levels(t)
        x0, eps = self.posterior(x, alpha, s, comp, widen)
        if self.parameterization == "epsilon":
            return eps
        if self.parameterization == "v_prediction":
            return alpha * eps - s * x0
        if self.parameterization == "flow":
            return eps - x0
        if self.parameterization == "sample":
            return x0
        raise ValueError(self.parameterization)

    def __call__(self, x: torch.Tensor, t: float, branches: Sequence[str]) -> tuple[torch.Tensor, ...]:
        shape, dtype = x.shape, x.dtype
        flat = x.reshape(shape[0], -1).double()
        prompts = self.prompts[: shape[0]] if len(self.prompts) >= shape[0] else self.prompts.repeat(shape[0])[: shape[0]]
        out = []
        for b in branches:
            if b == "uncond":
                y = self.output(flat, t, None)
            elif b == "cond":
                y = self.output(flat, t, prompts)
            elif b == "perturbed":
                y = self.output(flat, t, prompts, widen=self.perturb_factor)
            else:
                raise ValueError(b)
            out.append(y.reshape(shape).to(dtype))
        self.calls.append((float(t), tuple(branches), shape[0] * len(branches)))
        return tuple(out)

    def rows_evaluated(self) -> int:
        return sum(c[2] for c in self.calls)


class LinearFieldDenoiser:
    """m_u(x) = A_u x + b_u, m_c(x) = A_c x + b_c (ignores t): the backward-error identity is exact for it."""

    def __init__(self, dim: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.A_u = torch.randn(dim, dim, generator=g, dtype=torch.float64) * 0.3
        self.A_c = torch.randn(dim, dim, generator=g, dtype=torch.float64) * 0.3
        self.b_u = torch.randn(dim, generator=g, dtype=torch.float64)
        self.b_c = torch.randn(dim, generator=g, dtype=torch.float64)

    def field(self, x: torch.Tensor, branch: str) -> torch.Tensor:
        A, b = (self.A_u, self.b_u) if branch == "uncond" else (self.A_c, self.b_c)
        return x @ A.T + b

    def __call__(self, x, t, branches):
        return tuple(self.field(x, b) for b in branches)
