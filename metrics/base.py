"""The metric contract: per-sample scores, and a torchmetrics ``Metric`` that accumulates them.

Each score is a small :class:`SampleMetric` subclass over a scorer that can be tested alone::

    values = metric.score(media, prompts, metadata)   # per-sample columns {name: (B,) tensor}; no state changes
    metric.update(values, metadata)                    # adds them to the running sums (synced across ranks)
    metric.compute()                                   # {name: mean, name/<tag>: mean}; collective under DDP

``score`` takes a batch of media (float in [0, 1]: images ``(B, 3, H, W)``, videos ``(B, F, 3, H, W)``), the prompts
and the prompt metadata, and returns the columns of the Parquet rows; ``update`` only accumulates, so a resumed run
adds the stored scores of earlier runs the same way. Only torchmetrics' public ``update``/``compute``/``reset`` are
used. ``compute()`` is collective under DDP: every rank must call it.

Heavy scorer weights are loaded lazily (``load(device)``, once per process through :func:`metrics.weights.cached`)
and kept out of the module registry, so they never end up in ``state_dict`` or in a Lightning checkpoint, and
Lightning's precision plugins never cast them. They run in fp16 on GPU and fp32 on CPU unless ``dtype`` is given.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar, Mapping, Sequence

import torch
from torchmetrics import Metric

from samplers.registry import Registry, UnknownNameError

from .weights import WeightsNotFoundError

__all__ = ["SampleMetric", "WeightsNotFoundError", "METRICS", "UnknownMetricError"]


class _Held:
    """Loaded scorer networks, outside the module registry.

    A deep copy or a pickle (torchmetrics clones metrics; spawn pickles them) gets an empty holder: the copy reloads
    from the process cache on first use instead of duplicating multi-GB weights.
    """

    def __init__(self) -> None:
        self.device: torch.device | None = None
        self.models: dict[str, Any] = {}

    def __deepcopy__(self, memo: dict) -> "_Held":
        return _Held()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()


class SampleMetric(Metric):
    """Base class of every zeta_eval score.

    Subclasses set ``name`` (the primary column), ``media_kind``, optionally ``tags`` (for per-tag accuracy, e.g.
    the six GenEval tasks, read from ``metadata[i]["tag"]``) and ``min_frames`` (videos), and implement
    :meth:`score_batch`; those with weights implement :meth:`_load` (called once per device by :meth:`load`).
    """

    name: ClassVar[str] = ""
    media_kind: ClassVar[str] = "image"  # "image" | "video"
    tags: ClassVar[tuple[str, ...]] = ()
    min_frames: ClassVar[int] = 1
    higher_is_better: ClassVar[bool] = True
    is_differentiable: ClassVar[bool] = False
    full_state_update: ClassVar[bool] = False

    def __init__(self, *, dtype: torch.dtype | str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        if self.tags:
            n = len(self.tags)
            self.add_state("tag_total", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state("tag_count", torch.zeros(n, dtype=torch.long), dist_reduce_fx="sum")
        self._dtype_override = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        self._held = _Held()

    # ------------------------------------------------------------------ loading
    def scoring_dtype(self, device: torch.device | str) -> torch.dtype:
        """fp16 on GPU, fp32 elsewhere, unless the constructor's ``dtype`` says otherwise."""
        if self._dtype_override is not None:
            return self._dtype_override
        return torch.float16 if torch.device(device).type == "cuda" else torch.float32

    def load(self, device: torch.device | str) -> None:
        """Load scorer weights onto ``device`` (fp16 on GPU). Idempotent; a no-op for weight-free metrics."""
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if self._held.device != device:
            self._held.models = self._load(device, self.scoring_dtype(device))
            self._held.device = device

    def _load(self, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        """The loaded networks for ``device``/``dtype`` (through :func:`metrics.weights.cached`); none by default."""
        return {}

    @property
    def models(self) -> dict[str, Any]:
        return self._held.models

    def precision(self) -> str:
        """The dtype the networks were loaded in (``"float16"`` on GPU by default), for :meth:`conventions`."""
        if self._held.device is None:
            return "not loaded"
        return str(self.scoring_dtype(self._held.device)).removeprefix("torch.")

    # ------------------------------------------------------------------ to implement
    @abstractmethod
    def score_batch(self, media: torch.Tensor, prompts: Sequence[str],
                    metadata: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Per-sample columns ``{column: (B,) tensor}``; must include ``self.name``. Called by :meth:`score` with
        checked media on the weights' device, one metadata dict per prompt, weights loaded, under ``no_grad``."""

    def conventions(self) -> dict[str, Any]:
        """How the numbers were made (model ids, version, scale, ...); recorded in every row."""
        return {}

    # ------------------------------------------------------------------ torchmetrics
    def _check_media(self, media: torch.Tensor) -> None:
        if not isinstance(media, torch.Tensor) or not media.is_floating_point():
            got = f"a {media.dtype} tensor" if isinstance(media, torch.Tensor) else type(media).__name__
            raise TypeError(f"{self.name}: media must be a float tensor in [0, 1], got {got}")
        if self.media_kind == "image":
            if media.ndim == 5:
                raise ValueError(f"{self.name} scores images (B, 3, H, W) but got a video batch {tuple(media.shape)}; "
                                 "pick frames explicitly or use a video metric")
            if media.ndim != 4 or media.shape[1] != 3:
                raise ValueError(f"{self.name}: images must be (B, 3, H, W), got {tuple(media.shape)}")
        elif self.media_kind == "video":
            if media.ndim != 5 or media.shape[2] != 3:
                raise ValueError(f"{self.name} scores videos (B, F, 3, H, W), got {tuple(media.shape)}")
            if media.shape[1] < self.min_frames:
                raise ValueError(f"{self.name} needs at least {self.min_frames} frames per video, "
                                 f"got {media.shape[1]}")
        else:
            raise ValueError(f"{self.name}: unknown media_kind {self.media_kind!r}")
        if media.numel():
            low, high = torch.aminmax(media.detach())
            if low < -1e-3 or high > 1 + 1e-3:
                raise ValueError(f"{self.name}: media must be in [0, 1], got values in "
                                 f"[{low.item():.3g}, {high.item():.3g}]")

    # ------------------------------------------------------------------ score, then accumulate
    def score(self, media: torch.Tensor, prompts: Sequence[str],
              metadata: Sequence[dict[str, Any]] | None = None) -> dict[str, torch.Tensor]:
        """Per-sample columns ``{column: (B,) tensor}`` (on the CPU) of a batch. Checks the media, loads the weights
        once; the running sums are left as they are (:meth:`update` adds the values)."""
        self._check_media(media)
        metadata = list(metadata) if metadata is not None else [{} for _ in prompts]
        if len(prompts) != media.shape[0] or len(metadata) != media.shape[0]:
            raise ValueError(f"{self.name}: {media.shape[0]} media, {len(prompts)} prompts, {len(metadata)} metadata")
        self.load(media.device)
        with torch.no_grad():
            values = self.score_batch(media, prompts, metadata)
        return {k: v.detach().cpu() for k, v in values.items()}

    def update(self, values: Mapping[str, torch.Tensor] | torch.Tensor,
               metadata: Sequence[dict[str, Any]] | None = None) -> None:
        """Add per-sample primary scores to the running sums that :meth:`compute` reduces: the columns
        :meth:`score` returned, or the primary values alone (a resumed run adds the stored scores of earlier runs,
        so that its summary covers every sample of the task). Non-finite values are left out; ``metadata`` (one
        dict per value) gives the tags."""
        primary = values[self.name] if isinstance(values, Mapping) else values
        primary = primary.detach().to(self.total.device, torch.float64)
        finite = torch.isfinite(primary)
        self.total += primary[finite].sum()
        self.count += finite.sum()
        if self.tags:
            if metadata is None or len(metadata) != len(primary):
                raise ValueError(f"{self.name}: per-tag sums need one metadata dict per value")
            for k, meta in enumerate(metadata):
                tag = meta.get("tag")
                if tag in self.tags and bool(finite[k]):
                    j = self.tags.index(tag)
                    self.tag_total[j] += primary[k]
                    self.tag_count[j] += 1

    def compute(self) -> dict[str, float]:
        """``{name: mean}``; with tags also ``{name/<tag>: mean}`` and ``name`` = unweighted mean over tags seen."""
        out: dict[str, float] = {}
        mean = (self.total / self.count).item() if self.count > 0 else float("nan")
        if self.tags:
            per = {t: (self.tag_total[j] / self.tag_count[j]).item() for j, t in enumerate(self.tags) if self.tag_count[j] > 0}
            out.update({f"{self.name}/{t}": v for t, v in per.items()})
            mean = sum(per.values()) / len(per) if per else float("nan")
        out[self.name] = mean
        return out


class UnknownMetricError(UnknownNameError):
    """A metric name that is not registered; the message lists them all."""


#: every metric by name, each module imported when first used; plugins add theirs through the ``zeta_eval.metrics``
#: entry-point group
METRICS: Registry[type[SampleMetric]] = Registry("metric", SampleMetric, {
    "hpsv2": "metrics.hpsv2:HPSv2",
    "pickscore": "metrics.pickscore:PickScore",
    "image_reward": "metrics.image_reward:ImageReward",
    "aesthetic": "metrics.aesthetic:Aesthetic",
    "clip_score": "metrics.clip_score:ClipScore",
    "geneval": "metrics.geneval:GenEval",
    "frame_lpips": "metrics.frame_consistency:FrameLPIPS",
    "frame_ssim": "metrics.frame_consistency:FrameSSIM",
    "chscore_flow": "metrics.chscore:CHScoreFlow",
    "mtscore_clip": "metrics.mtscore:MTScoreCLIP",
    "shapebench": "metrics.shapebench:ShapeBenchScore",
}, group="zeta_eval.metrics", unknown_error=UnknownMetricError)
