"""A model adapter for pipeline tests: an exact Gaussian-mixture "model" over tiny RGB images.

Each prompt selects a mixture component (a solid colour); the network is the exact posterior mean, so samples are
deterministic functions of (prompt, seed, sampler) and cost microseconds. Used through ``class_path:
toy_adapter.ToyAdapter`` (the tests folder is on sys.path under pytest and in the CLI subprocesses the tests start).
"""

from __future__ import annotations

import os
import time
import zlib
from typing import Any, Sequence

import torch
from diffusers import DDIMScheduler

from analytic import GaussianMixtureDenoiser, vp_levels
from zeta_eval.adapters.base import ModelAdapter

COLOURS = torch.tensor([[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])


class ToyAdapter(ModelAdapter):
    family = "toy"
    ays_family = "sd"

    def __init__(self, model: str = "toy", dtype: str = "float32", size: int = 8, nan_prompt: str | None = None,
                 revision: str | None = None, delay: float = 0.0, wait_for: str | None = None):
        super().__init__(model=model, revision=revision, dtype=dtype)
        self.size = size
        self.nan_prompt = nan_prompt
        self.delay = delay  # seconds per network call: lets tests kill a run mid-way
        self.wait_for = wait_for  # a file: every batch after the first waits until it exists (tests of concurrency)
        self._encoded = 0
        self._scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                        clip_sample=False, set_alpha_to_one=False, steps_offset=1)
        self.load_calls = 0

    def load(self, device: Any) -> None:
        self.device = torch.device(device)
        self.load_calls += 1
        self._loaded = True

    @property
    def scheduler(self) -> Any:
        return self._scheduler

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "scheduler": "DDIMScheduler", "size": self.size}  # delay: not part of outputs

    def encode(self, prompts: Sequence[str]) -> Any:
        self._encoded += 1
        waited = 0.0
        while self.wait_for and self._encoded > 1 and not os.path.exists(self.wait_for) and waited < 120:
            time.sleep(0.05)
            waited += 0.05
        comps = [zlib.crc32(p.encode()) % len(COLOURS) for p in prompts]
        nan = [p == self.nan_prompt for p in prompts]
        return {"components": comps, "nan": nan}

    def latent_shape(self) -> tuple[int, ...]:
        return (3, self.size, self.size)

    def denoiser(self, cond: Any, perturbation: dict[str, Any] | None = None):
        n = self.size * self.size
        means = COLOURS.repeat_interleave(n, dim=1).reshape(len(COLOURS), 3 * n)
        den = GaussianMixtureDenoiser(means, [0.4] * len(COLOURS), cond["components"],
                                      vp_levels(self._scheduler.alphas_cumprod.tolist()))
        nan = torch.tensor(cond["nan"])

        def call(x, t, branches):
            if self.delay:
                time.sleep(self.delay)
            outs = den(x.reshape(x.shape[0], -1), t, branches)
            outs = tuple(o.reshape(x.shape) for o in outs)
            if nan.any():
                outs = tuple(torch.where(nan.view(-1, 1, 1, 1).to(o.device), torch.full_like(o, float("nan")), o) for o in outs)
            return outs

        return call

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return ((latents + 1) / 2).clamp(0, 1)  # NaN stays NaN
