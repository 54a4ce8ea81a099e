"""Images per second of ``zeta_eval predict`` against a plain loop over the same diffusers pipeline: same model,
prompts, seeds, batch size and steps; runs alternate, medians are compared.

    python benchmarks/pipeline_throughput.py [--prompts 32] [--batch 4] [--steps 10] [--repeats 3] [--width 64]
                                             [--device cpu|cuda] [--dtype float32|float16]
    python benchmarks/pipeline_throughput.py --arch sdxl [--size 256] [--prompts 4] [--batch 2] [--steps 10]
                                             [--repeats 3] [--metric hpsv2] [--device cpu|cuda]
                                             [--dtype bfloat16|float16|float32] [--profile OUT.prof]
                                             [--compile [MODE]] [--compile-backend inductor] [--write-queue N]

``--arch tiny`` (default): a small SD-2-like pipeline saved to a folder; both sides load it inside the timed region.
``zeta_eval predict`` runs in-process (no interpreter start-up) and is timed twice: without media files (the
generation path alone) and with PNGs written (what a run does).

``--arch sdxl``: SDXL base at its real size (random weights, benchmarks/realscale), built once in memory; both sides
use that pipeline object (no loading in the timed region). The plain loop calls the pipeline, converts and saves
each image as PNG and scores the batch with the same real-size metric (default ``hpsv2``: ViT-H-14, 986 M); ``zeta_eval
predict`` writes PNGs and Parquet parts and scores with that metric (its adapter takes the in-memory pipeline).
bfloat16 weights on CPU, float16 on CUDA by default. ``--profile`` writes a cProfile of one extra ``predict`` run and
prints where its time goes. ``predict`` writes with its default background writer; ``--write-queue 0`` times it
writing inline instead.

``--compile [MODE]`` (sdxl) adds a third side to the alternation: ``predict`` with ``model.compile`` (mode ``default``
unless given; ``--compile-backend``, default inductor). An untimed ``predict`` of one batch of the timed shape compiles
the UNet first (its ``compile_seconds`` are reported); the timed runs then reuse the compiled code. The plain loop stays
eager; on CUDA it runs the same channels_last UNet weights that compile converts the shared pipeline to.

A plain loop is the reference ratio 1.0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

PLAIN = "plain diffusers loop"


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


def plain_loop(folder: str, prompts: list[str], batch: int, steps: int, size: int, device: str, dtype) -> int:
    """Load the pipeline and generate every prompt; the number of images."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=dtype).to(device)
    pipe.set_progress_bar_config(disable=True)
    for k in range(0, len(prompts), batch):
        chunk = prompts[k:k + batch]
        gens = [torch.Generator("cpu").manual_seed(k + j) for j in range(len(chunk))]
        pipe(chunk, num_inference_steps=steps, guidance_scale=5.5, generator=gens, height=size, width=size,
             output_type="pt")
    if device == "cuda":
        torch.cuda.synchronize()
    return len(prompts)


def plain_loop_in_memory(pipe, prompts: list[str], batch: int, steps: int, size: int, out: Path, metric) -> int:
    """What a user's own loop does with the same pipeline object: call it, save each image as PNG, score the batch
    with the same metric. The number of images."""
    out.mkdir(parents=True, exist_ok=True)
    sync = torch.cuda.synchronize if pipe.device.type == "cuda" else (lambda: None)
    for k in range(0, len(prompts), batch):
        chunk = prompts[k:k + batch]
        gens = [torch.Generator("cpu").manual_seed(k + j) for j in range(len(chunk))]
        images = pipe(chunk, num_inference_steps=steps, guidance_scale=5.5, generator=gens, height=size, width=size,
                      output_type="pt").images
        for j, pil in enumerate(pipe.image_processor.numpy_to_pil(pipe.image_processor.pt_to_numpy(images))):
            pil.save(out / f"{k + j}.png")
        if metric is not None:
            metric.update(metric.score(images.float(), chunk))
    sync()
    return len(prompts)


def zeta_run(config: Path, out: Path, save_media: bool | None = None, write_queue: int | None = None) -> None:
    """``zeta_eval predict`` in this process. It runs in a copy of the current context: jsonargparse leaves its last
    parser in a ContextVar, and through it the CLI, the model, the adapter and the whole pipeline would stay
    referenced after the run (7 GB for SDXL)."""
    import contextvars

    from zeta_eval.cli import main

    extra = [] if save_media is None else ["--model.save_media", str(save_media).lower()]
    extra += [] if write_queue is None else ["--write_queue", str(write_queue)]
    argv = ["predict", "--config", str(config), "--output_dir", str(out), "--report", "false", *extra]
    code = contextvars.copy_context().run(main, argv)
    if code != 0:
        raise SystemExit(f"zeta_eval predict failed with exit code {code}")
    n = sum(1 for _ in (out / "parts").glob("*.parquet"))
    if n == 0:
        raise SystemExit("zeta_eval predict wrote nothing")


def write_prompts(path: Path, n: int) -> list[str]:
    prompts = [f"a photo of object number {k}" for k in range(n)]
    path.write_text("".join(json.dumps({"id": k, "prompt": p}) + "\n" for k, p in enumerate(prompts)))
    return prompts


def experiment(adapter: dict, metrics: list, steps: int, source: Path, batch: int, device: str,
               compile: dict | None = None) -> dict:
    return {"model": {"adapter": adapter, "steps": steps, "samplers": [{"name": "standard", "gamma1": 5.5}],
                      "metrics": metrics, **({"compile": compile} if compile else {})},
            "data": {"source": str(source), "batch_size": batch, "seeds": "per_prompt_index"},
            "trainer": {"accelerator": "gpu" if device == "cuda" else "cpu", "devices": 1,
                        "enable_progress_bar": False}}


def alternate(runs: dict[str, Callable[[int], int]], repeats: int) -> dict[str, dict[str, list[float]]]:
    """Each run once per repeat, the order reversed on odd repeats (machine drift hits every side alike); images per
    wall-clock second and per CPU second of this process (the rate that survives a machine shared with other jobs)."""
    results: dict[str, dict[str, list[float]]] = {key: {"wall": [], "cpu": []} for key in runs}
    for r in range(repeats):
        for key in (list(runs) if r % 2 == 0 else list(reversed(runs))):
            t0, c0 = time.perf_counter(), time.process_time()
            images = runs[key](r)
            results[key]["wall"].append(images / (time.perf_counter() - t0))
            results[key]["cpu"].append(images / (time.process_time() - c0))
    return results


def report(desc: str, results: dict[str, dict[str, list[float]]], base_key: str = PLAIN) -> dict[str, float]:
    """Print the medians and their ratios to ``base_key``; the wall-clock ratios."""
    base = {kind: statistics.median(results[base_key][kind]) for kind in ("wall", "cpu")}
    width = max(44, *map(len, results))
    print(desc)
    print(f"{'':{width}s} {'images/s':>9s} {'ratio':>7s} {'img/CPU-s':>10s} {'ratio':>7s}   runs (images/s)")
    ratios = {}
    for key, rates in results.items():
        wall, cpu = statistics.median(rates["wall"]), statistics.median(rates["cpu"])
        ratios[key] = wall / base["wall"]
        print(f"{key:{width}s} {wall:9.4f} {wall / base['wall']:7.3f} {cpu:10.4f} {cpu / base['cpu']:7.3f}   "
              f"{', '.join(f'{v:.4f}' for v in rates['wall'])}")
    return ratios


def run_tiny(args, work: Path) -> dict:
    dtype = getattr(torch, args.dtype or "float32")
    desc = build_pipeline(work / "model", args.width, args.size)
    prompts = write_prompts(work / "prompts.jsonl", args.prompts)
    config = work / "exp.yaml"
    adapter = {"name": "sd", "model": str(work / "model"), "dtype": args.dtype or "float32", "height": args.size,
               "width": args.size}
    config.write_text(yaml.safe_dump(experiment(adapter, [], args.steps, work / "prompts.jsonl", args.batch,
                                                args.device)))
    # untimed warm-up of both paths (first-call kernel selection, file caches)
    plain_loop(str(work / "model"), prompts[: args.batch], args.batch, 2, args.size, args.device, dtype)
    zeta_run(config, work / "warmup", False)

    def timed_predict(media: bool) -> Callable[[int], int]:
        def run(r: int) -> int:
            zeta_run(config, work / f"out_{r}_{int(media)}", media, args.write_queue)
            return args.prompts
        return run

    results = alternate({
        PLAIN: lambda r: plain_loop(str(work / "model"), prompts, args.batch, args.steps, args.size, args.device,
                                    dtype),
        "zeta_eval predict (no media)": timed_predict(False),
        "zeta_eval predict (PNG media)": timed_predict(True)}, args.repeats)
    return report(f"{desc}; {args.prompts} prompts, batch {args.batch}, {args.steps} steps, {args.repeats} alternating "
                  f"repeats, device {args.device} ({dtype}), {args.threads} threads", results)


def run_sdxl(args, work: Path) -> dict:
    from benchmarks.realscale import hardware, inmemory, models, scorers

    device = torch.device(args.device)
    dtype = hardware.resolve_dtype(args.dtype, device)
    print(hardware.banner(device, dtype), flush=True)
    pipe = args.pipeline if args.pipeline is not None else models.sdxl_pipeline(dtype, device)
    pipe.set_progress_bar_config(disable=True)
    name = inmemory.register("realscale/sdxl", pipe)
    try:
        return _run_sdxl_registered(args, work, pipe, name, device, dtype)
    finally:  # nothing of this run stays referenced (the GPU suite frees the pipeline afterwards)
        inmemory.unregister(name)
        scorers.uninstall()
        if args.compile:
            torch.compiler.reset()  # compiled code and its guards keep the UNet referenced


def _run_sdxl_registered(args, work: Path, pipe, name: str, device: torch.device, dtype: torch.dtype) -> dict:
    from metrics import build_metric

    from benchmarks.realscale import hardware, inmemory, models, scorers

    metrics, metric = [], None
    if args.metric and args.metric_options is not None:  # e.g. the tests' tiny scorer (the GPU suite's tiny mode)
        options = dict(args.metric_options)
        metric = build_metric(args.metric, **options)
        metric.load(device)
    elif args.metric:
        options = scorers.install(args.metric, work / "scorers", device, dtype)
        metric = build_metric(args.metric, **options)
        scorers.load_installed(metric, device)
    if metric is not None:
        if "dtype" in options:
            options["dtype"] = str(options["dtype"]).removeprefix("torch.")
        metrics = [{"class_path": args.metric, "init_args": options}]
    prompts = write_prompts(work / "prompts.jsonl", args.prompts)
    write_prompts(work / "warmup.jsonl", 1)
    adapter = {"class_path": inmemory.IN_MEMORY_ADAPTERS["sdxl"],
               "init_args": {"model": name, "dtype": str(dtype).removeprefix("torch."), "height": args.size,
                             "width": args.size}}
    config, warmup = work / "exp.yaml", work / "warmup.yaml"
    config.write_text(yaml.safe_dump(experiment(adapter, metrics, args.steps, work / "prompts.jsonl", args.batch,
                                                args.device)))
    warmup.write_text(yaml.safe_dump(experiment(adapter, metrics, 1, work / "warmup.jsonl", 1, args.device)))
    # untimed warm-up of both paths (first-call kernel selection, allocator pools, imports)
    plain_loop_in_memory(pipe, prompts[:1], 1, 1, args.size, work / "plain_warmup", metric)
    zeta_run(warmup, work / "warmup")

    def timed_predict(cfg: Path, tag: str) -> Callable[[int], int]:
        def run(r: int) -> int:
            zeta_run(cfg, work / f"out_{tag}{r}", write_queue=args.write_queue)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return args.prompts
        return run

    predict_key = "zeta_eval predict (PNG + Parquet" + (f" + {args.metric})" if args.metric else ")")
    plain_key = PLAIN + (f" (PNG + {args.metric})" if args.metric else " (PNG)")
    runs = {plain_key: lambda r: plain_loop_in_memory(pipe, prompts, args.batch, args.steps, args.size,
                                                      work / f"plain_{r}", metric),
            predict_key: timed_predict(config, "")}
    compiled = None
    if args.compile:
        settings = {"mode": args.compile, "backend": args.compile_backend}
        compiled = compile_warm_up(work, adapter, metrics, args, settings)
        compile_key = f"{predict_key[:-1]}, compile {args.compile} {args.compile_backend})"
        config_c = work / "exp_compile.yaml"
        config_c.write_text(yaml.safe_dump(experiment(adapter, metrics, args.steps, work / "prompts.jsonl", args.batch,
                                                      args.device, settings)))
        runs[compile_key] = timed_predict(config_c, "compile_")
    results = alternate(runs, args.repeats)
    unet = models.count_parameters(pipe.unet)
    writer = "inline writes" if args.write_queue == 0 else f"background writer (queue {args.write_queue or 'default'})"
    ratios = report(f"SDXL at real size (UNet {unet / 1e9:.2f} B, random weights, {dtype}), {args.size}x{args.size}, "
                    f"{args.prompts} prompts, batch {args.batch}, {args.steps} steps, {args.repeats} alternating "
                    f"repeats, device {args.device}, {args.threads} threads; predict: {writer}", results, plain_key)
    if compiled is not None:
        compiled.update(ratio=ratios[compile_key], images_per_s=statistics.median(results[compile_key]["wall"]),
                        images_per_cpu_s=statistics.median(results[compile_key]["cpu"]))
        print(f"compile: first calls {compiled['compile_s']:.1f} s (untimed warm-up run, {compiled['warmup_s']:.1f} s "
              f"in all); predict + compile / plain = {compiled['ratio']:.3f}")
    if args.profile:
        profile_predict(config, work / "profiled", args.profile)
    return {"images_per_s": {k: statistics.median(v["wall"]) for k, v in results.items()},
            "images_per_cpu_s": {k: statistics.median(v["cpu"]) for k, v in results.items()}, "runs": results,
            "ratio": ratios[predict_key], "compile": compiled, "hardware": hardware.describe(device, dtype)}


def compile_warm_up(work: Path, adapter: dict, metrics: list, args, settings: dict) -> dict:
    """One untimed ``predict`` with ``model.compile`` on one batch of the timed shape (one step): the UNet compiles
    for that shape here; later runs on the same pipeline reuse it. Its rows' ``compile_seconds`` and its wall time."""
    from zeta_eval.parts import read_parts

    source = work / "compile_warmup.jsonl"
    write_prompts(source, args.batch)
    config = work / "compile_warmup.yaml"
    config.write_text(yaml.safe_dump(experiment(adapter, metrics, 1, source, args.batch, args.device, settings)))
    start = time.perf_counter()
    zeta_run(config, work / "compile_warmup")
    rows = read_parts(work / "compile_warmup")[0].to_pylist()
    return {**settings, "compile_s": sum(r["compile_seconds"] or 0.0 for r in rows),
            "warmup_s": time.perf_counter() - start}


def profile_predict(config: Path, out: Path, path: Path) -> None:
    """One more predict run under cProfile: the stats go to ``path``, the top functions by own time to stdout."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(zeta_run, config, out)
    profiler.dump_stats(str(path))
    print(f"\ncProfile of one predict run ({path}), top 20 by own time:")
    pstats.Stats(str(path)).sort_stats("tottime").print_stats(20)


def main(argv=None, pipeline=None, metric_options: dict | None = None) -> dict:
    """Run the benchmark; ``pipeline``: an already-built SDXL pipeline (the GPU suite shares one), ``metric_options``:
    ``build_metric`` options of ``--metric`` instead of its real-size network (the GPU suite's tiny mode)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="tiny", choices=("tiny", "sdxl"))
    ap.add_argument("--prompts", type=int, default=None, help="default 32 (tiny), 4 (sdxl)")
    ap.add_argument("--batch", type=int, default=None, help="default 4 (tiny), 2 (sdxl)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--width", type=int, default=64, help="tiny: UNet channels of the first block")
    ap.add_argument("--size", type=int, default=None,
                    help="image side (tiny default 64: the tiny VAE halves it; sdxl default 256)")
    ap.add_argument("--metric", default=None, help="sdxl: the real-size scorer both sides run (default hpsv2; "
                                                   "'' for none)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--profile", type=Path, default=None, help="sdxl: cProfile one extra predict run into this file")
    ap.add_argument("--compile", nargs="?", const="default", default=None, metavar="MODE",
                    help="sdxl: also time predict with model.compile in this mode (default 'default')")
    ap.add_argument("--compile-backend", default="inductor", help="torch.compile backend of --compile")
    ap.add_argument("--write-queue", type=int, default=None,
                    help="predict's --write_queue (default: its own, the background writer; 0: inline writes)")
    args = ap.parse_args(argv)
    tiny = args.arch == "tiny"
    if args.compile and tiny:
        ap.error("--compile needs --arch sdxl (the tiny side loads its model inside the timed region)")
    args.prompts = args.prompts or (32 if tiny else 4)
    args.batch = args.batch or (4 if tiny else 2)
    args.size = args.size or (64 if tiny else 256)
    args.metric = None if tiny else ("hpsv2" if args.metric is None else args.metric)
    args.pipeline, args.metric_options = pipeline, metric_options
    torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="zeta_throughput_") as tmp:
        result = (run_tiny if tiny else run_sdxl)(args, Path(tmp))
    if torch.get_num_threads() != threads or threads != args.threads:
        raise SystemExit(f"thread count changed during the runs ({args.threads} -> {torch.get_num_threads()})")
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
