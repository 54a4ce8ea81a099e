"""Images per second of ``zeta_eval predict`` (standard CFG, metrics off) against a plain loop over the same
diffusers pipeline: same model, prompts, seeds, batch size and steps; runs alternate, medians are compared.

    python benchmarks/pipeline_throughput.py [--prompts 32] [--batch 4] [--steps 10] [--repeats 3] [--width 64]
                                             [--device cpu|cuda] [--dtype float32|float16]

Both sides load the pipeline from the same folder inside the timed region. ``zeta_eval predict`` runs in-process
(no interpreter start-up) and is timed twice: without media files (the generation path alone) and with PNGs written
(what a run does). A plain loop is the reference ratio 1.0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def build_pipeline(folder: Path, width: int, size: int) -> str:
    """A small SD-2-like pipeline with random weights: v-prediction DDIM, one CLIP text encoder."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    from tiny_models import _clip_text, _vae, clip_tokenizer

    torch.manual_seed(0)
    tok = clip_tokenizer()
    unet = UNet2DConditionModel(
        sample_size=size // 2, in_channels=4, out_channels=4, layers_per_block=1,  # the tiny VAE downsamples by 2
        block_out_channels=(width, 2 * width), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16, attention_head_dim=8,
        norm_num_groups=min(32, width)).eval()
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1, prediction_type="v_prediction")
    pipe = StableDiffusionPipeline(vae=_vae(), text_encoder=_clip_text(tok), tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    n_params = sum(p.numel() for p in unet.parameters())
    return f"UNet {n_params / 1e6:.2f} M parameters, {size}x{size} images"


def plain_loop(folder: str, prompts: list[str], batch: int, steps: int, size: int, device: str, dtype) -> float:
    from diffusers import StableDiffusionPipeline

    t0 = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=dtype).to(device)
    pipe.set_progress_bar_config(disable=True)
    for k in range(0, len(prompts), batch):
        chunk = prompts[k:k + batch]
        gens = [torch.Generator("cpu").manual_seed(k + j) for j in range(len(chunk))]
        pipe(chunk, num_inference_steps=steps, guidance_scale=5.5, generator=gens, height=size, width=size,
             output_type="pt")
    if device == "cuda":
        torch.cuda.synchronize()
    return len(prompts) / (time.perf_counter() - t0)


def zeta_run(config: Path, out: Path, save_media: bool) -> None:
    from zeta_eval.cli import main

    code = main(["predict", "--config", str(config), "--output_dir", str(out), "--report", "false",
                 "--model.save_media", str(save_media).lower()])
    if code != 0:
        raise SystemExit(f"zeta_eval predict failed with exit code {code}")
    n = sum(1 for _ in (out / "parts").glob("*.parquet"))
    if n == 0:
        raise SystemExit("zeta_eval predict wrote nothing")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--width", type=int, default=64, help="UNet channels of the first block")
    ap.add_argument("--size", type=int, default=64, help="image size (the tiny VAE halves it: latents are size/2)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    work = Path(tempfile.mkdtemp(prefix="zeta_throughput_"))
    desc = build_pipeline(work / "model", args.width, args.size)
    prompts = [f"a photo of object number {k}" for k in range(args.prompts)]
    (work / "prompts.jsonl").write_text("".join(json.dumps({"id": k, "prompt": p}) + "\n" for k, p in enumerate(prompts)))
    config = work / "exp.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"adapter": {"name": "sd", "model": str(work / "model"), "dtype": args.dtype,
                              "height": args.size, "width": args.size},
                  "steps": args.steps, "samplers": [{"name": "standard", "gamma1": 5.5}]},
        "data": {"source": str(work / "prompts.jsonl"), "batch_size": args.batch, "seeds": "per_prompt_index"},
        "trainer": {"accelerator": "gpu" if args.device == "cuda" else "cpu", "devices": 1,
                    "enable_progress_bar": False}}))
    results: dict[str, list[float]] = {"plain diffusers loop": [], "zeta_eval predict (no media)": [],
                                       "zeta_eval predict (PNG media)": []}
    # untimed warm-up of both paths (first-call kernel selection, file caches)
    plain_loop(str(work / "model"), prompts[: args.batch], args.batch, 2, args.size, args.device, dtype)
    zeta_run(config, work / "warmup", False)
    threads = torch.get_num_threads()
    for r in range(args.repeats):
        results["plain diffusers loop"].append(
            plain_loop(str(work / "model"), prompts, args.batch, args.steps, args.size, args.device, dtype))
        for key, media in (("zeta_eval predict (no media)", False), ("zeta_eval predict (PNG media)", True)):
            out = work / f"out_{r}_{int(media)}"
            t0 = time.perf_counter()
            zeta_run(config, out, media)
            results[key].append(args.prompts / (time.perf_counter() - t0))
    if torch.get_num_threads() != threads or threads != args.threads:
        raise SystemExit(f"thread count changed during the runs ({args.threads} -> {torch.get_num_threads()})")
    base = statistics.median(results["plain diffusers loop"])
    print(f"{desc}; {args.prompts} prompts, batch {args.batch}, {args.steps} steps, {args.repeats} alternating repeats, "
          f"device {args.device} ({args.dtype}), {args.threads} threads")
    print(f"{'':32s} {'images/s (median)':>18s} {'ratio':>7s}   runs")
    for key, values in results.items():
        med = statistics.median(values)
        print(f"{key:32s} {med:18.2f} {med / base:7.3f}   {', '.join(f'{v:.2f}' for v in values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
