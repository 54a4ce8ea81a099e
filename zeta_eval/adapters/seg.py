"""Smoothed Energy Guidance's attention perturbation: Gaussian-blurred self-attention queries.

SEG (Hong, arXiv 2408.00760) evaluates the conditional branch a second time with the queries of chosen self-attention
layers blurred by a 2-D Gaussian over the token grid (sigma in grid units; sigma = inf replaces every query by the
mean query). Blurring the queries smooths the attention energy landscape; keys and values are untouched.

The perturbation is installed as a forward hook on the query projection (``attn.to_q``) of each chosen attention
module, so whatever attention processor the model uses (SDPA, sliced attention, xformers) computes the rest
unchanged. The hook rewrites only the rows of the batch that belong to the "perturbed" branch: the denoiser
concatenates the branches along the batch dimension, so branch ``j`` of ``k`` is the j-th of k equal row blocks (a
video UNet folds frames into the batch, which keeps the blocks contiguous). Hooks live only for one network call.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F

#: sigma at or above which the blur is the mean (the SEG reference code's threshold for "infinite" blur)
INFINITE_BLUR = 9999.9
#: shorthands of the SEG reference code for UNet block groups
LAYER_SHORTHANDS = {"mid": "mid_block", "up": "up_blocks", "down": "down_blocks"}
DEFAULT_LAYERS = ("mid_block",)


def check_perturbation(perturbation: dict[str, Any]) -> tuple[float, tuple[str, ...] | None]:
    """Validate a ``{"kind": "seg", "blur_sigma": s, "layers": [...] | None}`` definition."""
    if not isinstance(perturbation, dict) or perturbation.get("kind") != "seg":
        raise ValueError(f"expected a SEG perturbation {{'kind': 'seg', ...}}, got {perturbation!r}")
    sigma = perturbation.get("blur_sigma")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or math.isnan(sigma) or sigma <= 0:
        raise ValueError(f"SEG blur_sigma must be a number > 0 (inf allowed), got {sigma!r}")
    layers = perturbation.get("layers")
    if layers is not None:
        if isinstance(layers, str) or not all(isinstance(x, str) and x.strip() for x in layers) or not layers:
            raise ValueError(f"SEG layers must be null or a non-empty list of module-name prefixes, got {layers!r}")
        layers = tuple(x.strip() for x in layers)
    return float(sigma), layers


def _is_spatial_self_attention(name: str, module: torch.nn.Module) -> bool:
    if not (name.endswith("attn1") and hasattr(module, "to_q") and not getattr(module, "is_cross_attention", False)):
        return False
    # video UNets: temporal attention (over frames) is not a 2-D token grid
    parts = name.split(".")
    return not any(p.startswith("temp_") or p == "transformer_in" for p in parts)


def self_attention_layers(network: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Every spatial self-attention module of a UNet, by its module name."""
    return {n: m for n, m in network.named_modules() if _is_spatial_self_attention(n, m)}


def resolve_layers(network: torch.nn.Module, layers: Sequence[str] | None) -> dict[str, torch.nn.Module]:
    """The self-attention modules under the given module-name prefixes (default: the mid block)."""
    available = self_attention_layers(network)
    chosen: dict[str, torch.nn.Module] = {}
    for spec in layers or DEFAULT_LAYERS:
        prefix = LAYER_SHORTHANDS.get(spec, spec)
        hits = {n: m for n, m in available.items() if n == prefix or n.startswith(prefix + ".")}
        if not hits:
            groups = sorted({".".join(n.split(".")[:2]) for n in available})
            raise ValueError(f"SEG layer {spec!r} matches no self-attention module of this network; use a module-name "
                             f"prefix such as {', '.join(groups)} (or 'mid', 'up', 'down')")
        chosen.update(hits)
    return chosen


def token_grid(num_tokens: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of the token grid of a UNet level: the latent size halved (rounding up) until h * w = num_tokens."""
    h, w = latent_hw
    while h * w > num_tokens:
        h, w = (h + 1) // 2, (w + 1) // 2
    if h * w != num_tokens:
        raise ValueError(f"cannot lay {num_tokens} attention tokens on a grid for a {latent_hw} latent")
    return h, w


def _gaussian_kernel(sigma: float, size: int, device, dtype) -> torch.Tensor:
    # odd kernel spanning about 6 sigma (as in the SEG reference code), no wider than the grid allows for reflection
    width = math.ceil(6 * sigma) + 1 - math.ceil(6 * sigma) % 2
    half = min((width - 1) // 2, size - 1)
    offsets = torch.arange(-half, half + 1, device=device, dtype=torch.float64)
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return (weights / weights.sum()).to(dtype)


def _blur_axis(x: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    half = (kernel.numel() - 1) // 2
    if half == 0:
        return x
    pad = [0, 0, 0, 0]
    pad[0 if dim == -1 else 2] = half
    pad[1 if dim == -1 else 3] = half
    padded = F.pad(x, pad, mode="reflect")
    n = x.shape[dim]
    out = None
    for k in range(kernel.numel()):
        term = kernel[k] * padded.narrow(dim, k, n)
        out = term if out is None else out + term
    return out


def blur_queries(q: torch.Tensor, grid: tuple[int, int], sigma: float) -> torch.Tensor:
    """Blur queries ``q`` (rows, h*w, channels) over their (h, w) token grid with a Gaussian of std ``sigma``."""
    rows, n, ch = q.shape
    h, w = grid
    if sigma >= INFINITE_BLUR:
        return q.mean(dim=1, keepdim=True).expand(rows, n, ch).contiguous()
    img = q.transpose(1, 2).reshape(rows, ch, h, w)
    img = _blur_axis(img, _gaussian_kernel(sigma, h, q.device, q.dtype), dim=-2)
    img = _blur_axis(img, _gaussian_kernel(sigma, w, q.device, q.dtype), dim=-1)
    return img.reshape(rows, ch, n).transpose(1, 2)


@contextmanager
def query_blur(modules: dict[str, torch.nn.Module], sigma: float, branch: int, num_branches: int,
               latent_hw: tuple[int, int]) -> Iterator[None]:
    """Blur the queries of ``modules`` for the rows of branch ``branch`` (of ``num_branches``), for one call."""

    def hook(module, inputs, output):
        rows = output.shape[0]
        if rows % num_branches:
            raise RuntimeError(f"SEG hook: {rows} query rows do not split into {num_branches} branches")
        per = rows // num_branches
        lo, hi = branch * per, (branch + 1) * per
        blurred = blur_queries(output[lo:hi], token_grid(output.shape[1], latent_hw), sigma)
        return torch.cat([output[:lo], blurred, output[hi:]], dim=0)

    handles = [m.to_q.register_forward_hook(hook) for m in modules.values()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
