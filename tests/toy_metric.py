"""A weight-free metric for pipeline tests: the mean brightness of an image, and whether it exceeds 0.5."""

from typing import Any, Sequence

import torch

from metrics.base import SampleMetric


class Brightness(SampleMetric):
    name = "brightness"
    tags = ("x", "y")

    def __init__(self, threshold: float = 0.5):
        super().__init__()
        self.threshold = threshold
        self.loads = 0

    def load(self, device: Any) -> None:
        self.loads += 1

    def score_batch(self, media: torch.Tensor, prompts: Sequence[str],
                    metadata: Sequence[dict]) -> dict[str, torch.Tensor]:
        value = media.flatten(1).mean(1)
        return {"brightness": value, "brightness_bright": (value > self.threshold).float()}

    def conventions(self) -> dict[str, Any]:
        return {"threshold": self.threshold}


class WeightedBrightness(Brightness):
    """Brightness with a weight file (its bytes are not read): for the scorer digests of the rows."""

    def __init__(self, checkpoint: str, threshold: float = 0.5):
        super().__init__(threshold)
        self.checkpoint = checkpoint
