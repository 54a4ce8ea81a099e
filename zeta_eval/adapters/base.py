"""Model adapters: a diffusers pipeline's own components turned into what the samplers need.

An adapter is built from a config (no weights touched), then ``load(device)`` loads the weights. Per batch the
pipeline calls::

    cond    = adapter.encode(prompts)                      # once per batch, shared by every sampler
    solver  = adapter.solver(num_steps, schedule)          # samplers.LinearSolver
    x_T     = adapter.initial_latents(seeds, solver)       # float32, per-sample CPU generators
    out     = sampler.sample(adapter.denoiser(cond, sampler.perturbation), x_T, solver)
    media   = adapter.decode(out.latents)                  # float32 in [0, 1]: (B, 3, H, W) or (B, F, 3, H, W)

Adapters contain no sampling math; samplers never see a model class.
"""

from __future__ import annotations

import functools
import logging
import os
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Sequence

import torch

from samplers import BRANCHES, LinearSolver, Sampler, solver_from_scheduler

log = logging.getLogger("zeta_eval")

DTYPES = {"float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float32": torch.float32, "fp32": torch.float32, "float": torch.float32}


def parse_dtype(value: str | torch.dtype) -> torch.dtype:
    if isinstance(value, torch.dtype):
        return value
    if value not in DTYPES:
        raise ValueError(f"dtype must be one of float16, bfloat16, float32; got {value!r}")
    return DTYPES[value]


def check_branches(branches: Sequence[str], allowed: Sequence[str] = BRANCHES, family: str | None = None
                   ) -> tuple[str, ...]:
    """``branches`` as a tuple, or a ValueError if it is empty or names a branch outside ``allowed``."""
    branches = tuple(branches)
    if not branches:
        raise ValueError("the denoiser needs at least one branch")
    for b in branches:
        if b not in allowed:
            where = f" for the {family} family" if family else ""
            raise ValueError(f"unknown branch {b!r}{where}; its branches are {tuple(allowed)} (all: {BRANCHES})")
    return branches


def local_folder(ref: str | None) -> str | None:
    """The absolute path of ``ref`` when it names an existing local folder, else None (a hub id)."""
    if not ref:
        return None
    path = os.path.abspath(os.path.expanduser(ref))
    return path if os.path.isdir(path) else None


def weights_reference(ref: str | None) -> str | None:
    """How an identity names weights: a hub id as written; a local folder by the digest of its content
    (``sha256:<hex>``), never by where it lies or what it is called, so that the same model in another clone or on
    another machine is the same model (see :func:`zeta_eval.identity.folder_digest`)."""
    from ..identity import folder_digest

    folder = local_folder(ref)
    return ref if folder is None else f"sha256:{folder_digest(folder)}"


def readable_reference(ref: str) -> str:
    """A hub id, or ``<folder name>@<first 12 digest digits>`` for a local folder: what tables show."""
    reference = weights_reference(ref) or ref
    if not reference.startswith("sha256:"):
        return reference
    folder = local_folder(ref) or ref
    return f"{os.path.basename(folder.rstrip(os.sep)) or 'model'}@{reference[len('sha256:'):][:12]}"


def weight_file_digests(ref: str | None, revision: str | None = None) -> dict[str, str]:
    """``{relative path: SHA-256}`` of the weight files of a local folder or of a hub repository's cached snapshot
    (the hub cache names weight files by their SHA-256: nothing is read); {} when neither is on this machine."""
    from ..identity import WEIGHT_SUFFIXES, folder_sha256

    folder = local_folder(ref)
    if folder is None and ref:
        try:
            from huggingface_hub import snapshot_download

            folder = snapshot_download(ref, revision=revision, local_files_only=True)
        except Exception as err:  # noqa: BLE001 - provenance only: a repository not in the cache has no digests
            log.debug("no cached snapshot of %s: %s", ref, err)
            return {}
    return folder_sha256(folder, WEIGHT_SUFFIXES) if folder else {}


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message is one line that says what to do."""


def hub_error_message(model: str, err: BaseException) -> str:
    """One actionable line for a model that cannot be loaded (usually: offline and not in the cache)."""
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface")), "hub")
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    why = "the hub is unreachable (HF_HUB_OFFLINE is set)" if offline else f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return (f"cannot load model {model!r}: {why}; looked in the cache {cache}. Download it on a machine with hub "
            f"access (huggingface-cli download {model}) or set the adapter's `model` to a local folder.")


class ModelAdapter(ABC):
    """Base class of the model families.

    Args:
        model: hub id or local folder of a diffusers pipeline.
        revision: hub revision (branch, tag or commit); recorded in every row.
        dtype: weight dtype on GPU: float16, bfloat16 or float32 (CPU always runs float32).
        scheduler: ``None`` keeps the pipeline's scheduler; ``"ddim" | "euler" | "flow"`` converts its config to that
            first-order scheduler (the solver needs one of DDIM, Euler or flow matching).
        negative_prompt: text of the unconditional branch ("" = the pipeline's own default for no negative prompt).
        height, width: output size (None = the model's default).
    """

    family: ClassVar[str] = ""
    #: AYS table for schedule "ays" (None: AYS not available for this family)
    ays_family: ClassVar[str | None] = None
    is_video: ClassVar[bool] = False
    #: perturbation kinds the denoiser can provide as the "perturbed" branch (e.g. {"seg"})
    perturbations: ClassVar[frozenset[str]] = frozenset()
    #: why this family provides no perturbed branch (shown when a sampler that needs one is refused)
    no_perturbation_reason: ClassVar[str] = ""
    #: the denoising network is a 2D convolutional UNet: channels_last speeds its convolutions up on CUDA
    conv_unet: ClassVar[bool] = False

    def __new__(cls, *args: Any, **kwargs: Any) -> "ModelAdapter":
        """Refuse a family that lacks a hook, in one line naming every missing one."""
        missing = sorted(getattr(cls, "__abstractmethods__", ()))
        if missing:
            raise TypeError(f"the {cls.__name__} adapter does not implement {', '.join(missing)} (abstract hooks that "
                            "every model family implements)")
        return super().__new__(cls)

    def __init__(self, model: str, revision: str | None = None, dtype: str = "float16",
                 scheduler: str | None = None, negative_prompt: str = "",
                 height: int | None = None, width: int | None = None):
        if not model or not isinstance(model, str):
            raise ValueError("adapter `model` must be a hub id or a local folder")
        self.model = model
        self.revision = revision
        self.dtype_name = str(dtype)
        self.dtype = parse_dtype(dtype)
        if scheduler not in (None, "ddim", "euler", "flow"):
            raise ValueError(f"adapter scheduler must be null, 'ddim', 'euler' or 'flow'; got {scheduler!r}")
        self.scheduler_override = scheduler
        self.negative_prompt = negative_prompt
        self.height = height
        self.width = width
        self.device = torch.device("cpu")
        self._loaded = False
        self._compiled: Any = None  # the torch.compile'd denoising network (model.compile)

    # ------------------------------------------------------------------ config-time checks
    def check_sampler(self, sampler: Sampler) -> None:
        """Raise ValueError (at config time) if this family cannot run ``sampler``."""
        pert = sampler.perturbation
        if pert is not None and pert.get("kind") not in self.perturbations:
            reason = f": {self.no_perturbation_reason}" if self.no_perturbation_reason else ""
            raise ValueError(f"sampler {sampler.name!r} needs a {pert.get('kind')!r} perturbed branch, which the "
                             f"{self.family or type(self).__name__} adapter does not provide "
                             f"(supported: {sorted(self.perturbations) or 'none'}){reason}")

    def check_compile(self) -> None:
        """Raise ValueError (at config time) if ``model.compile`` cannot compile this adapter's network."""
        if type(self).denoising_network is ModelAdapter.denoising_network:
            raise ValueError(f"model.compile: the {self.family or type(self).__name__} adapter does not expose a "
                             "denoising network to compile")

    # ------------------------------------------------------------------ loading
    @property
    def loaded(self) -> bool:
        return self._loaded

    @abstractmethod
    def load(self, device: torch.device | str) -> None:
        """Load weights and move them to ``device`` (fp32 on CPU)."""

    def compute_dtype(self) -> torch.dtype:
        """The dtype the network runs in: the configured dtype on GPU, float32 on CPU."""
        return self.dtype if self.device.type == "cuda" else torch.float32

    @functools.cached_property
    def model_name(self) -> str:
        """The model as identities name it: the hub id, or ``sha256:<content digest>`` for a local folder."""
        return weights_reference(self.model) or self.model

    @functools.cached_property
    def model_label(self) -> str:
        """The model as tables show it: the hub id, or ``<folder name>@<digest prefix>`` for a local folder."""
        return readable_reference(self.model)

    @property
    def model_path(self) -> str | None:
        """Where a local model lies (provenance only: never part of an identity); None for a hub id."""
        return local_folder(self.model)

    def weight_digests(self) -> dict[str, str]:
        """``{"model/<file>": SHA-256}`` of the weight files this adapter loads (provenance for every row)."""
        return {f"model/{k}": v for k, v in weight_file_digests(self.model, self.revision).items()}

    def describe(self) -> dict[str, Any]:
        """The model inputs that determine an output (weights, revision, dtype, negative prompt, size, ...): part of
        every sample id, and recorded in every row. Memory options and local paths are not part of it."""
        return {"model": self.model_name, "model_revision": self.revision, "family": self.family,
                "dtype": str(self.compute_dtype()).replace("torch.", ""), "negative_prompt": self.negative_prompt,
                "height": self.height, "width": self.width}

    def prompt_truncated(self, prompts: Sequence[str]) -> list[bool]:
        """Per prompt: does the text encoder cut it (the pipeline truncates to its tokenizer's maximum length)?
        A family whose encoder cannot truncate raises ValueError naming the prompt instead."""
        return [False] * len(prompts)

    # ------------------------------------------------------------------ compilation (model.compile)
    def denoising_network(self) -> torch.nn.Module:
        """The UNet or transformer the denoiser calls (what ``model.compile`` compiles); families that have one
        override this and call :attr:`compute_network`."""
        raise NotImplementedError

    @property
    def compute_network(self) -> Any:
        """What the denoiser calls: the compiled network after :meth:`compile_network`, else the network itself."""
        return self._compiled if self._compiled is not None else self.denoising_network()

    def compile_network(self, mode: str = "default", backend: str = "inductor",
                        channels_last: bool | None = None) -> dict[str, Any]:
        """``torch.compile`` the denoising network (after :meth:`load`); returns the settings used.

        The module itself is left untouched (the pipeline's own ``__call__``, and another adapter sharing the
        pipeline, still run it eagerly); the compiled wrapper shares its parameters. ``channels_last`` (None: on for a
        2D UNet on CUDA) converts the network's weights to that memory format first, in place. Compilation happens at
        the first call for each input shape.
        """
        self.check_compile()
        if backend not in torch.compiler.list_backends(exclude_tags=()):
            raise ValueError(f"model.compile: unknown backend {backend!r}; torch offers "
                             f"{', '.join(torch.compiler.list_backends(exclude_tags=()))}")
        network = self.denoising_network()
        if channels_last is None:
            channels_last = self.conv_unet and self.device.type == "cuda"
        if channels_last:
            network.to(memory_format=torch.channels_last)
        self._compiled = torch.compile(network, mode=mode, backend=backend)
        return {"mode": mode, "backend": backend, "channels_last": bool(channels_last)}

    # ------------------------------------------------------------------ the per-batch interface
    @property
    @abstractmethod
    def scheduler(self) -> Any:
        """The (first-order) diffusers scheduler whose coefficients the solver uses."""

    def solver(self, num_steps: int, schedule: Any = "default") -> LinearSolver:
        if schedule == "ays":
            if self.ays_family is None:
                raise ValueError(f"no AYS schedule is published for the {self.family} family")
            schedule = f"ays:{self.ays_family}"
        return solver_from_scheduler(self.scheduler, num_steps, schedule)

    @abstractmethod
    def encode(self, prompts: Sequence[str]) -> Any:
        """Conditioning for the uncond / cond branches of a batch (opaque to the pipeline)."""

    @abstractmethod
    def latent_shape(self) -> tuple[int, ...]:
        """Shape of one sample's latent (without the batch dimension)."""

    def initial_latents(self, seeds: Sequence[int], solver: LinearSolver) -> torch.Tensor:
        """x_T drawn per sample exactly as the diffusers pipeline draws it for a batch of one with
        ``generator=torch.Generator("cpu").manual_seed(seed)``; returned float32 on the adapter's device."""
        shape = (1, *self.latent_shape())
        draws = [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(s)), dtype=self.latent_draw_dtype())
                 for s in seeds]
        x = torch.cat(draws).to(self.device, torch.float32)
        return x * solver.init_noise_sigma

    def latent_draw_dtype(self) -> torch.dtype:
        """The dtype the pipeline draws its latents in (that of its prompt embeddings)."""
        return self.compute_dtype()

    @abstractmethod
    def denoiser(self, cond: Any, perturbation: dict[str, Any] | None = None):
        """A ``samplers.Denoiser`` bound to ``cond``."""

    @abstractmethod
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Media in [0, 1], float32: images (B, 3, H, W) or videos (B, F, 3, H, W)."""
