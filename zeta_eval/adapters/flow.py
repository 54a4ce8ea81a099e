"""What the flow-matching transformer families (``sd3``, ``flux``, ``wan``) share: the flow-matching Euler scheduler
(with its shift, or its resolution-dependent shift ``mu``), the timestep label, and what ``describe()`` records.

These models predict a velocity ``v = eps - x0`` on the straight path ``x = (1 - sigma) x0 + sigma eps``; the solver
is ``samplers.flow_solver`` over the scheduler's own shifted sigmas, which is exactly ``scheduler.step`` (one Euler
step ``x + (sigma_next - sigma) v``). A shipped multistep scheduler (Wan's UniPC) is converted to flow-matching Euler
with the same shift, and the conversion is recorded, as DDPM -> DDIM is for Hunyuan-DiT.

None of them provides SEG's perturbed branch: their attention is joint (MMDiT, FLUX) or 3-D (Wan) attention with
rotary or learned positions and QK-norm after the query projection, where a 2-D query blur is not validated.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import torch

from samplers import LinearSolver, solver_from_scheduler

from .pipeline_adapter import PipelineAdapter, _plain

log = logging.getLogger(__name__)

#: flow-matching scheduler config fields recorded in describe() (those that change the sigmas)
FLOW_SCHEDULER_FIELDS = ("num_train_timesteps", "shift", "use_dynamic_shifting", "base_shift", "max_shift",
                         "base_image_seq_len", "max_image_seq_len", "invert_sigmas", "shift_terminal",
                         "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "time_shift_type",
                         "stochastic_sampling")
FLOW_SCHEDULER = "FlowMatchEulerDiscreteScheduler"


def calculate_shift(image_seq_len: int, base_seq_len: int, max_seq_len: int, base_shift: float,
                    max_shift: float) -> float:
    """The dynamic-shifting ``mu`` of an image of ``image_seq_len`` tokens: the line through (base_seq_len,
    base_shift) and (max_seq_len, max_shift), as the SD3 and FLUX pipelines compute it."""
    slope = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return image_seq_len * slope + (base_shift - slope * base_seq_len)


class FlowTransformerAdapter(PipelineAdapter):
    """A diffusers pipeline whose transformer predicts a flow-matching velocity."""

    network_attr = "transformer"
    scheduler_classes = {"flow": FLOW_SCHEDULER}
    default_conversion = "flow"
    size_multiple = 16
    supports_attention_slicing = False
    no_perturbation_reason = ("SEG's query blur is implemented for UNet self-attention over a 2-D token grid; this "
                              "transformer attends jointly over text and image tokens with positional embeddings and "
                              "QK-norm after the query projection, where the blur is not validated")
    #: the ``max_shift`` default of the pipeline's ``calculate_shift`` call (SD3: 1.16, FLUX: 1.15)
    default_max_shift: ClassVar[float] = 1.15

    # ------------------------------------------------------------------ scheduler
    def _first_order_scheduler(self, shipped: Any) -> Any:
        name = type(shipped).__name__
        config = shipped.config
        if name == FLOW_SCHEDULER:
            if config.get("stochastic_sampling", False):
                raise ValueError(f"{self.model}: the scheduler's stochastic_sampling re-draws noise at every step; the "
                                 "samplers need the deterministic flow-matching Euler step")
            return shipped
        if config.get("prediction_type") != "flow_prediction" and not config.get("use_flow_sigmas", False):
            raise ValueError(f"{self.model}: the shipped {name} is not a flow-matching scheduler; the {self.family} "
                             f"adapter runs {FLOW_SCHEDULER} only")
        import diffusers

        shift = float(config.get("flow_shift", config.get("shift", 1.0)))
        converted = getattr(diffusers, FLOW_SCHEDULER)(num_train_timesteps=int(config.num_train_timesteps),
                                                        shift=shift)
        self._scheduler_note = (f"converted {name} -> {FLOW_SCHEDULER} with shift {shift:g} (the shipped {name} is a "
                                "multistep solver, not a first-order one)")
        log.info("%s adapter, %s: %s", self.family, self.model, self._scheduler_note)
        return converted

    def set_timesteps_kwargs(self, num_steps: int) -> dict[str, Any]:
        """What the pipeline passes to ``scheduler.set_timesteps`` besides the step count (``mu`` for dynamic
        shifting, explicit ``sigmas``)."""
        return {"mu": self.dynamic_shift()} if self.scheduler.config.get("use_dynamic_shifting", False) else {}

    def image_seq_len(self) -> int:
        """Image tokens the transformer sees (what the dynamic shift depends on)."""
        raise NotImplementedError

    def dynamic_shift(self) -> float:
        """``mu`` of this resolution, with the scheduler's config and the pipeline's defaults."""
        cfg = self.scheduler.config
        return calculate_shift(self.image_seq_len(), cfg.get("base_image_seq_len", 256),
                               cfg.get("max_image_seq_len", 4096), cfg.get("base_shift", 0.5),
                               cfg.get("max_shift", self.default_max_shift))

    def solver(self, num_steps: int, schedule: Any = "default") -> LinearSolver:
        self._require_loaded()
        if schedule == "ays":
            raise ValueError(f"no AYS schedule is published for the {self.family} family (flow matching)")
        return solver_from_scheduler(self.scheduler, num_steps, schedule, **self.set_timesteps_kwargs(num_steps))

    # ------------------------------------------------------------------ network
    def _flow_timestep(self, t: float, batch: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The timestep as the pipelines pass it: the scheduler's float32 timestep (sigma x 1000) for every row."""
        return torch.full((batch,), float(t), dtype=torch.float32, device=self.device).to(dtype)

    # ------------------------------------------------------------------ provenance
    def describe(self) -> dict[str, Any]:
        info = super().describe()
        if self._loaded:
            cfg = self._scheduler.config
            info["scheduler_config"] = {k: _plain(cfg[k]) for k in FLOW_SCHEDULER_FIELDS if k in cfg}
            if cfg.get("use_dynamic_shifting", False):
                info["scheduler_mu"] = self.dynamic_shift()
        return info


def decode_shifted_image(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] from the latents of a VAE with a scaling and a shift factor (SD 3 and FLUX, as their
    pipelines decode)."""
    z = latents.to(vae.dtype) / vae.config.scaling_factor + vae.config.shift_factor
    image = vae.decode(z, return_dict=False)[0]
    return (image.float() / 2 + 0.5).clamp(0, 1)


def latent_stats(vae: Any, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The VAE config's per-channel ``latents_mean`` and ``latents_std`` shaped to broadcast over ``shape``."""
    channels = len(vae.config.latents_mean)
    view = (1, channels, *([1] * (len(shape) - 2)))
    mean = torch.tensor(vae.config.latents_mean).view(view).to(device, dtype)
    std = torch.tensor(vae.config.latents_std).view(view).to(device, dtype)
    return mean, std
