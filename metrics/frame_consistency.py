"""Temporal consistency of a video as the mean similarity of consecutive frames.

``frame_lpips`` = 1/(F-1) Σ_t LPIPS(f_t, f_t+1) with LPIPS v0.1 AlexNet (lpips package, inputs mapped from [0, 1] to
[-1, 1]; lower is more consistent); ``frame_ssim`` = the same mean of torchmetrics' SSIM (Gaussian σ = 1.5, 11x11,
k1 = 0.01, k2 = 0.03, per RGB channel, ``data_range = 1.0`` fixed rather than estimated per batch). Frames are scored
at their decoded resolution, as floats before any video encoding. Each video's mean counts once in the average over
videos.

Both networks are small and run in fp32: LPIPS normalises features with eps = 1e-10, which is 0 in fp16, and an
all-zero ReLU feature then gives NaN.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .base import SampleMetric
from .weights import WeightsMismatchError, cached, freeze, load_state_dict_file, load_strictly, resolve_file

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's AlexNet ImageNet weights (download.pytorch.org)
_LPIPS_SLICE_ENDS = (2, 5, 8, 10, 12)  # lpips' AlexNet slices: features[0:2], [2:5], [5:8], [8:10], [10:12]


def consecutive_pairs(videos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, F, C, H, W)`` -> frames ``t`` and ``t + 1``, each ``(B * (F - 1), C, H, W)`` (video-major)."""
    b, f = videos.shape[:2]
    return videos[:, :-1].reshape(b * (f - 1), *videos.shape[2:]), videos[:, 1:].reshape(b * (f - 1), *videos.shape[2:])


def mean_over_pairs(videos: torch.Tensor, pair_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                    chunk: int = 64) -> torch.Tensor:
    """Per video, the mean of ``pair_fn(frame_t, frame_t+1)`` (``(P,)`` per chunk of pairs) over its F - 1 pairs."""
    first, second = consecutive_pairs(videos)
    values = torch.cat([pair_fn(first[i:i + chunk], second[i:i + chunk]).reshape(-1).double()
                        for i in range(0, first.shape[0], chunk)])
    return values.view(videos.shape[0], videos.shape[1] - 1).mean(1)


def lpips_package_head() -> Path:
    """The LPIPS v0.1 AlexNet linear head shipped inside the lpips package."""
    import lpips

    return Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"


def lpips_state_dict(model: torch.nn.Module, alexnet: dict[str, torch.Tensor],
                     head: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A complete state dict for ``lpips.LPIPS(net='alex')`` from torchvision AlexNet weights (``features.i.*``,
    the classifier is unused) and the lpips linear head (``lin{k}.model.1.weight``, also registered as
    ``lins.{k}``)."""
    state = {k: v for k, v in model.state_dict().items() if k.startswith("scaling_layer.")}  # constants
    for key, tensor in alexnet.items():
        if key.startswith("classifier."):
            continue
        section, index, param = key.split(".")
        if section != "features":
            raise WeightsMismatchError("frame_lpips", "the AlexNet weights", unexpected=[key])
        slice_no = next(s for s, end in enumerate(_LPIPS_SLICE_ENDS, 1) if int(index) < end)
        state[f"net.slice{slice_no}.{index}.{param}"] = tensor
    for key, tensor in head.items():
        state[key] = tensor
        state[key.replace("lin", "lins.", 1)] = tensor
    return state


def _build_lpips(alexnet_path: Path, head_path: Path, device: torch.device):
    import lpips

    with warnings.catch_warnings():  # lpips 0.1.4 still passes torchvision's deprecated `pretrained=` argument
        warnings.filterwarnings("ignore", message=r".*(pretrained|weight enum).*deprecated", category=UserWarning)
        model = lpips.LPIPS(pretrained=False, net="alex", version="0.1", pnet_rand=True, verbose=False)
    state = lpips_state_dict(model, load_state_dict_file(alexnet_path), load_state_dict_file(head_path))
    load_strictly(model, state, metric="frame_lpips", source=f"{alexnet_path} + {head_path}")
    return freeze(model, device, torch.float32)


class FrameLPIPS(SampleMetric):
    """``backbone``: torchvision's AlexNet weights (file, folder, or bare name looked up in ``$TORCH_HOME``);
    ``head``: the LPIPS linear head (default: the one inside the lpips package)."""

    name = "frame_lpips"
    media_kind = "video"
    min_frames = 2
    higher_is_better = False

    def __init__(self, backbone: str = ALEXNET_FILE, head: str | None = None, chunk: int = 64, **kwargs: Any):
        super().__init__(**kwargs)
        self.backbone, self.head, self.chunk = backbone, head, chunk

    def _load(self, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        alexnet = resolve_file(self.backbone, ALEXNET_FILE, metric=self.name, option="backbone", torch_cache=True)
        head = lpips_package_head() if self.head is None else resolve_file(self.head, "alex.pth", metric=self.name,
                                                                           option="head")
        model = cached(("lpips", str(alexnet.resolve()), str(head.resolve()), str(device)),
                       lambda: _build_lpips(alexnet, head, device))
        return {"lpips": model}

    def score_batch(self, media: torch.Tensor, prompts: Sequence[str],
                    metadata: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        model = self.models["lpips"]
        return {self.name: mean_over_pairs(media.float(), lambda a, b: model(a, b, normalize=True), self.chunk)}

    def conventions(self) -> dict[str, Any]:
        return {"frame_lpips_net": f"lpips v0.1 alex (backbone {self.backbone}), float32",
                "frame_lpips_input": "[0,1] -> [-1,1], no resize",
                "frame_lpips_pairs": "consecutive frames, mean per video"}


class FrameSSIM(SampleMetric):
    """Mean SSIM of consecutive frames (torchmetrics' SSIM; media are in [0, 1], so ``data_range`` is 1.0)."""

    name = "frame_ssim"
    media_kind = "video"
    min_frames = 2

    data_range = 1.0

    def __init__(self, sigma: float = 1.5, chunk: int = 64, **kwargs: Any):
        super().__init__(**kwargs)
        self.sigma, self.chunk = float(sigma), chunk

    def score_batch(self, media: torch.Tensor, prompts: Sequence[str],
                    metadata: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        from torchmetrics.functional.image import structural_similarity_index_measure as ssim

        def pair_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return ssim(a, b, gaussian_kernel=True, sigma=self.sigma, reduction="none", data_range=self.data_range,
                        k1=0.01, k2=0.03)

        return {self.name: mean_over_pairs(media.float(), pair_ssim, self.chunk)}

    def conventions(self) -> dict[str, Any]:
        return {"frame_ssim_data_range": self.data_range, "frame_ssim_kernel": f"gaussian sigma {self.sigma}",
                "frame_ssim_color": "RGB, per-channel mean (torchmetrics)",
                "frame_ssim_pairs": "consecutive frames, mean per video"}
