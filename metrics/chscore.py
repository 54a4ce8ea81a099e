"""ChronoMagic-Bench CHScore (coherence, ``CHScore/step0-get_CHScore.py``) on point tracks from optical flow.

The statistics are the reference's (:func:`chscore_from_tracks`): a point counts as *missing* in frame t when it is
not visible and has not moved away along its own direction (projection of its displacement since frame 0 onto its
frame-0 -> frame-T//2 direction is not positive). With ``miss_t`` the fraction of missing points and
``ap_t = |miss_t+1 - miss_t|``:

    AMPR = mean(miss)        MPVR = std(ap) (unbiased)       CMPV = #(ap > 0.1)
    FCR  = CMPV / T          MCMPV = max(ap)

min-max normalised with the fixed constants below (all minima 0), weighted 0.35/0.25/0.15/0.15/0.10 into TSI_sum,
and the score is ``1 / TSI_sum`` (0 when TSI_sum == 0, so a video without any missed point scores 0, the worst).
The mean of reciprocals is heavy-tailed.

NOT leaderboard-comparable: the reference tracks a 30x30 grid with CoTracker2 (CC-BY-NC weights); here the same grid
(placed as CoTracker places it at its 384x512 working resolution) is tracked by chaining torchvision RAFT flow from
frame 0, and a point is visible in frame t+1 when it is inside the frame and passes the forward-backward flow check
``|w_f + w_b|^2 <= 0.01 (|w_f|^2 + |w_b|^2) + 0.5`` (Sundaram et al. 2010). A point that leaves the frame stays
missing and stops moving; an occluded point keeps following the forward flow.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from .base import SampleMetric
from .weights import cached, freeze, load_state_dict_file, load_strictly, resolve_file

# ChronoMagic-Bench's global_stats maxima (minima are 0) and weights
CH_MAX = {"AMPR": 0.9368749856948853, "MPVR": 0.8997353911399841, "FCR": 0.625, "CMPV": 20.0, "MCMPV": 1.0}
CH_WEIGHTS = {"CMPV": 0.15, "FCR": 0.15, "AMPR": 0.35, "MPVR": 0.25, "MCMPV": 0.10}
COTRACKER_RESOLUTION = (384, 512)  # CoTracker2's model_resolution (H, W); the grid is laid out there


def chscore_from_tracks(tracks: torch.Tensor, visible: torch.Tensor, threshold: float = 0.1) -> dict[str, float]:
    """CHScore of one video from point ``tracks (T, N, 2)`` (x, y in pixels) and ``visible (T, N)`` (bool).

    Returns the normalised components, ``TSI_sum`` and ``TSI_score``.
    """
    frames = tracks.shape[0]
    if frames < 3:
        raise ValueError(f"chscore: needs at least 3 frames (the std of frame-to-frame changes), got {frames}")
    tracks = tracks.float()
    movement = tracks[frames // 2] - tracks[0]
    direction = movement / (movement.norm(dim=-1, keepdim=True) + 1e-8)
    projection = ((tracks - tracks[0]) * direction).sum(-1)  # (T, N)
    missing = ~visible.bool() & ~(projection > 0)
    miss = missing.sum(1).float() / missing.shape[1]  # float32, as the reference
    change = (miss[1:] - miss[:-1]).abs()
    cuts = int((change > threshold).sum())
    raw = {"AMPR": miss.mean().item(), "MPVR": change.std().item(), "FCR": cuts / frames, "CMPV": float(cuts),
           "MCMPV": change.max().item()}
    scores = {key: value / CH_MAX[key] for key, value in raw.items()}
    tsi_sum = sum(scores[key] * CH_WEIGHTS[key] for key in scores)
    scores["TSI_sum"] = tsi_sum
    scores["TSI_score"] = 1 / tsi_sum if tsi_sum != 0 else 0.0
    return scores


def cotracker_grid(grid_size: int, height: int, width: int) -> torch.Tensor:
    """CoTracker's ``get_points_on_a_grid`` for an ``(height, width)`` extent: ``grid_size^2`` points (x, y), row-major,
    with a margin of width/64 on every side."""
    margin = width / 64
    ys = torch.linspace(margin, height - margin, grid_size)
    xs = torch.linspace(margin, width - margin, grid_size)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2)


def _sample(flow: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear sample of ``flow (2, H, W)`` at pixel ``points (N, 2)`` -> ``(N, 2)``."""
    height, width = flow.shape[-2:]
    grid = torch.stack([2 * points[:, 0] / (width - 1) - 1, 2 * points[:, 1] / (height - 1) - 1], -1)
    out = F.grid_sample(flow[None].float(), grid[None, None].float(), mode="bilinear", padding_mode="border",
                        align_corners=True)
    return out[0, :, 0].T


def track_with_flow(forward: torch.Tensor, backward: torch.Tensor, points: torch.Tensor, fb_alpha: float = 0.01,
                    fb_beta: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Chain flows from frame 0: ``forward[t]`` maps frame t to t+1, ``backward[t]`` frame t+1 to t (``(T-1, 2, H,
    W)``, pixels). Returns ``tracks (T, N, 2)`` and ``visible (T, N)``; frame 0 is visible by definition."""
    height, width = forward.shape[-2:]
    position = points.float().to(forward.device)
    alive = torch.ones(len(position), dtype=torch.bool, device=forward.device)
    tracks, visible = [position], [alive.clone()]
    for fwd, bwd in zip(forward, backward):
        step = _sample(fwd, position)
        target = position + step
        back = _sample(bwd, target)
        consistent = (step + back).pow(2).sum(-1) <= fb_alpha * (step.pow(2).sum(-1) + back.pow(2).sum(-1)) + fb_beta
        position = torch.where(alive[:, None], target, position)
        inside = (position[:, 0] >= 0) & (position[:, 0] <= width - 1) & (position[:, 1] >= 0) & \
            (position[:, 1] <= height - 1)
        alive = alive & inside
        tracks.append(position)
        visible.append(alive & consistent)
    return torch.stack(tracks), torch.stack(visible)


def video_flows(raft, frames: torch.Tensor, num_flow_updates: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward RAFT flow between consecutive ``frames (T, 3, H, W)`` in [0, 1]."""
    x = frames * 2 - 1  # RAFT's input range
    first = torch.cat([x[:-1], x[1:]])
    second = torch.cat([x[1:], x[:-1]])
    flows = torch.cat([raft(first[i:i + batch], second[i:i + batch], num_flow_updates=num_flow_updates)[-1]
                       for i in range(0, len(first), batch)])
    return flows[:len(frames) - 1], flows[len(frames) - 1:]


def _raft_file(arch: str) -> str:
    from torchvision.models import optical_flow

    weights = {"raft_large": optical_flow.Raft_Large_Weights, "raft_small": optical_flow.Raft_Small_Weights}[arch]
    return weights.DEFAULT.url.rsplit("/", 1)[-1]


def _build_raft(arch: str, path, device: torch.device):
    from torchvision.models import optical_flow

    model = getattr(optical_flow, arch)(weights=None)
    load_strictly(model, load_state_dict_file(path), metric="chscore_flow", source=str(path))
    return freeze(model, device, torch.float32)


class CHScoreFlow(SampleMetric):
    """``raft``: ``"raft_large"`` or ``"raft_small"``; ``weights``: its torchvision checkpoint (file, folder, or the
    bare file name looked up in ``$TORCH_HOME``; default: torchvision's DEFAULT weights file). RAFT runs in fp32.
    ``resolution`` (H, W, multiples of 8, at least 128) is the tracking resolution, as CoTracker's."""

    name = "chscore_flow"
    media_kind = "video"
    min_frames = 3

    def __init__(self, raft: str = "raft_large", weights: str | None = None, grid_size: int = 30,
                 threshold: float = 0.1, resolution: tuple[int, int] = COTRACKER_RESOLUTION,
                 num_flow_updates: int = 12, fb_alpha: float = 0.01, fb_beta: float = 0.5, flow_batch: int = 8,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if raft not in ("raft_large", "raft_small"):
            raise ValueError(f"chscore_flow: raft must be 'raft_large' or 'raft_small', got {raft!r}")
        if any(r % 8 or r < 128 for r in resolution):
            raise ValueError(f"chscore_flow: resolution {resolution} must be multiples of 8 and at least 128 (RAFT)")
        self.raft, self.weights, self.grid_size, self.threshold = raft, weights, grid_size, threshold
        self.resolution, self.num_flow_updates = tuple(resolution), num_flow_updates
        self.fb_alpha, self.fb_beta, self.flow_batch = fb_alpha, fb_beta, flow_batch

    def _load(self, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        filename = _raft_file(self.raft)
        path = resolve_file(self.weights or filename, filename, metric=self.name, option="weights", torch_cache=True)
        return {"raft": cached(("raft", self.raft, str(path.resolve()), str(device)),
                               lambda: _build_raft(self.raft, path, device))}

    def video_tracks(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tracks ``(T, N, 2)`` in the video's pixel coordinates and visibility ``(T, N)`` for ``video (T, 3, H,
        W)``."""
        height, width = video.shape[-2:]
        res_h, res_w = self.resolution
        frames = F.interpolate(video.float(), size=self.resolution, mode="bilinear", align_corners=True)
        forward, backward = video_flows(self.models["raft"], frames, self.num_flow_updates, self.flow_batch)
        tracks, visible = track_with_flow(forward, backward, cotracker_grid(self.grid_size, res_h, res_w),
                                          self.fb_alpha, self.fb_beta)
        scale = tracks.new_tensor([(width - 1) / (res_w - 1), (height - 1) / (res_h - 1)])
        return tracks * scale, visible

    def score_batch(self, media: torch.Tensor, prompts: Sequence[str],
                    metadata: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows = [chscore_from_tracks(*self.video_tracks(video), threshold=self.threshold) for video in media]
        out = {self.name: torch.tensor([r["TSI_score"] for r in rows], dtype=torch.float64)}
        for key in (*CH_WEIGHTS, "TSI_sum"):
            out[f"{self.name}/{key}"] = torch.tensor([r[key] for r in rows], dtype=torch.float64)
        return out

    def conventions(self) -> dict[str, Any]:
        return {"chscore_flow_impl": f"NOT leaderboard-comparable: {self.raft} flow tracks (forward-backward check "
                                     f"alpha {self.fb_alpha}, beta {self.fb_beta}) instead of CoTracker2",
                "chscore_flow_raft": f"{self.raft} ({self.weights or 'torchvision DEFAULT weights'}), "
                                     f"{self.num_flow_updates} updates, float32",
                "chscore_flow_grid": f"{self.grid_size}x{self.grid_size} at {self.resolution}",
                "chscore_flow_threshold": self.threshold,
                "chscore_flow_formula": "ChronoMagic TSI: 1/TSI_sum (0 if TSI_sum == 0), fixed normalisation"}
