"""zeta_eval.media: PNG images, MP4 videos and frame strips, written and read back."""

from __future__ import annotations

import pytest
import torch

from zeta_eval import media


def smooth_video(frames: int, h: int, w: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([torch.stack([xx, yy, (xx + yy + f / frames) / 3]) for f in range(frames)])


def test_png_round_trip_is_exact_on_the_8_bit_grid(tmp_path):
    img = torch.randint(0, 256, (3, 12, 20)).float() / 255
    back = media.read_image(media.save_image(img, tmp_path / "a" / "img.png"))
    assert back.shape == (3, 12, 20)
    assert torch.equal(back, img)


def test_non_finite_and_out_of_range_values_are_written_safely(tmp_path):
    img = torch.rand(3, 8, 8)
    img[0, 0, 0] = float("nan")
    img[1, 0, 0] = 3.0
    img[2, 0, 0] = -1.0
    back = media.read_image(media.save_image(img, tmp_path / "img.png"))
    assert back[0, 0, 0] == 0 and back[1, 0, 0] == 1 and back[2, 0, 0] == 0


def test_mp4_round_trip(tmp_path):
    video = smooth_video(9, 32, 48)
    back = media.read_video(media.save_video(video, tmp_path / "v.mp4", fps=8))
    assert back.shape == (9, 3, 32, 48)
    assert (back - video).abs().mean().item() < 0.05  # lossy H.264, but the same picture


def test_mp4_with_odd_size_is_padded_by_one_pixel(tmp_path):
    back = media.read_video(media.save_video(torch.rand(3, 3, 15, 17), tmp_path / "odd.mp4"))
    assert back.shape == (3, 3, 16, 18)


def test_frame_strip(tmp_path):
    video = smooth_video(10, 8, 6)
    assert media.frame_indices(10, 4) == [0, 3, 6, 9]
    assert media.frame_indices(3, 8) == [0, 1, 2]
    strip = media.frame_strip(video, max_frames=4, gap=1)
    assert strip.shape == (3, 8, 4 * 6 + 3)
    assert torch.equal(strip[..., :6], video[0]) and torch.equal(strip[..., -6:], video[9])
    assert torch.all(strip[..., 6] == 1)
    back = media.read_image(media.save_frame_strip(video, tmp_path / "s.png", max_frames=4, gap=1))
    assert back.shape == strip.shape


def test_save_media_dispatches_on_shape_and_checks_the_suffix(tmp_path):
    assert media.save_media(torch.rand(3, 8, 8), tmp_path / "x.png").exists()
    assert media.save_media(torch.rand(2, 3, 8, 8), tmp_path / "x.mp4", fps=4).exists()
    with pytest.raises(ValueError, match=".png"):
        media.save_media(torch.rand(3, 8, 8), tmp_path / "x.jpg")
    with pytest.raises(ValueError, match=".mp4"):
        media.save_media(torch.rand(2, 3, 8, 8), tmp_path / "x.gif")
    with pytest.raises(ValueError, match="3, H, W"):
        media.save_image(torch.rand(4, 8, 8), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="fps"):
        media.save_video(torch.rand(2, 3, 8, 8), tmp_path / "bad.mp4", fps=0)
