"""The ShapeBench model family: the small pixel-space text-to-image model that ships with zeta_eval.

Latents are pixels in [-1, 1], (B, 3, 32, 32); ``decode`` maps them to [0, 1]. The unconditional branch is the empty
prompt (or ``negative_prompt``). The default model is the packaged folder ``zeta_eval/assets/shapebench``; any local
folder written by ``python -m zeta_eval.shapebench.export`` works.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from .base import ModelAdapter, ModelLoadError, check_branches

#: the packaged model, resolved relative to the zeta_eval package
DEFAULT_MODEL = str(Path(__file__).resolve().parents[1] / "assets" / "shapebench")
SCHEDULERS = ("ddim", "euler")


@dataclass
class ShapeBenchConditioning:
    """Token states of the uncond and cond branches of one batch, each (B, tokens, hidden)."""

    prompts: tuple[str, ...]
    uncond: torch.Tensor
    cond: torch.Tensor

    @property
    def batch_size(self) -> int:
        return len(self.prompts)


class ShapeBenchDenoiser:
    """``denoiser(x, t, branches)``: the requested branches in one batched UNet call."""

    def __init__(self, adapter: "ShapeBenchAdapter", cond: ShapeBenchConditioning):
        self.adapter = adapter
        self.cond = cond

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, t: float, branches: Sequence[str]) -> tuple[torch.Tensor, ...]:
        branches = check_branches(branches, ("uncond", "cond"), family="shapebench")
        if x.shape[0] != self.cond.batch_size:
            raise ValueError(f"latent batch {x.shape[0]} does not match the conditioning batch {self.cond.batch_size}")
        dtype = self.adapter.compute_dtype()
        states = torch.cat([self.cond.uncond if b == "uncond" else self.cond.cond for b in branches])
        x_in = torch.cat([x] * len(branches)).to(self.adapter.device, dtype)
        t_in = torch.full((x_in.shape[0],), float(t), device=self.adapter.device, dtype=dtype)
        out = self.adapter.compute_network(x_in, t_in, encoder_hidden_states=states.to(dtype)).sample
        return tuple(o.to(device=x.device, dtype=x.dtype) for o in out.chunk(len(branches)))


class ShapeBenchAdapter(ModelAdapter):
    """Adapter of the ShapeBench model.

    Args:
        model: a ShapeBench model folder (default: the packaged one).
        dtype: network dtype on GPU (float32 by default: the model is tiny); CPU always runs float32.
        scheduler: ``None`` (the model's DDIM scheduler), ``"ddim"`` or ``"euler"`` (its config converted).
        negative_prompt: prompt of the unconditional branch ("" as in training).
        height, width: ``None`` or the model's image size (32).
    """

    family = "shapebench"
    conv_unet = True
    no_perturbation_reason = "the ShapeBench model has no attention hook for a perturbed branch"

    def __init__(self, model: str = DEFAULT_MODEL, revision: str | None = None, dtype: str = "float32",
                 scheduler: str | None = None, negative_prompt: str = "",
                 height: int | None = None, width: int | None = None):
        super().__init__(model=model, revision=revision, dtype=dtype, scheduler=None,
                         negative_prompt=negative_prompt, height=height, width=width)
        if scheduler is not None and scheduler not in SCHEDULERS:
            raise ValueError(f"the shapebench adapter accepts scheduler null, 'ddim' or 'euler'; got {scheduler!r}")
        self.scheduler_override = scheduler
        if not isinstance(negative_prompt, str):
            raise ValueError(f"negative_prompt must be a string, got {negative_prompt!r}")
        for name, value in (("height", height), ("width", width)):
            if value is not None and value != self._image_size_hint():
                raise ValueError(f"adapter {name} must be null or {self._image_size_hint()} (the ShapeBench model's "
                                 f"image size); got {value!r}")
        self._net: Any = None
        self._scheduler: Any = None

    @staticmethod
    def _image_size_hint() -> int:
        from datamodules.shapebench.world import IMAGE_SIZE

        return IMAGE_SIZE

    # ------------------------------------------------------------------ loading
    def _folder(self) -> str:
        folder = os.path.expanduser(self.model)
        if not os.path.isdir(folder):
            raise ModelLoadError(f"cannot load ShapeBench model {self.model!r}: the local folder does not exist "
                                 "(the shapebench adapter loads local folders only; export one with "
                                 "`python -m zeta_eval.shapebench.export CHECKPOINT --out DIR`)")
        return folder

    def load(self, device: torch.device | str) -> None:
        from zeta_eval.shapebench.model import load_model

        self.device = torch.device(device)
        net = load_model(self._folder(), device=self.device)
        if self.device.type == "cuda" and self.dtype != torch.float32:
            net.unet.to(self.dtype)
            net.text_encoder.to(self.dtype)
        self._net = net
        self._compiled = None  # a compiled network belongs to the model it was made from
        self._scheduler = None
        self._loaded = True

    @property
    def network(self) -> Any:
        if self._net is None:
            raise RuntimeError("the shapebench adapter is not loaded; call adapter.load(device) first")
        return self._net

    def denoising_network(self) -> torch.nn.Module:
        return self.network.unet

    def describe(self) -> dict[str, Any]:
        from .pipeline_adapter import SCHEDULER_FIELDS, _plain

        info = super().describe()
        sched = self.scheduler
        info["scheduler"] = type(sched).__name__
        info["scheduler_override"] = self.scheduler_override
        info["prediction_type"] = sched.config.prediction_type
        info["scheduler_config"] = {k: _plain(sched.config[k]) for k in SCHEDULER_FIELDS if k in sched.config}
        if self._net is not None:
            info["trained_steps"] = self._net.manifest.get("trained_steps")
        return info

    def prompt_truncated(self, prompts: Sequence[str]) -> list[bool]:
        """The ShapeBench model reads its whole (short) context or nothing: a longer prompt is an error, never cut."""
        from zeta_eval.shapebench.model import MAX_TOKENS

        for prompt in prompts:
            words = len(self.network.tokenizer(prompt, truncation=False).input_ids) - 2  # <bos> ... <eos>
            if words > MAX_TOKENS - 2:
                shown = prompt if len(prompt) <= 60 else prompt[:57] + "..."
                raise ValueError(f"prompt {shown!r} has {words} words; the ShapeBench model reads at most "
                                 f"{MAX_TOKENS - 2} (its grammar's longest prompt)")
        return [False] * len(prompts)

    # ------------------------------------------------------------------ the per-batch interface
    @property
    def scheduler(self) -> Any:
        if self._scheduler is None:
            from diffusers import DDIMScheduler, EulerDiscreteScheduler

            if self._net is not None:
                base = self._net.scheduler
            else:  # validate: the scheduler's config alone, no weights
                folder = os.path.join(self._folder(), "scheduler")
                if not os.path.isfile(os.path.join(folder, "scheduler_config.json")):
                    raise ModelLoadError(f"cannot load ShapeBench model {self.model!r}: "
                                         f"{os.path.join(folder, 'scheduler_config.json')} is missing; export the "
                                         "model folder again")
                base = DDIMScheduler.from_pretrained(folder, local_files_only=True)
            if self.scheduler_override == "euler":
                base = EulerDiscreteScheduler.from_config(base.config)
            elif self.scheduler_override == "ddim":
                base = DDIMScheduler.from_config(base.config)
            self._scheduler = base
        return self._scheduler

    def encode(self, prompts: Sequence[str]) -> ShapeBenchConditioning:
        prompts = tuple(prompts)
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError("prompts must be a non-empty sequence of strings")
        net = self.network
        states = net.encode([self.negative_prompt] * len(prompts) + list(prompts)).to(self.compute_dtype())
        return ShapeBenchConditioning(prompts=prompts, uncond=states[: len(prompts)], cond=states[len(prompts):])

    def latent_shape(self) -> tuple[int, ...]:
        size = self._image_size_hint()
        return (3, size, size)

    def latent_draw_dtype(self) -> torch.dtype:
        return torch.float32

    def denoiser(self, cond: ShapeBenchConditioning, perturbation: dict[str, Any] | None = None) -> ShapeBenchDenoiser:
        if perturbation is not None:
            raise ValueError(f"the shapebench family provides no perturbed branch ({self.no_perturbation_reason}); "
                             f"got perturbation {perturbation!r}")
        return ShapeBenchDenoiser(self, cond)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return ((latents.float() + 1.0) / 2.0).clamp(0.0, 1.0)
