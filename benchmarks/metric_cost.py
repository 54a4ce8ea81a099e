"""Scoring time per image (per video for video metrics) of every metric.

    python benchmarks/metric_cost.py [--batch 4] [--size 64] [--frames 8] [--repeats 5]
    python benchmarks/metric_cost.py --real --device cuda [--size 512] [--option hpsv2:checkpoint=/w/HPSv2 ...]

Default: the tiny random-weight models of the tests (same architecture classes as the real weights, shrunk), built
offline into a temporary folder, on CPU. This measures the pipeline around the networks (preprocessing,
tokenisation, post-processing, rules), not the cost of the real networks. ``--real`` builds every metric with its
default weight locations (hub ids resolved through the HF cache, files in $TORCH_HOME) plus the ``--option``
overrides, on the given device; a metric whose weights are not on the machine is listed as missing.

Each metric is loaded and warmed up once, then ``update`` runs ``--repeats`` times on the same batch; the median is
reported per item. Load time (weights from disk to device) is reported separately.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))  # the tiny model builders

from metrics import METRICS, WeightsNotFoundError, build_metric  # noqa: E402

VIDEO = {name for name, cls in METRICS.items() if cls.media_kind == "video"}
GENEVAL_META = {"tag": "color_attr", "include": [{"class": "car", "count": 1, "color": "red"},
                                                 {"class": "dog", "count": 1, "color": "black"}]}


def tiny_settings(folder: Path) -> dict[str, dict]:
    """Constructor arguments pointing every metric at tiny random-weight models in ``folder``."""
    import tiny_scorers as tiny

    clip = tiny.build_clip(folder / "clip")
    tiny.build_hps_checkpoint(folder)
    ir = tiny.build_image_reward(folder / "ir")
    head = folder / "aesthetic.pth"
    torch.manual_seed(0)
    from metrics.heads import RewardMLP

    torch.save(RewardMLP(16).state_dict(), head)
    return {
        "hpsv2": {"checkpoint": str(folder), "architecture": tiny.TINY_OPEN_CLIP},
        "pickscore": {"model": clip, "processor": clip},
        "image_reward": {"checkpoint": ir["folder"], "tokenizer": ir["tokenizer"], "vision_head_dim": 16},
        "aesthetic": {"clip": clip, "head": str(head)},
        "clip_score": {"clip": clip},
        "geneval": {"detector": tiny.build_mask2former(folder / "m2f"), "clip": clip, "detector_size": (64, 96)},
        "frame_lpips": {"backbone": str(tiny.build_alexnet_features(folder / "alexnet.pth"))},
        "frame_ssim": {},
        "chscore_flow": {"raft": "raft_small", "weights": str(tiny.build_raft(folder / "raft.pth")),
                         "resolution": (128, 128), "num_flow_updates": 4, "grid_size": 10},
        "mtscore_clip": {"clip": clip},
    }


def parse_options(options: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for option in options:
        name, _, assignment = option.partition(":")
        key, _, value = assignment.partition("=")
        if not (name and key and value):
            raise SystemExit(f"--option wants metric:key=value, got {option!r}")
        out.setdefault(name, {})[key] = value
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(name: str, kwargs: dict, args, device: torch.device) -> tuple[str, str, str, str]:
    metric = build_metric(name, **kwargs)
    g = torch.Generator().manual_seed(0)
    if name in VIDEO:
        media = torch.rand(args.batch, args.frames, 3, args.size, args.size, generator=g)
    else:
        media = torch.rand(args.batch, 3, args.size, args.size, generator=g)
    media = media.to(device)
    prompts = ["a red car and a black dog on a street"] * args.batch
    metadata = [GENEVAL_META] * args.batch if name == "geneval" else None
    start = time.perf_counter()
    try:
        metric.load(device)
    except WeightsNotFoundError as err:
        return name, "missing", "-", str(err)
    sync(device)
    load_s = time.perf_counter() - start
    metric.update(media, prompts, metadata)  # warm-up
    times = []
    for _ in range(args.repeats):
        sync(device)
        start = time.perf_counter()
        metric.update(media, prompts, metadata)
        sync(device)
        times.append(time.perf_counter() - start)
    per_item = statistics.median(times) / args.batch
    unit = "video" if name in VIDEO else "image"
    return name, f"{1000 * per_item:9.1f} ms/{unit}", f"{load_s:6.2f} s", ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", action="store_true", help="real weights (default locations + --option)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=None, help="image side (default 64 tiny, 512 real)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--metrics", nargs="*", default=sorted(METRICS), help="names (default: all)")
    parser.add_argument("--option", action="append", default=[], help="metric:key=value constructor argument")
    args = parser.parse_args()
    args.size = args.size or (512 if args.real else 64)
    device = torch.device(args.device)
    overrides = parse_options(args.option)
    with tempfile.TemporaryDirectory() as tmp:
        settings = {} if args.real else tiny_settings(Path(tmp))
        rows = []
        for name in args.metrics:
            kwargs = {**settings.get(name, {}), **overrides.get(name, {})}
            rows.append(measure(name, kwargs, args, device))
    kind = "real weights" if args.real else "tiny random-weight models"
    print(f"\nmetric cost, {kind}, {device}, batch {args.batch}, {args.size}x{args.size}"
          f" (videos: {args.frames} frames), median of {args.repeats}, torch threads {torch.get_num_threads()}\n")
    print(f"| {'metric':<13} | {'time per item':>16} | {'load':>8} | note")
    print(f"|{'-' * 15}|{'-' * 18}|{'-' * 10}|{'-' * 6}")
    for name, per_item, load_s, note in rows:
        print(f"| {name:<13} | {per_item:>16} | {load_s:>8} | {note}")


if __name__ == "__main__":
    main()
