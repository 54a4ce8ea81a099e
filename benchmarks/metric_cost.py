"""Scoring time per image (per video for video metrics) of every metric.

    python benchmarks/metric_cost.py [--batch 4] [--size 64] [--frames 8] [--repeats 5]
    python benchmarks/metric_cost.py --real --device cuda [--size 512] [--option hpsv2:checkpoint=/w/HPSv2 ...]
    python benchmarks/metric_cost.py --arch real [--size 256] [--gen-steps 50] [--device cpu|cuda] [--dtype ...]

Default: the tiny random-weight models of the tests (same architecture classes as the real weights, shrunk), built
offline into a temporary folder, on CPU. This measures the pipeline around the networks (preprocessing,
tokenisation, post-processing, rules), not the cost of the real networks. ``--real`` builds every metric with its
default weight locations (hub ids resolved through the HF cache, files in $TORCH_HOME) plus the ``--option``
overrides, on the given device; a metric whose weights are not on the machine is listed as missing.

``--arch real``: the image metrics on their real-size networks with random weights (benchmarks/realscale: ViT-H-14
for HPS v2 and PickScore, CLIP ViT-L/14 for the aesthetic predictor and CLIP score, BLIP ViT-L + BERT for
ImageReward), built in memory one at a time (bfloat16 on CPU, float16 on CUDA by default), and each one's cost per
image as a fraction of one SDXL sample at the same resolution: SDXL base at real size, its text encoding, one
classifier-free-guidance UNet call (median of ``--repeats``) times ``--gen-steps`` and the VAE decode, measured first.

Each metric is loaded and warmed up once, then ``update`` runs ``--repeats`` times on the same batch; the median is
reported per item. Load time (weights from disk to device; ``--arch real``: building the random network) is reported
separately.
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
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the project and the tiny model builders

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


def measure(name: str, kwargs: dict, args, device: torch.device, load=None) -> dict:
    """Seconds per item (median of ``args.repeats`` batches) and load seconds of one metric, or a note why not;
    ``load(metric, device)`` replaces ``metric.load``."""
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
        (load or type(metric).load)(metric, device)
    except WeightsNotFoundError as err:
        return {"name": name, "per_item_s": None, "per_item_cpu_s": None, "load_s": None, "note": str(err)}
    sync(device)
    load_s = time.perf_counter() - start
    metric.update(metric.score(media, prompts, metadata), metadata)  # warm-up
    times, cpu_times = [], []
    for _ in range(args.repeats):
        sync(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        metric.update(metric.score(media, prompts, metadata), metadata)
        sync(device)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return {"name": name, "per_item_s": statistics.median(times) / args.batch,
            "per_item_cpu_s": statistics.median(cpu_times) / args.batch, "load_s": load_s, "note": ""}


def cost_cells(row: dict) -> tuple[str, str]:
    """The 'time per item' and 'load' cells of a :func:`measure` row."""
    if row["per_item_s"] is None:
        return "missing", "-"
    unit = "video" if row["name"] in VIDEO else "image"
    return f"{1000 * row['per_item_s']:9.1f} ms/{unit}", f"{row['load_s']:6.2f} s"


def sdxl_sample_cost(pipe, size: int, steps: int, repeats: int, device: torch.device) -> dict[str, float]:
    """Seconds (wall ``*_s`` and CPU ``*_cpu_s``) of one SDXL sample at ``size`` x ``size`` through the sdxl adapter:
    encoding one prompt, one classifier-free-guidance step (median of ``repeats`` network calls on the two-branch
    batch) x ``steps``, and the VAE decode."""
    from zeta_eval.adapters import build_adapter

    adapter = build_adapter("sdxl", model="realscale/sdxl", height=size, width=size)
    adapter.load(device, pipeline=pipe)

    def timed(fn) -> tuple[float, float]:
        """(wall, CPU) seconds of ``fn()``."""
        sync(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            fn()
        sync(device)
        return time.perf_counter() - start, time.process_time() - cpu_start

    prompt = ["a red car and a black dog on a street"]
    timed(lambda: adapter.encode(prompt))  # warm-up
    encode = timed(lambda: adapter.encode(prompt))
    cond = adapter.encode(prompt)
    solver = adapter.solver(steps)
    x = adapter.initial_latents([0], solver)
    denoiser = adapter.denoiser(cond)
    timed(lambda: denoiser(x, solver.timesteps[0], ("uncond", "cond")))  # warm-up
    step_runs = [timed(lambda: denoiser(x, solver.timesteps[0], ("uncond", "cond"))) for _ in range(repeats)]
    step = tuple(statistics.median(r[k] for r in step_runs) for k in (0, 1))
    timed(lambda: adapter.decode(x))  # warm-up
    decode = timed(lambda: adapter.decode(x))
    out = {"steps": steps}
    for k, kind in ((0, ""), (1, "cpu_")):
        out.update({f"encode_{kind}s": encode[k], f"step_{kind}s": step[k], f"decode_{kind}s": decode[k],
                    f"sample_{kind}s": encode[k] + steps * step[k] + decode[k]})
    return out


def real_size_costs(args, device: torch.device, dtype: torch.dtype) -> list[dict]:
    """:func:`measure` rows of the real-size image metrics (``load_s``: building the network), each built, measured
    and freed in turn."""
    from benchmarks.realscale import scorers

    rows = []
    with tempfile.TemporaryDirectory(prefix="realscale_scorers_") as tmp:
        for name in args.metrics:
            start = time.perf_counter()
            options = scorers.install(name, Path(tmp), device, dtype)
            build_s = time.perf_counter() - start
            rows.append({**measure(name, options, args, device, load=scorers.load_installed), "load_s": build_s})
            scorers.uninstall()
    return rows


def main_real(args) -> None:
    """``--arch real``: generation cost of one SDXL sample, then each real-size scorer's cost."""
    from benchmarks.realscale import hardware, models, scorers

    device = torch.device(args.device)
    dtype = hardware.resolve_dtype(args.dtype, device)
    print(hardware.banner(device, dtype), flush=True)
    args.metrics = [m for m in args.metrics if m in scorers.REAL_SIZE_METRICS] if args.metrics_given else \
        list(scorers.REAL_SIZE_METRICS)
    pipe = models.sdxl_pipeline(dtype, device)
    gen = sdxl_sample_cost(pipe, args.size, args.gen_steps, args.repeats, device)
    del pipe
    models.release_memory()
    scorer_dtype = getattr(torch, args.scorer_dtype) if args.scorer_dtype else dtype
    rows = real_size_costs(args, device, scorer_dtype)
    total = sum(r["per_item_s"] for r in rows)
    total_cpu = sum(r["per_item_cpu_s"] for r in rows)
    print(f"\nmetric cost at real size (random weights; SDXL {dtype}, scorers {scorer_dtype}), {device}, batch "
          f"{args.batch}, {args.size}x{args.size}"
          f", median of {args.repeats}, torch threads {torch.get_num_threads()}")
    print(f"one SDXL sample at {args.size}x{args.size}, {args.gen_steps} steps: {gen['sample_s']:.2f} s (encode "
          f"{gen['encode_s']:.2f} s + {args.gen_steps} x {gen['step_s']:.3f} s per CFG step + decode "
          f"{gen['decode_s']:.2f} s); CPU time {gen['sample_cpu_s']:.2f} s\n")
    print(f"| {'metric':<13} | {'time per item':>16} | {'build':>8} | {'of an SDXL sample':>17} | "
          f"{'in CPU time':>11} | note")
    print(f"|{'-' * 15}|{'-' * 18}|{'-' * 10}|{'-' * 19}|{'-' * 13}|{'-' * 6}")
    for row in rows:
        per_item, build_s = cost_cells(row)
        print(f"| {row['name']:<13} | {per_item:>16} | {build_s:>8} | {row['per_item_s'] / gen['sample_s']:17.3f} | "
              f"{row['per_item_cpu_s'] / gen['sample_cpu_s']:11.3f} | {row['note']}")
    print(f"| {'all above':<13} | {1000 * total:9.1f} ms/image | {'':>8} | {total / gen['sample_s']:17.3f} | "
          f"{total_cpu / gen['sample_cpu_s']:11.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", action="store_true", help="real weights (default locations + --option)")
    parser.add_argument("--arch", default="tiny", choices=("tiny", "real"),
                        help="real: real-size random-weight networks of the image metrics, as a fraction of an SDXL "
                             "sample")
    parser.add_argument("--gen-steps", type=int, default=50, help="--arch real: steps of the SDXL sample")
    parser.add_argument("--dtype", default=None, help="--arch real: float16 on CUDA; on CPU bfloat16 where native, else float32")
    parser.add_argument("--scorer-dtype", default=None, help="--arch real: the scorers' dtype (default: --dtype)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=None, help="image side (default 64 tiny, 512 real)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--metrics", nargs="*", default=None, help="names (default: all)")
    parser.add_argument("--option", action="append", default=[], help="metric:key=value constructor argument")
    args = parser.parse_args()
    args.metrics_given = args.metrics is not None
    args.metrics = args.metrics if args.metrics is not None else sorted(METRICS)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.arch == "real":
        args.size = args.size or 256
        main_real(args)
        return
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
    for row in rows:
        per_item, load_s = cost_cells(row)
        print(f"| {row['name']:<13} | {per_item:>16} | {load_s:>8} | {row['note']}")


if __name__ == "__main__":
    main()
