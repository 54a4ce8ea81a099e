"""What every diffusers-pipeline adapter shares: loading, scheduler handling, memory options, the batched denoiser.

A family subclass names the pipeline class it loads (``pipeline_class``) and implements five small pieces with the
pipeline's own methods (abstract here: a family that lacks one fails at construction, naming it):

- ``_encode(prompts)``: the uncond / cond network kwargs of a batch;
- ``_network(x, t, kwargs)``: one call of the UNet or transformer;
- ``_decode(latents)``: media in [0, 1];
- ``_default_size()``: the model's own (height, width);
- ``latent_shape()``: one sample's latent shape.

Everything else (one batched call for all requested branches, the SEG hook, dtype casts, the timestep tensor,
errors) lives here once.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import torch

from metrics.weights import reading_weights
from samplers import BRANCHES
from samplers.solvers import SUPPORTED_SCHEDULERS

from . import seg as seg_hook

from .base import ModelAdapter, ModelLoadError, check_branches, hub_error_message

log = logging.getLogger(__name__)

OFFLOAD_MODES = ("none", "model")
#: scheduler config fields recorded in describe() (those that change the solver's coefficients)
SCHEDULER_FIELDS = ("prediction_type", "timestep_spacing", "steps_offset", "num_train_timesteps", "beta_schedule",
                    "beta_start", "beta_end", "set_alpha_to_one", "rescale_betas_zero_snr", "snr_shift_scale",
                    "use_karras_sigmas", "final_sigmas_type", "interpolation_type", "clip_sample", "thresholding")


@dataclass
class Conditioning:
    """Network kwargs of the uncond and cond branches of one batch (each tensor has the batch first).

    Encoded once per batch and shared by every sampler; the ``perturbed`` branch reuses ``cond``.
    """

    prompts: tuple[str, ...]
    uncond: dict[str, torch.Tensor]
    cond: dict[str, torch.Tensor]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return len(self.prompts)

    def branch(self, name: str) -> dict[str, torch.Tensor]:
        if name == "uncond":
            return self.uncond
        if name in ("cond", "perturbed"):
            return self.cond
        raise ValueError(f"unknown branch {name!r}; branches are {BRANCHES}")

    def batched(self, branches: Sequence[str]) -> dict[str, torch.Tensor]:
        """The kwargs of all requested branches concatenated along the batch, in branch order."""
        parts = [self.branch(b) for b in branches]
        return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


def _is_local_path(model: str) -> bool:
    return os.path.isabs(model) or model.startswith((".", "~")) or model.count("/") > 1 or os.path.isdir(model)


def from_pretrained(cls: Any, model: str, what: str = "model", **kwargs: Any) -> Any:
    """``cls.from_pretrained(model, ...)`` with one actionable line when it cannot be loaded."""
    if _is_local_path(model) and not os.path.isdir(os.path.expanduser(model)):
        raise ModelLoadError(f"cannot load {what} {model!r}: the local folder does not exist (a hub id has the form "
                             "owner/name)")
    # unset hub options and dtype are left out; component kwargs such as safety_checker=None are meant literally
    kwargs = {k: v for k, v in kwargs.items()
              if v is not None or k not in ("revision", "variant", "subfolder", "dtype")}
    try:
        from huggingface_hub.errors import HFValidationError
    except ImportError:  # pragma: no cover - old huggingface_hub
        HFValidationError = ValueError  # noqa: N806
    try:
        if not _is_local_path(model):
            return cls.from_pretrained(os.path.expanduser(model), **kwargs)
        folder = os.path.join(os.path.expanduser(model), kwargs.get("subfolder") or "")
        with reading_weights(folder, f"{what} {model!r}"):  # a truncated or corrupt file: one line naming it
            return cls.from_pretrained(os.path.expanduser(model), **kwargs)
    except (OSError, HFValidationError) as err:
        raise ModelLoadError(hub_error_message(model, err)) from err


def _check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"adapter option {name} must be true or false, got {value!r}")
    return value


def _check_size(name: str, value: Any, multiple: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value % multiple:
        raise ValueError(f"adapter {name} must be a positive multiple of {multiple} (or null for the model's "
                         f"default), got {value!r}")
    return value


class PipelineDenoiser:
    """``denoiser(x, t, branches)``: all requested branches in one batched network call (a ``samplers.Denoiser``)."""

    def __init__(self, adapter: "PipelineAdapter", cond: Conditioning, perturbation: dict[str, Any] | None):
        self.adapter = adapter
        self.cond = cond
        self.perturbation = perturbation
        self._seg: tuple[float, dict[str, torch.nn.Module]] | None = None
        if perturbation is not None:
            self._seg = adapter._seg_setup(perturbation)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, t: float, branches: Sequence[str]) -> tuple[torch.Tensor, ...]:
        branches = check_branches(branches)
        if "perturbed" in branches and self._seg is None:
            raise ValueError("the 'perturbed' branch needs a perturbation; build the denoiser with the sampler's "
                             "perturbation (adapter.denoiser(cond, sampler.perturbation))")
        if branches.count("perturbed") > 1:
            raise ValueError("the 'perturbed' branch may be requested once per call")
        if x.shape[0] != self.cond.batch_size:
            raise ValueError(f"latent batch {x.shape[0]} does not match the conditioning batch {self.cond.batch_size}")
        adapter = self.adapter
        k = len(branches)
        x_in = torch.cat([x] * k).to(adapter.device, adapter.network_dtype)
        kwargs = self.cond.batched(branches)
        if "perturbed" in branches:
            sigma, modules = self._seg  # type: ignore[misc]
            with seg_hook.query_blur(modules, sigma, branches.index("perturbed"), k, tuple(x.shape[-2:])):
                out = adapter._network(x_in, t, kwargs)
        else:
            out = adapter._network(x_in, t, kwargs)
        if out.shape != x_in.shape:
            raise RuntimeError(f"network output {tuple(out.shape)} does not match its input {tuple(x_in.shape)}")
        return tuple(o.to(device=x.device, dtype=x.dtype) for o in out.chunk(k))


class PipelineAdapter(ModelAdapter):
    """A model family built on a diffusers pipeline loaded with ``from_pretrained``.

    Args (besides :class:`ModelAdapter`'s):
        variant: weight-file variant to load (e.g. ``"fp16"``), None for the default files.
        offload: ``"none"`` (everything on the device) or ``"model"`` (diffusers model CPU offload onto the adapter's
            own CUDA device: only the component that runs sits on the GPU; for 24 GB cards).
        vae_tiling, vae_slicing: decode in tiles / one sample (or frame) at a time (VAE memory).
        attention_slicing: sliced attention (UNet families only).
    """

    #: diffusers pipeline class name
    pipeline_class: ClassVar[str] = ""
    #: the denoising network's attribute on the pipeline
    network_attr: ClassVar[str] = "unet"
    #: scheduler overrides: config value -> diffusers scheduler class
    scheduler_classes: ClassVar[dict[str, str]] = {"ddim": "DDIMScheduler", "euler": "EulerDiscreteScheduler"}
    #: conversion applied when the shipped scheduler is not first-order deterministic
    default_conversion: ClassVar[str] = "ddim"
    #: height / width must be multiples of this
    size_multiple: ClassVar[int] = 8
    supports_attention_slicing: ClassVar[bool] = True

    def __init__(self, model: str, revision: str | None = None, dtype: str = "float16",
                 scheduler: str | None = None, negative_prompt: str = "",
                 height: int | None = None, width: int | None = None, variant: str | None = None,
                 offload: str | None = "none", vae_tiling: bool = False, vae_slicing: bool = False,
                 attention_slicing: bool = False):
        if not self.pipeline_class:
            raise TypeError(f"the {type(self).__name__} adapter sets no pipeline_class (the diffusers pipeline it loads)")
        super().__init__(model=model, revision=revision, dtype=dtype, scheduler=scheduler,
                         negative_prompt=negative_prompt, height=height, width=width)
        if scheduler is not None and scheduler not in self.scheduler_classes:
            raise ValueError(f"the {self.family} adapter accepts scheduler null or one of "
                             f"{sorted(self.scheduler_classes)}, got {scheduler!r}")
        if not isinstance(negative_prompt, str):
            raise ValueError(f"negative_prompt must be a string, got {negative_prompt!r}")
        self.height = _check_size("height", height, self.size_multiple)
        self.width = _check_size("width", width, self.size_multiple)
        if variant is not None and not isinstance(variant, str):
            raise ValueError(f"variant must be null or a string such as 'fp16', got {variant!r}")
        self.variant = variant
        offload = "none" if offload is None else offload
        if offload not in OFFLOAD_MODES:
            raise ValueError(f"offload must be one of {OFFLOAD_MODES}, got {offload!r}")
        self.offload = offload
        self.vae_tiling = _check_flag("vae_tiling", vae_tiling)
        self.vae_slicing = _check_flag("vae_slicing", vae_slicing)
        self.attention_slicing = _check_flag("attention_slicing", attention_slicing)
        if self.attention_slicing and not self.supports_attention_slicing:
            raise ValueError(f"attention_slicing is not available for the {self.family} adapter (its transformer "
                             "has no sliced attention); use offload: model and vae_tiling to save memory")
        self.pipe: Any = None
        self._scheduler: Any = None
        self._scheduler_note: str | None = None
        self._vae_note: dict[str, Any] = {}

    # ------------------------------------------------------------------ config-time checks
    def check_sampler(self, sampler) -> None:
        super().check_sampler(sampler)
        if sampler.perturbation is not None:
            seg_hook.check_perturbation(sampler.perturbation)

    # ------------------------------------------------------------------ loading
    def load(self, device: torch.device | str, pipeline: Any = None) -> None:
        """Load the pipeline onto ``device``.

        ``pipeline``: an already-built pipeline of this family to use instead of loading ``model`` (e.g. a model
        built in memory by a benchmark). It is used as given: its own dtype, no UNet / VAE overrides, ``model`` only
        names it in the rows.
        """
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if self.offload == "model" and device.type != "cuda":
            raise ValueError(f"offload: model moves components between the CPU and a CUDA device; the adapter's "
                             f"device is {device}. Use offload: none on CPU.")
        self.device = device
        dtype = self.compute_dtype()
        import diffusers

        pipe_cls = getattr(diffusers, self.pipeline_class)
        if pipeline is None:
            kwargs = {"revision": self.revision, "dtype": dtype, "variant": self.variant, **self._load_kwargs(dtype)}
            pipe = from_pretrained(pipe_cls, self.model, "model", **kwargs)
        elif isinstance(pipeline, pipe_cls):
            pipe = pipeline
        else:
            raise ValueError(f"the {self.family} adapter runs a {self.pipeline_class}, got a "
                             f"{type(pipeline).__name__}")
        self.pipe = pipe
        self._compiled = None  # a compiled network belongs to the pipeline it was made from
        self._scheduler = self._first_order_scheduler(pipe.scheduler)
        pipe.scheduler = self._scheduler
        self._after_load(pipe, dtype)
        pipe.set_progress_bar_config(disable=True)
        if self.offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
        if self.vae_tiling:
            pipe.vae.enable_tiling()
        if self.vae_slicing:
            pipe.vae.enable_slicing()
        if self.attention_slicing:
            pipe.enable_attention_slicing()
        self._loaded = True

    def _load_kwargs(self, dtype: torch.dtype) -> dict[str, Any]:
        """Extra ``from_pretrained`` kwargs (component overrides, pipeline options)."""
        return {}

    def _after_load(self, pipe: Any, dtype: torch.dtype) -> None:
        """Family checks and fixes once the pipeline is loaded (before it is moved to the device)."""

    def _require_loaded(self) -> None:
        if not self._loaded:
            raise RuntimeError(f"the {self.family} adapter is not loaded; call adapter.load(device) first")

    @property
    def network(self) -> torch.nn.Module:
        self._require_loaded()
        return getattr(self.pipe, self.network_attr)

    @property
    def network_dtype(self) -> torch.dtype:
        return self.network.dtype

    def denoising_network(self) -> torch.nn.Module:
        return self.network

    def check_compile(self) -> None:
        super().check_compile()
        if self.offload == "model":  # its hooks move the weights between devices around every call
            raise ValueError("model.compile cannot be combined with offload: model; use offload: none (the 24 GB "
                             "overlay sets model; compile is for cards that hold the whole pipeline)")

    # ------------------------------------------------------------------ scheduler
    def _scheduler_class(self, key: str) -> Any:
        import diffusers

        return getattr(diffusers, self.scheduler_classes[key])

    def _first_order_scheduler(self, shipped: Any) -> Any:
        name = type(shipped).__name__
        key = self.scheduler_override
        if key is None:
            if name in SUPPORTED_SCHEDULERS:
                return shipped
            key = self.default_conversion
        cls = self._scheduler_class(key)
        if type(shipped) is cls:
            return shipped
        # a deterministic affine step: no sample clipping or dynamic thresholding (DDIM's own default clips)
        params = inspect.signature(cls.__init__).parameters
        extra = {k: False for k in ("clip_sample", "thresholding") if k in params}
        converted = cls.from_config(shipped.config, **extra)
        self._scheduler_note = f"converted {name} -> {cls.__name__}" + (
            "" if self.scheduler_override else f" (the shipped {name} is not a first-order deterministic solver)")
        log.info("%s adapter, %s: %s", self.family, self.model, self._scheduler_note)
        return converted

    @property
    def scheduler(self) -> Any:
        self._require_loaded()
        return self._scheduler

    # ------------------------------------------------------------------ per-batch interface
    def _negative(self) -> str | None:
        """The negative prompt as the pipeline takes it: None = the pipeline's own default."""
        return self.negative_prompt or None

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> Conditioning:
        self._require_loaded()
        if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"encode needs a non-empty list of prompt strings, got {prompts!r}")
        prompts = tuple(prompts)
        with _quiet_truncation():  # the pipeline truncates as always; the run warns once and flags the rows
            uncond, cond = self._encode(list(prompts))
        return Conditioning(prompts=prompts, uncond=uncond, cond=cond)

    def _text_limits(self) -> list[tuple[Any, int]]:
        """(tokenizer, maximum tokens) of every text encoder, as ``encode_prompt`` truncates to them."""
        tok = self.pipe.tokenizer
        return [(tok, int(tok.model_max_length))]

    def prompt_truncated(self, prompts: Sequence[str]) -> list[bool]:
        self._require_loaded()
        limits = [(tok, n) for tok, n in self._text_limits() if tok is not None]
        with _quiet_truncation():
            return [any(len(tok(p, truncation=False).input_ids) > n for tok, n in limits) for p in prompts]

    @abstractmethod
    def _encode(self, prompts: list[str]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The network kwargs of the uncond and cond branches of a batch, from the pipeline's own prompt encoding."""

    def denoiser(self, cond: Conditioning, perturbation: dict[str, Any] | None = None) -> PipelineDenoiser:
        self._require_loaded()
        if not isinstance(cond, Conditioning):
            raise ValueError("denoiser needs the Conditioning returned by this adapter's encode()")
        return PipelineDenoiser(self, cond, perturbation)

    @abstractmethod
    def _network(self, x: torch.Tensor, t: float, kwargs: dict[str, torch.Tensor]) -> torch.Tensor:
        """One call of the denoising network (:attr:`compute_network`) on latents ``x`` at timestep ``t``."""

    def _timestep(self, t: float, batch: int | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The timestep label as the pipelines pass it: an integer tensor for integer timesteps (DDIM), else float32."""
        if dtype is None:
            dtype = torch.int64 if float(t).is_integer() else torch.float32
        value = int(t) if dtype == torch.int64 else float(t)
        if batch is None:
            return torch.tensor(value, dtype=dtype, device=self.device)
        return torch.full((batch,), value, dtype=dtype, device=self.device)

    def _seg_setup(self, perturbation: dict[str, Any]) -> tuple[float, dict[str, torch.nn.Module]]:
        if perturbation.get("kind") not in self.perturbations:
            reason = f": {self.no_perturbation_reason}" if self.no_perturbation_reason else ""
            raise ValueError(f"the {self.family} adapter cannot provide a {perturbation.get('kind')!r} perturbed "
                             f"branch{reason}")
        sigma, layers = seg_hook.check_perturbation(perturbation)
        return sigma, seg_hook.resolve_layers(self.network, layers)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        self._require_loaded()
        media = self._decode(latents.to(self.device))
        return media.to(torch.float32)

    @abstractmethod
    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Media in [0, 1] of latents on the device: images (B, 3, H, W) or videos (B, F, 3, H, W)."""

    # ------------------------------------------------------------------ sizes
    def _vae_scale_factor(self) -> int:
        return int(self.pipe.vae_scale_factor)

    @abstractmethod
    def _default_size(self) -> tuple[int, int]:
        """The model's own output (height, width), read from the loaded pipeline."""

    @property
    def resolution(self) -> tuple[int, int]:
        """(height, width) of the output."""
        self._require_loaded()
        dh, dw = self._default_size()
        return self.height or dh, self.width or dw

    # ------------------------------------------------------------------ provenance
    def memory_options(self) -> dict[str, Any]:
        """How the model is placed in memory: not part of :meth:`describe` (the identity of the outputs), since these
        options do not change outputs beyond fp16 noise and a run may resume on a card that needs other ones."""
        return {"offload": self.offload, "vae_tiling": self.vae_tiling, "vae_slicing": self.vae_slicing,
                "attention_slicing": self.attention_slicing}

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update({
            "pipeline": self.pipeline_class,
            "variant": self.variant,
            "negative_prompt": self.negative_prompt,
            "scheduler_override": self.scheduler_override,
        })
        if self._loaded:
            sched = self._scheduler
            info["scheduler"] = type(sched).__name__
            info["scheduler_config"] = {k: _plain(sched.config[k]) for k in SCHEDULER_FIELDS if k in sched.config}
            info["scheduler_note"] = self._scheduler_note
            h, w = self.resolution
            info["height"], info["width"] = h, w
            info.update(self._vae_note)
        return info


@contextlib.contextmanager
def _quiet_truncation():
    """Silence transformers' and diffusers' per-call warnings about over-long prompts (zeta_eval warns once per run
    and flags the rows); other warnings pass."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    levels = diffusers_logging.get_verbosity(), transformers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(levels[0])
        transformers_logging.set_verbosity(levels[1])


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def check_positive_int(name: str, value: Any, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"adapter option {name} must be a positive integer{' or null' if optional else ''}, "
                         f"got {value!r}")
    return value
