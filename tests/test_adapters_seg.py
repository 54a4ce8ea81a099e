"""SEG's query blur as a function: grids, kernels, limits (no model)."""

from __future__ import annotations

import math

import pytest
import torch

from zeta_eval.adapters import seg


def test_token_grid_follows_the_unet_downsampling():
    assert seg.token_grid(64, (8, 8)) == (8, 8)
    assert seg.token_grid(16, (8, 8)) == (4, 4)
    assert seg.token_grid(12, (7, 5)) == (4, 3)  # ceil(7/2) x ceil(5/2)
    assert seg.token_grid(4, (7, 5)) == (2, 2)
    with pytest.raises(ValueError, match="grid"):
        seg.token_grid(10, (8, 8))


def test_tiny_sigma_is_the_identity_and_constants_are_fixed_points():
    q = torch.randn(3, 20, 5)
    assert torch.equal(seg.blur_queries(q, (4, 5), 1e-3), q)
    const = torch.full((2, 20, 5), 0.7)
    assert torch.allclose(seg.blur_queries(const, (4, 5), 1.5), const, atol=1e-6)


def test_infinite_sigma_is_the_mean_query():
    q = torch.randn(2, 16, 3)
    out = seg.blur_queries(q, (4, 4), float("inf"))
    assert torch.allclose(out, q.mean(dim=1, keepdim=True).expand_as(q))
    assert torch.allclose(seg.blur_queries(q, (4, 4), 1e5), out)


def test_blur_matches_a_direct_gaussian_convolution():
    torch.manual_seed(0)
    h, w, sigma = 6, 5, 1.0
    q = torch.randn(1, h * w, 2, dtype=torch.float64)
    out = seg.blur_queries(q, (h, w), sigma)
    img = q[0].T.reshape(2, h, w)
    half = 3  # ceil(6 sigma) + 1 -> 7 taps

    def reflect(i, n):
        i = abs(i)
        return 2 * (n - 1) - i if i >= n else i

    # the kernel is clipped to the grid (reflection needs fewer taps than the size): h=6 -> 3 taps a side, w=5 -> 3
    def clipped(n):
        k = min(half, n - 1)
        wts = torch.tensor([math.exp(-0.5 * (j / sigma) ** 2) for j in range(-k, k + 1)], dtype=torch.float64)
        return k, wts / wts.sum()

    kh, wh = clipped(h)
    kw, ww = clipped(w)
    ref = torch.zeros_like(img)
    for y in range(h):
        for x in range(w):
            acc = torch.zeros(2, dtype=torch.float64)
            for a in range(-kh, kh + 1):
                for b in range(-kw, kw + 1):
                    acc += wh[a + kh] * ww[b + kw] * img[:, reflect(y + a, h), reflect(x + b, w)]
            ref[:, y, x] = acc
    assert torch.allclose(out[0].T.reshape(2, h, w), ref, atol=1e-12)


def test_check_perturbation():
    assert seg.check_perturbation({"kind": "seg", "blur_sigma": 10, "layers": None}) == (10.0, None)
    assert seg.check_perturbation({"kind": "seg", "blur_sigma": float("inf"), "layers": ["mid"]})[1] == ("mid",)
    for bad in ({"kind": "pag", "blur_sigma": 1.0}, {"kind": "seg", "blur_sigma": 0},
                {"kind": "seg", "blur_sigma": float("nan")}, {"kind": "seg", "blur_sigma": 1.0, "layers": "mid"},
                {"kind": "seg", "blur_sigma": 1.0, "layers": []}):
        with pytest.raises(ValueError):
            seg.check_perturbation(bad)


def test_default_layers_are_the_mid_block_self_attention():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, layers_per_block=1, block_out_channels=(8, 16), norm_num_groups=4, cross_attention_dim=16,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4))
    chosen = seg.resolve_layers(unet, None)
    assert list(chosen) == ["mid_block.attentions.0.transformer_blocks.0.attn1"]
    everything = seg.self_attention_layers(unet)
    assert all(n.endswith("attn1") for n in everything) and len(everything) > len(chosen)
    assert set(seg.resolve_layers(unet, ["up"])) == {n for n in everything if n.startswith("up_blocks.")}
    with pytest.raises(ValueError, match="mid_block"):
        seg.resolve_layers(unet, ["middle"])
