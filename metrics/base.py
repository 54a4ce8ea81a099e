"""The metric contract: a torchmetrics ``Metric`` whose ``update`` also returns per-sample values.

Each score is a small :class:`SampleMetric` subclass over a scorer that can be tested alone. ``update`` takes a batch
of media (float in [0, 1]: images ``(B, 3, H, W)``, videos ``(B, F, 3, H, W)``), the prompts and the prompt
metadata, accumulates the running sums (synced across ranks by torchmetrics) and returns the per-sample columns for
the Parquet rows. ``compute()`` is collective under DDP: every rank must call it.

Heavy scorer weights are loaded lazily (``load(device)``, once per process) and kept out of the module registry, so
they never end up in ``state_dict`` or in a Lightning checkpoint, and Lightning's precision plugins never cast them.
"""

from __future__ import annotations

import functools
from abc import abstractmethod
from typing import Any, Callable, ClassVar, Sequence

import torch
from torchmetrics import Metric


class SampleMetric(Metric):
    """Base class of every zeta_eval score.

    Subclasses set ``name`` (the primary column), optionally ``tags`` (for per-tag accuracy, e.g. the six GenEval
    tasks, read from ``metadata[i]["tag"]``) and implement :meth:`score`.
    """

    name: ClassVar[str] = ""
    media_kind: ClassVar[str] = "image"  # "image" | "video"
    tags: ClassVar[tuple[str, ...]] = ()
    higher_is_better: ClassVar[bool] = True
    is_differentiable: ClassVar[bool] = False
    full_state_update: ClassVar[bool] = False

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        if self.tags:
            n = len(self.tags)
            self.add_state("tag_total", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state("tag_count", torch.zeros(n, dtype=torch.long), dist_reduce_fx="sum")

    # torchmetrics' wrapper discards update's return value; keep its bookkeeping and pass the value through
    def _wrap_update(self, update: Callable) -> Callable:
        box: dict[str, Any] = {}

        def capture(*args: Any, **kwargs: Any) -> None:
            box["value"] = update(*args, **kwargs)

        wrapped = super()._wrap_update(capture)

        @functools.wraps(update)
        def returning(*args: Any, **kwargs: Any) -> Any:
            wrapped(*args, **kwargs)
            return box.pop("value", None)

        return returning

    # ------------------------------------------------------------------ to implement
    def load(self, device: torch.device | str) -> None:
        """Load scorer weights onto ``device`` (fp16 on GPU). Idempotent; a no-op for weight-free metrics."""

    @abstractmethod
    def score(self, media: torch.Tensor, prompts: Sequence[str],
              metadata: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Per-sample columns ``{column: (B,) tensor}``; must include ``self.name``."""

    def conventions(self) -> dict[str, Any]:
        """How the numbers were made (model ids, version, scale, ...); recorded in every row."""
        return {}

    # ------------------------------------------------------------------ torchmetrics
    def update(self, media: torch.Tensor, prompts: Sequence[str],
               metadata: Sequence[dict[str, Any]] | None = None) -> dict[str, torch.Tensor]:
        metadata = list(metadata) if metadata is not None else [{} for _ in prompts]
        if len(prompts) != media.shape[0] or len(metadata) != media.shape[0]:
            raise ValueError(f"{self.name}: {media.shape[0]} media, {len(prompts)} prompts, {len(metadata)} metadata")
        values = self.score(media, prompts, metadata)
        primary = values[self.name].detach().to(self.total.device, torch.float64)
        finite = torch.isfinite(primary)
        self.total += primary[finite].sum()
        self.count += finite.sum()
        if self.tags:
            for k, meta in enumerate(metadata):
                tag = meta.get("tag")
                if tag in self.tags and bool(finite[k]):
                    j = self.tags.index(tag)
                    self.tag_total[j] += primary[k]
                    self.tag_count[j] += 1
        return {k: v.detach().cpu() for k, v in values.items()}

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
