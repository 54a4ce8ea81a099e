"""The small regression heads that sit on top of an embedding (LAION aesthetic v2, ImageReward).

Both references use the same layout, a stack of linear layers with dropout between them and no activation, so the
head is an affine map of its input; the keys are ``layers.{0,2,4,6,7}.{weight,bias}``.
"""

from __future__ import annotations

import torch
from torch import nn

from .weights import WeightsMismatchError, load_strictly


class RewardMLP(nn.Module):
    """``Linear(d, 1024) → Dropout(.2) → Linear(1024, 128) → Dropout(.2) → Linear(128, 64) → Dropout(.1) →
    Linear(64, 16) → Linear(16, 1)``, no activations."""

    def __init__(self, input_size: int):
        super().__init__()
        self.input_size = input_size
        self.layers = nn.Sequential(
            nn.Linear(input_size, 1024), nn.Dropout(0.2),
            nn.Linear(1024, 128), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor], *, metric: str = "reward head",
                        source: str = "the head's state dict") -> "RewardMLP":
        """A head loaded strictly from ``layers.*`` tensors (the input size is read off the first layer)."""
        if "layers.0.weight" not in state_dict:
            raise WeightsMismatchError(metric, source, missing=["layers.0.weight"],
                                       unexpected=sorted(state_dict)[:5])
        head = cls(state_dict["layers.0.weight"].shape[1])
        return load_strictly(head, state_dict, metric=metric, source=source)
