"""Video metrics: consecutive-frame LPIPS/SSIM pairing, CHScore statistics on synthetic tracks (including the
zero-sum case), flow tracking on synthetic flows, RAFT end to end with random weights, MTScore's top-5 rule."""

from __future__ import annotations

import math

import pytest
import torch

from metrics import build_metric
from metrics.chscore import CH_MAX, CH_WEIGHTS, chscore_from_tracks, cotracker_grid, track_with_flow
from metrics.frame_consistency import consecutive_pairs, lpips_package_head
from metrics.mtscore import MT_CAPTIONS, mtscore_from_embeddings, sample_frame_indices
from metrics.preprocess import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from tiny_scorers import build_alexnet_features, build_clip, build_raft


def smooth_frames(n: int, seed: int, size: int = 24) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g).clamp(0.05, 0.95)


# ---------------------------------------------------------------------------------------------- pairing
def test_consecutive_pairs_are_video_major():
    videos = torch.arange(2 * 3, dtype=torch.float32).view(2, 3, 1, 1, 1).expand(2, 3, 3, 2, 2)
    first, second = consecutive_pairs(videos)
    assert first[:, 0, 0, 0].tolist() == [0, 1, 3, 4]
    assert second[:, 0, 0, 0].tolist() == [1, 2, 4, 5]


def test_frame_ssim_pairs_consecutive_frames():
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    a, b, c = smooth_frames(3, 0)
    videos = torch.stack([torch.stack([a, a, b]), torch.stack([c, c, c])])
    got = build_metric("frame_ssim").score(videos, ["x", "y"])["frame_ssim"]
    expected_ab = ssim(a[None], b[None], data_range=1.0).item()
    assert got[0].item() == pytest.approx((1.0 + expected_ab) / 2, rel=1e-6)
    assert got[1].item() == pytest.approx(1.0, abs=1e-6)  # identical frames


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    return build_alexnet_features(tmp_path_factory.mktemp("alex") / "alexnet-owt-7be5be79.pth")


@pytest.mark.filterwarnings("ignore:.*deprecated since 0.13:UserWarning")  # lpips' own torchvision call
def test_frame_lpips_pairs_consecutive_frames_and_matches_lpips(alexnet_file, monkeypatch):
    import lpips
    from torchvision.models import alexnet

    metric = build_metric("frame_lpips", backbone=str(alexnet_file))
    a, b, c = smooth_frames(3, 1, size=64)
    videos = torch.stack([torch.stack([a, a, b]), torch.stack([c, c, c])])
    got = metric.score(videos, ["x", "y"])["frame_lpips"]
    assert got[1].item() == 0.0  # identical frames

    # independently: lpips builds its own AlexNet slices from a torchvision AlexNet holding the same weights
    tv_net = alexnet(weights=None)
    tv_net.features.load_state_dict({k.removeprefix("features."): v for k, v in torch.load(
        alexnet_file, weights_only=True).items() if k.startswith("features.")})
    monkeypatch.setattr(lpips.pretrained_networks.tv, "alexnet", lambda **kw: tv_net)
    reference = lpips.LPIPS(net="alex", version="0.1", model_path=str(lpips_package_head()), verbose=False).eval()
    with torch.no_grad():
        expected = reference(a[None] * 2 - 1, b[None] * 2 - 1).item()
    assert expected > 0
    assert got[0].item() == pytest.approx(expected / 2, rel=1e-5)
    assert metric.conventions()["frame_lpips_input"].startswith("[0,1] -> [-1,1]")
    assert metric.higher_is_better is False


# ---------------------------------------------------------------------------------------------- CHScore
def static_tracks(frames: int, points: int) -> torch.Tensor:
    return torch.rand(points, 2).expand(frames, points, 2).clone()


def test_chscore_zero_sum_scores_zero():
    scores = chscore_from_tracks(static_tracks(5, 9), torch.ones(5, 9, dtype=torch.bool))
    assert scores["TSI_sum"] == 0 and scores["TSI_score"] == 0


def test_chscore_by_hand():
    visible = torch.ones(4, 4, dtype=torch.bool)
    visible[1, 0] = False
    visible[2, :2] = False  # missing fractions per frame: 0, 1/4, 1/2, 0
    scores = chscore_from_tracks(static_tracks(4, 4), visible)
    changes = [0.25, 0.25, 0.5]
    mean = sum(changes) / 3
    raw = {"AMPR": 0.75 / 4, "MPVR": math.sqrt(sum((c - mean) ** 2 for c in changes) / 2), "FCR": 3 / 4,
           "CMPV": 3, "MCMPV": 0.5}
    for key, value in raw.items():
        assert scores[key] == pytest.approx(value / CH_MAX[key], rel=1e-6)
    tsi_sum = 0.35 * raw["AMPR"] / 0.9368749856948853 + 0.25 * raw["MPVR"] / 0.8997353911399841 + \
        0.15 * raw["FCR"] / 0.625 + 0.15 * raw["CMPV"] / 20 + 0.10 * raw["MCMPV"] / 1.0
    assert scores["TSI_sum"] == pytest.approx(tsi_sum, rel=1e-6)
    assert scores["TSI_score"] == pytest.approx(1 / tsi_sum, rel=1e-6)
    assert set(CH_WEIGHTS) == {"AMPR", "MPVR", "FCR", "CMPV", "MCMPV"}


def test_chscore_threshold_is_strict():
    visible = torch.ones(3, 10, dtype=torch.bool)
    visible[1, 0] = False  # changes 0.1, 0.1: not > 0.1
    scores = chscore_from_tracks(static_tracks(3, 10), visible)
    assert scores["CMPV"] == 0 and scores["FCR"] == 0


def test_points_leaving_along_their_motion_are_not_missing():
    frames = 5
    tracks = torch.zeros(frames, 2, 2)
    tracks[:, 0, 0] = torch.arange(frames) * 10.0   # point 0 moves right, keeps moving right
    tracks[:, 1, 0] = torch.tensor([0.0, 10, 20, 5, -5])  # point 1 moves right, then back past its start
    visible = torch.ones(frames, 2, dtype=torch.bool)
    visible[3:] = False  # both vanish in frames 3 and 4
    scores = chscore_from_tracks(tracks, visible)
    # point 0: projection > 0, excluded; point 1: projection 5 > 0 in frame 3, -5 in frame 4 -> missing there only
    # miss = [0, 0, 0, 0, 0.5]
    assert scores["AMPR"] == pytest.approx(0.1 / CH_MAX["AMPR"])
    assert scores["MCMPV"] == pytest.approx(0.5)


def test_chscore_needs_three_frames():
    with pytest.raises(ValueError, match="at least 3 frames"):
        chscore_from_tracks(static_tracks(2, 3), torch.ones(2, 3, dtype=torch.bool))


def test_cotracker_grid_layout():
    grid = cotracker_grid(3, 384, 512)  # margin 512 / 64 = 8
    assert grid[:3].tolist() == [[8, 8], [256, 8], [504, 8]]
    assert grid[-1].tolist() == [504, 376]


def test_track_with_flow_on_synthetic_flows():
    frames, size = 4, 16
    forward = torch.zeros(frames - 1, 2, size, size)
    forward[:, 0] = 2.0  # everything moves 2 px right per frame
    backward = -forward
    points = torch.tensor([[3.0, 5.0], [11.0, 8.0]])
    tracks, visible = track_with_flow(forward, backward, points)
    assert tracks[:, 0, 0].tolist() == [3, 5, 7, 9]
    assert tracks[:, 1, 0].tolist() == [11, 13, 15, 17]  # reaches x = 17 > 15: leaves the frame
    assert visible[:, 0].tolist() == [True] * 4
    assert visible[:, 1].tolist() == [True, True, True, False]
    # a backward flow that does not undo the forward flow fails the consistency check; the point keeps moving
    inconsistent = torch.zeros_like(forward)
    forward[:, 0] = 5.0  # |5 + 0|^2 = 25 > 0.01 * 25 + 0.5
    tracks, visible = track_with_flow(forward, inconsistent, points[:1])
    assert visible[:, 0].tolist() == [True, False, False, False]
    assert tracks[:, 0, 0].tolist() == [3, 8, 13, 18]  # x = 18 is outside: recorded, then frozen


@pytest.fixture(scope="module")
def raft_file(tmp_path_factory):
    return build_raft(tmp_path_factory.mktemp("raft") / "raft_small.pth", "raft_small")


def test_chscore_flow_end_to_end_with_random_raft(raft_file):
    metric = build_metric("chscore_flow", raft="raft_small", weights=str(raft_file), grid_size=5,
                          resolution=(128, 128), num_flow_updates=2)
    video = smooth_frames(4, 2, size=40)[None]
    out = metric.score(video, ["a time-lapse"])
    assert out["chscore_flow"].shape == (1,) and torch.isfinite(out["chscore_flow"]).all()
    assert {f"chscore_flow/{k}" for k in (*CH_WEIGHTS, "TSI_sum")} <= set(out)
    tsi_sum = out["chscore_flow/TSI_sum"].item()
    assert out["chscore_flow"].item() == pytest.approx(1 / tsi_sum if tsi_sum else 0.0)
    tracks, visible = metric.video_tracks(video[0])
    assert tracks.shape == (4, 25, 2) and visible[0].all()
    margin = 128 / 64
    assert tracks[0, 0].tolist() == pytest.approx([margin * 39 / 127, margin * 39 / 127])  # back to 40x40 pixels
    assert "NOT leaderboard-comparable" in metric.conventions()["chscore_flow_impl"]
    with pytest.raises(ValueError, match="multiples of 8"):
        build_metric("chscore_flow", resolution=(100, 128))


# ---------------------------------------------------------------------------------------------- MTScore
@pytest.mark.parametrize("frames, expected", [(4, [0, 1, 2, 3]), (7, [0, 1, 2, 3]), (8, [0, 2, 4, 6]),
                                              (10, [0, 2, 4, 6]), (17, [0, 4, 8, 12])])
def test_mtscore_frame_choice(frames, expected):
    assert sample_frame_indices(frames) == expected


def test_mtscore_top5_mass_by_hand():
    captions = torch.eye(10)
    cosines = [0.9, 0.1, 0.5, 0.0, 0.3, 0.8, 0.2, 0.7, 0.05, 0.6]  # top 5: 0, 5, 7, 9, 2
    video = torch.tensor(cosines)
    video = video / video.norm()
    metamorphic, general = mtscore_from_embeddings(video[None], captions, temperature=10.0)
    logits = [10 * c / math.sqrt(sum(x * x for x in cosines)) for c in cosines]
    total = sum(math.exp(v) for v in logits)
    probs = [math.exp(v) / total for v in logits]
    assert metamorphic.item() == pytest.approx(probs[5] + probs[7] + probs[9], rel=1e-5)
    assert general.item() == pytest.approx(probs[0] + probs[2], rel=1e-5)


def test_mtscore_clip_end_to_end(tmp_path):
    from transformers import CLIPModel

    clip_dir = build_clip(tmp_path / "clip")
    metric = build_metric("mtscore_clip", clip=clip_dir)
    videos = torch.rand(2, 8, 3, 32, 32)
    out = metric.score(videos, ["a", "b"])
    assert torch.all((out["mtscore_clip"] >= 0) & (out["mtscore_clip"] + out["mtscore_clip/general"] <= 1 + 1e-6))

    reference = CLIPModel.from_pretrained(clip_dir).eval()
    tokens = metric.models["clip"].tokenizer(list(MT_CAPTIONS), padding=True, return_tensors="pt")
    mean = torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_CLIP_STD).view(1, 3, 1, 1)
    frames = videos[:, [0, 2, 4, 6]].flatten(0, 1)
    with torch.no_grad():
        result = reference(**tokens, pixel_values=((frames * 255).round() / 255 - mean) / std)
    video = result.image_embeds.view(2, 4, -1).mean(1)  # image_embeds are normalised by transformers
    video = video / video.norm(dim=-1, keepdim=True)
    probs = (100 * video @ result.text_embeds.T).softmax(-1)
    top = probs.topk(5, dim=-1)
    expected = (top.values * (top.indices >= 5)).sum(-1)
    torch.testing.assert_close(out["mtscore_clip"], expected, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="needs at least 4 frames"):
        metric.score(torch.rand(1, 3, 3, 32, 32), ["a"])


def test_default_weight_names_load_from_the_torch_cache(tmp_path, monkeypatch, alexnet_file):
    """With no weight option, frame_lpips and chscore_flow (raft_large) read torchvision's file names from
    $TORCH_HOME/hub/checkpoints, where torchvision itself would have downloaded them."""
    import shutil

    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    shutil.copy(alexnet_file, cache / "alexnet-owt-7be5be79.pth")
    build_raft(cache / "raft_large_C_T_SKHT_V2-ff5fadd5.pth", "raft_large")
    lpips_metric = build_metric("frame_lpips")
    assert lpips_metric.score(smooth_frames(2, 3, size=32)[None], ["a"])["frame_lpips"].item() > 0
    flow_metric = build_metric("chscore_flow", grid_size=4, resolution=(128, 128), num_flow_updates=1)
    out = flow_metric.score(smooth_frames(3, 4, size=32)[None], ["a"])
    assert torch.isfinite(out["chscore_flow"]).all()
    from torchvision.models.optical_flow import raft_large

    count = sum(p.numel() for p in flow_metric.models["raft"].parameters())
    assert count == sum(p.numel() for p in raft_large(weights=None).parameters())  # the large variant was built
