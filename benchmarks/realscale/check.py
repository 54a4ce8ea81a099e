"""End-to-end check at the real architectures' size (random weights): the adapters sample, decode and the image
metrics score, and every output is finite.

    python benchmarks/realscale/check.py [--families sdxl sd21] [--size 256] [--steps 2] [--samplers standard]
                                         [--metrics hpsv2 pickscore image_reward aesthetic clip_score]
                                         [--dtype DTYPE] [--device cpu] [--json OUT.json]

One model lives at a time (SDXL, then SD-2.1, then each scorer network), so the peak memory is that of the largest
one: SDXL is 7 GB of weights in bfloat16, 14 GB in float32. The CPU dtype follows the processor
(``hardware.default_dtype``): bfloat16 where the CPU has bf16 units (half the memory of float32, and faster),
float32 where bfloat16 would be emulated (AVX2-only CPUs run it 20-50x slower than float32); the line it prints first
and the JSON's ``hardware`` say which. The adapters run a pipeline given to them in its own dtype. Exit code 0 when
every output is finite, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from benchmarks.realscale import hardware, models, scorers  # noqa: E402

PROMPTS = ["a red car parked in front of a house", "a photo of a cat on a table"]
FAMILY_ADAPTER = {"sdxl": "sdxl", "sd21": "sd"}


def run_family(family: str, args, device: torch.device, dtype: torch.dtype) -> tuple[list[dict], torch.Tensor]:
    """Build the real-size pipeline, run each sampler on one batch; rows and the first sampler's images."""
    from samplers import build_sampler
    from zeta_eval.adapters import build_adapter

    start = time.perf_counter()
    pipe = models.PIPELINES[family](dtype, device)
    build_s = time.perf_counter() - start
    params = {name: models.count_parameters(getattr(pipe, name))
              for name in ("unet", "text_encoder", "text_encoder_2", "vae") if getattr(pipe, name, None) is not None}
    adapter = build_adapter(FAMILY_ADAPTER[family], model=f"realscale/{family}", height=args.size, width=args.size)
    adapter.load(device, pipeline=pipe)
    prompts = PROMPTS[: args.batch]
    cond = adapter.encode(prompts)
    solver = adapter.solver(args.steps)
    rows, images = [], None
    for name in args.samplers:
        sampler = build_sampler(name)
        x = adapter.initial_latents(list(range(len(prompts))), solver)
        start = time.perf_counter()
        with torch.inference_mode():
            out = sampler.sample(adapter.denoiser(cond, sampler.perturbation), x, solver)
            media = adapter.decode(out.latents)
        rows.append({"family": family, "sampler": name, "build_s": round(build_s, 1),
                     "seconds": round(time.perf_counter() - start, 2), "nfe": int(out.nfe),
                     "latents_finite": bool(torch.isfinite(out.latents).all()),
                     "media_finite": bool(torch.isfinite(media).all()), "media_shape": list(media.shape),
                     "media_std": float(media.std()), "parameters": params})
        print(f"{family:5s} {name:16s} nfe {out.nfe:3d}  {rows[-1]['seconds']:7.2f} s  media {tuple(media.shape)} "
              f"finite {rows[-1]['latents_finite'] and rows[-1]['media_finite']}", flush=True)
        if images is None:
            images = media
    del adapter, pipe, cond
    models.release_memory()
    return rows, images


def run_metric(name: str, images: torch.Tensor, folder: Path, device: torch.device, dtype: torch.dtype) -> dict:
    from metrics import build_metric

    start = time.perf_counter()
    options = scorers.install(name, folder, device, dtype)
    build_s = time.perf_counter() - start
    metric = build_metric(name, **options)
    scorers.load_installed(metric, device)
    prompts = PROMPTS[: len(images)]
    start = time.perf_counter()
    with torch.inference_mode():
        values = metric.score(images.to(device), prompts, [{} for _ in prompts])
    seconds = time.perf_counter() - start
    scores = [float(v) for v in values[name].tolist()]
    row = {"metric": name, "build_s": round(build_s, 1), "seconds": round(seconds, 2), "scores": scores,
           "finite": all(torch.isfinite(torch.tensor(scores)).tolist()),
           "parameters": models.count_parameters(scorers.installed_network(name))}
    print(f"{name:13s} {row['parameters'] / 1e6:8.1f} M params  {seconds:6.2f} s  scores {scores}", flush=True)
    del metric
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", nargs="+", default=["sdxl", "sd21"], choices=sorted(models.PIPELINES))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1, choices=(1, 2))
    ap.add_argument("--samplers", nargs="+", default=["standard"])
    ap.add_argument("--metrics", nargs="*", default=list(scorers.REAL_SIZE_METRICS))
    ap.add_argument("--dtype", default=None, choices=("bfloat16", "float16", "float32"),
                    help="default: float16 on CUDA; on CPU bfloat16 where native, else float32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = hardware.resolve_dtype(args.dtype, device)
    result: dict = {"families": [], "metrics": [], "settings": {k: str(v) for k, v in vars(args).items()},
                    "hardware": hardware.describe(device, dtype)}
    print(hardware.banner(device, dtype), flush=True)
    images = None
    for family in args.families:
        rows, media = run_family(family, args, device, dtype)
        result["families"] += rows
        images = media if images is None else images
    if args.metrics:
        if images is None:  # scorers alone: random images of the requested size
            images = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
        with tempfile.TemporaryDirectory(prefix="realscale_scorers_") as tmp:
            for name in args.metrics:
                result["metrics"].append(run_metric(name, images, Path(tmp), device, dtype))
                scorers.uninstall()
    ok = all(r["latents_finite"] and r["media_finite"] for r in result["families"]) and \
        all(r["finite"] for r in result["metrics"])
    result["ok"] = ok
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print("all outputs finite" if ok else "NON-FINITE OUTPUTS", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
