"""Image preprocessing on tensors, reproducing what each reference does to a saved PNG.

The references score image *files*: 8-bit RGB, resized with PIL (or with torchvision on the tensor for HPS v2),
cropped with torchvision's or transformers' centre-crop rounding, then normalised. Media here arrive as float
tensors in [0, 1] on the scoring device, so each step is done on the tensor:

- :func:`to_uint8_levels` rounds to the 256 levels a PNG would hold (``round(x * 255) / 255``, as diffusers'
  ``numpy_to_pil`` does);
- :func:`resize` is bicubic with antialiasing, which is PIL's kernel (a = -0.5) for both up- and down-sampling;
  ``pil=True`` clamps and re-quantises the result as PIL's uint8 output would be;
- :func:`center_crop` takes the reference's rounding of the offset (torchvision rounds half to even, transformers'
  CLIP image processor floors);
- :func:`resize_longest_and_pad` is HPS v2's ``ResizeMaxSize``.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

CropRounding = Literal["torchvision", "floor"]


def to_uint8_levels(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] rounded to the 256 levels of an 8-bit image (still float, still in [0, 1])."""
    return (images.clamp(0, 1) * 255).round() / 255


def resize(images: torch.Tensor, size: tuple[int, int], *, pil: bool = False) -> torch.Tensor:
    """Bicubic resize of ``(N, C, H, W)`` float images to ``size = (h, w)`` with PIL's antialiased kernel."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    out = F.interpolate(images.float(), size=size, mode="bicubic", align_corners=False, antialias=True)
    if pil:  # PIL returns uint8: clamped and rounded
        out = to_uint8_levels(out)
    return out.to(images.dtype)


def shortest_edge_size(height: int, width: int, shortest: int) -> tuple[int, int]:
    """Output size of a shortest-edge resize (torchvision ``Resize(int)`` and transformers agree: the long side is
    truncated, ``int(shortest * long / short)``)."""
    if height <= width:
        return shortest, int(shortest * width / height)
    return int(shortest * height / width), shortest


def center_crop(images: torch.Tensor, size: tuple[int, int], rounding: CropRounding = "torchvision") -> torch.Tensor:
    """Centre crop ``(N, C, H, W)`` to ``size``; the offset is ``round((H - h) / 2)`` (torchvision, half to even) or
    ``(H - h) // 2`` (transformers)."""
    height, width = images.shape[-2:]
    crop_h, crop_w = size
    if crop_h > height or crop_w > width:
        raise ValueError(f"center_crop: crop {size} larger than image {(height, width)}")
    if rounding == "torchvision":
        top, left = int(round((height - crop_h) / 2.0)), int(round((width - crop_w) / 2.0))
    elif rounding == "floor":
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
    else:
        raise ValueError(f"center_crop: unknown rounding {rounding!r}")
    return images[..., top:top + crop_h, left:left + crop_w]


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    mean_t = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    return (images - mean_t) / std_t


def clip_preprocess(images: torch.Tensor, *, resize_to: int, crop_to: int, mean: Sequence[float] = OPENAI_CLIP_MEAN,
                    std: Sequence[float] = OPENAI_CLIP_STD, rounding: CropRounding = "torchvision",
                    quantize: bool = True) -> torch.Tensor:
    """The CLIP recipe: 8-bit levels, shortest edge to ``resize_to`` (bicubic, PIL-like), centre crop, normalise."""
    x = to_uint8_levels(images) if quantize else images
    x = resize(x.float(), shortest_edge_size(*x.shape[-2:], resize_to), pil=True)
    x = center_crop(x, (crop_to, crop_to), rounding)
    return normalize(x, mean, std)


def resize_longest_and_pad(images: torch.Tensor, size: int, fill: float = 0.0) -> torch.Tensor:
    """HPS v2's ``ResizeMaxSize``: scale so the longer side is ``size`` (each side ``round(side * scale)``, Python
    rounding), bicubic on the tensor (torchvision's antialiased resize, no re-quantisation), then pad the short side
    to ``size`` with ``fill`` split as ``pad // 2`` before and the rest after.

    The reference skips resize *and* pad when the longer side already equals ``size``; a non-square image of that
    size then fails in the ViT, so here it is padded like every other size.
    """
    height, width = images.shape[-2:]
    scale = size / float(max(height, width))
    new_h, new_w = round(height * scale), round(width * scale)
    x = resize(images.float(), (new_h, new_w), pil=False)
    pad_h, pad_w = size - new_h, size - new_w
    return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=fill)
