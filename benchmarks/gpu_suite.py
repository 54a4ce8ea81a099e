"""Everything GPU-specific in one call, in about 10 minutes on one GPU: figures as JSON and a markdown table.

    python benchmarks/gpu_suite.py [--out gpu_suite.json] [--tiny] [--device cuda|cpu] [--budget 600]

Sections (each runs on its own: an error is recorded in the JSON with its text and the suite goes on; the JSON is
rewritten after every section, so a timeout keeps what was measured; one status line per section on stdout):

  1. parity     fp16 vs fp32 of every tiny pipeline family (max |diff| of latents and media, standard sampler),
                and fp16 finiteness of every sampler on every family that can run it;
  2. samplers   SDXL at real size (random weights, benchmarks/realscale) at 1024x1024 in fp16: s/sample, NFE and
                peak memory of standard, zeta, implicit zigzag and zigzag (the paper's Table 7 form: 5.8 / 5.8 /
                17.8 s on an RTX 4090, +0.31 MB for zeta), and zeta's peak-memory delta against standard;
  3. mode_24gb  the configs/4090.yaml overlay (fp16, model CPU offload, VAE slicing and tiling, batch 1) under
                torch.cuda.set_per_process_memory_fraction(24 GiB / total): peak memory and s/sample;
  4. predict    ``zeta_eval predict`` (PNG + Parquet + an HPS-size scorer; background writer) against a plain
                diffusers loop doing the same work (benchmarks/pipeline_throughput.py --arch sdxl), without and with
                ``model.compile`` (mode default, inductor; the compile time of the first calls is reported apart);
                goal >= 1.10;
  5. scorers    each image scorer at real size: time per image as a fraction of one SDXL sample (section 2's
                standard sample, or measured here); goal: all together <= 10% of a sample.
  6. flow       SD 3.5 Medium (40 steps, γ 4.5) and FLUX.1-dev (28 steps, true CFG γ 1.5 over distilled guidance
                3.5) at real size (random weights, benchmarks/realscale) at 1024x1024 in bfloat16, through their
                adapters: s/sample, NFE, peak memory and finiteness of standard, zeta and zigzag, as far as the
                section's budget goes (what did not fit is listed).

``--tiny --device cpu`` runs the same code on the tests' tiny models (tests/test_gpu_suite.py), so the suite cannot
rot. The run order is 1, 2, 5, 3, 4, 6: the 24 GB section releases the shared real-size pipeline and lifts its cap on
this process's CUDA memory when it ends; predict, the longest of the SDXL sections, runs after it (and rebuilds the
pipeline), and the flow-matching models last, after SDXL is released. Nothing is downloaded; scratch files live in a
temporary folder that is removed at the end; the results are ``--out`` and the markdown table next to it (same name,
``.md``).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

SAMPLER_SETTINGS = {  # the paper's SDXL settings (configs/sdxl_pickapic.yaml)
    "standard": {"gamma1": 5.5},
    "zeta": {"gamma1": 5.5, "gamma2": 0.0, "warmup_steps": 3},
    "implicit_zigzag": {"gamma1": 5.5, "gamma2": 0.0},
    "zigzag": {"gamma1": 5.5, "gamma2": 0.0},
}
PAPER_TABLE7 = {"standard": 5.8, "zeta": 5.8, "zigzag": 17.8, "zeta_extra_mb": 0.31, "gpu": "RTX 4090"}
PROMPT = "a photo of an astronaut riding a horse on the moon"
GiB = 2**30


class Suite:
    """Shared state of one run: settings, the output, the scratch folder, the shared SDXL pipeline, the clock."""

    def __init__(self, args):
        self.args = args
        self.tiny = args.tiny
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        self.dtype = getattr(torch, args.dtype) if args.dtype else (torch.float16 if self.cuda else torch.float32)
        self.out = args.out
        self.work = Path(tempfile.mkdtemp(prefix="gpu_suite_"))
        self.results: dict[str, Any] = {"environment": environment(self.device), "settings": {
            "tiny": self.tiny, "device": str(self.device), "size": self.size, "steps": self.steps,
            "budget_s": args.budget}, "sections": {}}
        self._sdxl = None
        self.deadline = math.inf

    # sizes: the real protocol on the GPU, seconds-long on tiny CPU models
    @property
    def size(self) -> int:
        return self.args.size or (32 if self.tiny else 1024)

    @property
    def steps(self) -> int:
        return self.args.steps or (3 if self.tiny else 50)

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def sdxl(self):
        """The SDXL pipeline shared by sections 2, 4 and 5: real size in fp16 on the GPU, or the tests' tiny one."""
        if self._sdxl is None:
            if self.tiny:
                from diffusers import StableDiffusionXLPipeline

                from tiny_models import build_sdxl

                self._sdxl = StableDiffusionXLPipeline.from_pretrained(build_sdxl(self.work / "tiny_sdxl"))
                self._sdxl.to(self.device)
            else:
                from benchmarks.realscale import models

                self._sdxl = models.sdxl_pipeline(self.dtype, self.device)
            self._sdxl.set_progress_bar_config(disable=True)
        return self._sdxl

    def release_sdxl(self) -> None:
        from benchmarks.realscale import models

        self._sdxl = None
        models.release_memory()

    def sdxl_adapter(self, pipe, **options):
        from zeta_eval.adapters import build_adapter

        adapter = build_adapter("sdxl", model="realscale/sdxl" if not self.tiny else "tiny/sdxl",
                                dtype=str(self.dtype).removeprefix("torch."), height=self.size, width=self.size,
                                **options)
        adapter.load(self.device, pipeline=pipe)
        return adapter

    def write(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.results, indent=1, default=str))
        self.out.with_suffix(".md").write_text(markdown(self.results))


def quiet_libraries() -> None:
    """No download / loading progress bars from the libraries in the suite's output."""
    for module in ("diffusers.utils.logging", "transformers.utils.logging"):
        try:
            __import__(module, fromlist=["disable_progress_bar"]).disable_progress_bar()
        except ImportError:  # recorded by environment(); the sections that need it fail with the reason
            pass


def environment(device: torch.device) -> dict[str, Any]:
    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "torch_compile": hasattr(torch, "compile")}
    for name in ("diffusers", "transformers", "lightning", "open_clip"):
        try:
            env[name] = __import__(name).__version__
        except Exception as err:  # noqa: BLE001 - a missing package is a finding, recorded
            env[name] = f"unavailable ({type(err).__name__}: {err})"
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / GiB, 1))
    return env


# ---------------------------------------------------------------------------------------------- measuring
def run_sample(suite: Suite, adapter, sampler, cond, seed: int, steps: int | None = None) -> dict[str, Any]:
    """One sample the way the evaluation module draws it: seconds of sampling (synchronised) and of decoding, NFE,
    the sampler's peak CUDA memory, finiteness (``steps``: the suite's unless given)."""
    solver = adapter.solver(steps or suite.steps)
    x = adapter.initial_latents([seed], solver)
    denoiser = adapter.denoiser(cond, sampler.perturbation)
    if suite.cuda:
        suite.sync()
        torch.cuda.reset_peak_memory_stats(suite.device)
    start = time.perf_counter()
    with torch.inference_mode():
        out = sampler.sample(denoiser, x, solver)
    suite.sync()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(suite.device) if suite.cuda else None
    start = time.perf_counter()
    with torch.inference_mode():
        media = adapter.decode(out.latents)
    suite.sync()
    return {"seconds": seconds, "decode_seconds": time.perf_counter() - start, "nfe": int(out.nfe),
            "peak_bytes": peak, "finite": bool(torch.isfinite(out.latents).all() and torch.isfinite(media).all()),
            "latents": out.latents, "media": media}


def build_samplers() -> dict[str, Any]:
    from samplers import build_sampler

    return {name: build_sampler(name, **params) for name, params in SAMPLER_SETTINGS.items()}


# ---------------------------------------------------------------------------------------------- 1. parity
def section_parity(suite: Suite) -> dict[str, Any]:
    """fp16 vs fp32 on every tiny family; fp16 finiteness of every sampler the family can run."""
    from samplers import SAMPLERS, build_sampler
    from tiny_models import ADAPTER_OPTIONS, BUILDERS, FAMILY_OF
    from zeta_eval.adapters import build_adapter

    families: dict[str, Any] = {}
    steps = 4
    for family, builder in BUILDERS.items():
        folder = builder(suite.work / "tiny" / family)
        adapters = {}
        for dtype in ("float32", "float16"):
            adapters[dtype] = build_adapter(FAMILY_OF.get(family, family), model=folder, dtype=dtype,
                                            **ADAPTER_OPTIONS[family])
            adapters[dtype].load(suite.device)
        outputs = {}
        for dtype, adapter in adapters.items():
            cond = adapter.encode(["a red car", "a blue house"])
            solver = adapter.solver(steps)
            x = adapter.initial_latents([0, 1], solver)
            with torch.inference_mode():
                out = build_sampler("standard").sample(adapter.denoiser(cond), x, solver)
                outputs[dtype] = (out.latents.float(), adapter.decode(out.latents).float())
        (l32, m32), (l16, m16) = outputs["float32"], outputs["float16"]
        finite: dict[str, Any] = {}
        fp16 = adapters["float16"]
        for name in SAMPLERS:
            sampler = build_sampler(name)
            try:
                fp16.check_sampler(sampler)
            except ValueError:
                finite[name] = "not supported by this family"
                continue
            solver = fp16.solver(steps)
            x = fp16.initial_latents([0], solver)
            with torch.inference_mode():
                out = sampler.sample(fp16.denoiser(fp16.encode(["a red car"]), sampler.perturbation), x, solver)
                media = fp16.decode(out.latents)
            finite[name] = bool(torch.isfinite(out.latents).all() and torch.isfinite(media).all())
        families[family] = {
            "network_dtype": {d: str(a.network_dtype).removeprefix("torch.") for d, a in adapters.items()},
            "max_abs_diff_latents": float((l32 - l16).abs().max()),
            "max_abs_diff_media": float((m32 - m16).abs().max()),
            "fp16_finite": finite}
    note = None if suite.cuda else "on CPU the adapters run float32 whatever the dtype: the differences are 0"
    all_finite = all(v is True for f in families.values() for v in f["fp16_finite"].values() if isinstance(v, bool))
    return {"families": families, "all_fp16_finite": all_finite, "note": note,
            "summary": f"max abs diff of media {max(f['max_abs_diff_media'] for f in families.values()):.2e}, "
                       f"fp16 all finite: {all_finite}"}


# ---------------------------------------------------------------------------------------------- 2. samplers
def section_samplers(suite: Suite) -> dict[str, Any]:
    """SDXL s/sample, NFE, peak memory of the four samplers; alternating repeats while the budget lasts."""
    pipe = suite.sdxl()
    adapter = suite.sdxl_adapter(pipe)
    cond = adapter.encode([PROMPT])
    samplers = build_samplers()
    warm = run_sample(suite, adapter, samplers["standard"], cond, seed=0)  # kernels, allocator pools
    runs: dict[str, list[dict]] = {name: [] for name in samplers}
    repeats = 0
    while repeats < suite.args.max_repeats:
        order = list(samplers) if repeats % 2 == 0 else list(reversed(samplers))
        for name in order:
            runs[name].append(run_sample(suite, adapter, samplers[name], cond, seed=repeats))
        repeats += 1
        per_repeat = sum(r[-1]["seconds"] + r[-1]["decode_seconds"] for r in runs.values())
        if repeats >= 1 and suite.time_left() < per_repeat * 1.2:
            break
    table = {}
    for name, rs in runs.items():
        table[name] = {"s_per_sample": statistics.median(r["seconds"] for r in rs),
                       "decode_s": statistics.median(r["decode_seconds"] for r in rs), "nfe": rs[0]["nfe"],
                       "peak_mb": rs[0]["peak_bytes"] / 2**20 if rs[0]["peak_bytes"] is not None else None,
                       "finite": all(r["finite"] for r in rs), "repeats": len(rs)}
    base = table["standard"]
    for row in table.values():
        row["time_ratio"] = row["s_per_sample"] / base["s_per_sample"]
        row["nfe_ratio"] = row["nfe"] / base["nfe"]
    zeta_delta = None
    if base["peak_mb"] is not None:
        zeta_delta = table["zeta"]["peak_mb"] - base["peak_mb"]
    encode = _encode_seconds(suite, adapter)
    suite.results["sdxl_sample_s"] = encode + base["s_per_sample"] + base["decode_s"]
    del warm
    return {"samplers": table, "zeta_peak_delta_mb": zeta_delta, "encode_s": encode,
            "latent_mb": 4 * (suite.size // 8) ** 2 * 4 / 2**20, "paper_table7": PAPER_TABLE7,
            "summary": ", ".join(f"{k} {v['s_per_sample']:.2f} s" for k, v in table.items())
                       + (f"; zeta peak {zeta_delta:+.2f} MB" if zeta_delta is not None else "")}


def _encode_seconds(suite: Suite, adapter) -> float:
    suite.sync()
    start = time.perf_counter()
    with torch.inference_mode():
        adapter.encode([PROMPT])
    suite.sync()
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------- 3. 24 GB mode
def section_24gb(suite: Suite) -> dict[str, Any]:
    """The 4090 overlay's adapter options under a 24 GiB cap on this process's CUDA memory."""
    overlay = yaml.safe_load((ROOT / "configs" / "4090.yaml").read_text())
    options = dict(overlay["model"]["adapter"]["init_args"])
    batch = overlay["data"]["batch_size"]
    notes = []
    suite.release_sdxl()
    fraction = None
    held_mb = torch.cuda.memory_allocated(suite.device) / 2**20 if suite.cuda else None  # should be ~0 now
    if suite.cuda:
        total = torch.cuda.get_device_properties(suite.device).total_memory
        fraction = min(1.0, 24 * GiB / total)
        torch.cuda.set_per_process_memory_fraction(fraction, suite.device)
    else:
        options["offload"] = "none"
        notes.append("offload: model needs CUDA; on CPU the other options of the overlay are applied")
    try:
        if suite.tiny:
            from diffusers import StableDiffusionXLPipeline

            from tiny_models import build_sdxl

            pipe = StableDiffusionXLPipeline.from_pretrained(build_sdxl(suite.work / "tiny_sdxl_24gb"),
                                                             torch_dtype=suite.dtype)
        else:
            from benchmarks.realscale import models

            pipe = models.sdxl_pipeline(suite.dtype, "cpu")  # offload moves each component to the GPU in turn
        pipe.set_progress_bar_config(disable=True)
        options.pop("dtype", None)
        adapter = suite.sdxl_adapter(pipe, **options)
        samplers = build_samplers()
        rows = {}
        for name in ("standard", "zeta"):
            if suite.cuda:
                torch.cuda.reset_peak_memory_stats(suite.device)
            start = time.perf_counter()
            cond = adapter.encode([PROMPT] * batch)
            encode_s = time.perf_counter() - start
            run = run_sample(suite, adapter, samplers[name], cond, seed=0)
            rows[name] = {"s_per_sample": run["seconds"], "decode_s": run["decode_seconds"], "encode_s": encode_s,
                          "nfe": run["nfe"], "finite": run["finite"],
                          "peak_allocated_mb": torch.cuda.max_memory_allocated(suite.device) / 2**20
                          if suite.cuda else None,
                          "peak_reserved_mb": torch.cuda.max_memory_reserved(suite.device) / 2**20
                          if suite.cuda else None}
    finally:
        if suite.cuda:
            torch.cuda.set_per_process_memory_fraction(1.0, suite.device)
    within = all(r["peak_reserved_mb"] is None or r["peak_reserved_mb"] <= 24 * 1024 for r in rows.values())
    return {"overlay": options, "batch_size": batch, "memory_fraction": fraction, "allocated_before_mb": held_mb,
            "samplers": rows,
            "within_24gib": within, "notes": notes,
            "summary": ", ".join(f"{k} {v['s_per_sample']:.2f} s" + (f" peak {v['peak_reserved_mb']:.0f} MB reserved"
                                                                   if v["peak_reserved_mb"] else "")
                                 for k, v in rows.items())}


# ---------------------------------------------------------------------------------------------- 4. predict
def section_predict(suite: Suite) -> dict[str, Any]:
    """benchmarks/pipeline_throughput.py --arch sdxl on the shared pipeline."""
    from benchmarks import pipeline_throughput

    metric, metric_options = _predict_metric(suite)
    argv = ["--arch", "sdxl", "--device", str(suite.device), "--size", str(suite.size), "--metric", metric,
            "--dtype", str(suite.dtype).removeprefix("torch."), "--threads", str(torch.get_num_threads())]
    argv += (["--prompts", "2", "--batch", "2", "--steps", "2", "--repeats", "1"] if suite.tiny else
             ["--prompts", "8", "--batch", "4", "--steps", str(min(30, suite.steps)), "--repeats", "2"])
    # tiny runs check the wiring with the eager backend (inductor on a CPU takes minutes to build its kernels)
    argv += ["--compile", "default", "--compile-backend", "eager" if suite.tiny else "inductor"]
    result = pipeline_throughput.main(argv, pipeline=suite.sdxl(), metric_options=metric_options)
    compiled = result["compile"]
    best = max(result["ratio"], compiled["ratio"])
    return {"metric": metric, "settings": argv, **result, "goal": 1.10, "goal_met": best >= 1.10,
            "summary": f"predict / plain = {result['ratio']:.3f}, with compile {compiled['ratio']:.3f} (first calls "
                       f"{compiled['compile_s']:.0f} s apart; goal >= 1.10) with {metric}"}


def _predict_metric(suite: Suite) -> tuple[str, dict | None]:
    """HPS v2 (open_clip); PickScore (the same ViT-H/14 size, transformers only) where open_clip cannot load.
    Tiny runs use the tests' tiny HPS model."""
    try:
        import open_clip  # noqa: F401
    except Exception:  # noqa: BLE001 - e.g. torchvision missing on the machine
        return "pickscore", _tiny_metric_options(suite, "pickscore") if suite.tiny else None
    return "hpsv2", _tiny_metric_options(suite, "hpsv2") if suite.tiny else None


def _tiny_metric_options(suite: Suite, name: str) -> dict:
    from benchmarks.metric_cost import tiny_settings

    folder = suite.work / "tiny_scorers"
    if not hasattr(suite, "_tiny_scorers"):
        folder.mkdir(parents=True, exist_ok=True)
        suite._tiny_scorers = tiny_settings(folder)
    return suite._tiny_scorers[name]


# ---------------------------------------------------------------------------------------------- 5. scorers
def section_scorers(suite: Suite) -> dict[str, Any]:
    """Each real-size image scorer's time per image (batch 4, fp16) against one SDXL sample."""
    from benchmarks import metric_cost

    sample_s = suite.results.get("sdxl_sample_s")
    if sample_s is None:  # section 2 failed: measure the sample cost here
        gen = metric_cost.sdxl_sample_cost(suite.sdxl(), suite.size, suite.steps, 3, suite.device)
        sample_s = gen["sample_s"]
    args = argparse.Namespace(batch=4, size=suite.size, frames=8, repeats=5)
    rows = []
    if suite.tiny:
        for name in ("hpsv2", "pickscore", "image_reward", "aesthetic", "clip_score"):
            rows.append(metric_cost.measure(name, _tiny_metric_options(suite, name), args, suite.device))
    else:
        from benchmarks.realscale import scorers

        args.metrics = list(scorers.REAL_SIZE_METRICS)
        failures = {}
        for name in args.metrics:  # one at a time: a scorer that cannot build (e.g. open_clip absent) is recorded
            args.metrics = [name]
            try:
                rows += metric_cost.real_size_costs(args, suite.device, suite.dtype)
            except Exception as err:  # noqa: BLE001 - recorded per scorer, the others still run
                failures[name] = f"{type(err).__name__}: {err}"
    table = {r["name"]: {"ms_per_image": 1000 * r["per_item_s"], "fraction_of_sample": r["per_item_s"] / sample_s,
                         "build_or_load_s": r["load_s"]} for r in rows if r["per_item_s"] is not None}
    total = sum(r["fraction_of_sample"] for r in table.values())
    result = {"sdxl_sample_s": sample_s, "scorers": table, "all_scorers_fraction": total, "goal": 0.10,
              "goal_met": total <= 0.10,
              "summary": f"all scorers {100 * total:.1f}% of an SDXL sample ({sample_s:.2f} s; goal <= 10%)"}
    if not suite.tiny and failures:
        result["errors"] = failures
        raise SectionPartial(result)
    return result


# ---------------------------------------------------------------------------------------------- 6. flow models
#: the flow-matching models at real size: adapter family and options, the configs' steps and γ1
FLOW_MODELS = {
    "sd35_medium": {"family": "sd3", "options": {}, "steps": 40, "gamma1": 4.5},
    "flux_dev": {"family": "flux", "options": {"distilled_guidance": 3.5}, "steps": 28, "gamma1": 1.5},
}


def _flow_pipeline(suite: Suite, name: str):
    """The real-size pipeline (random weights) in bfloat16 on the GPU, or the tests' tiny one."""
    if suite.tiny:
        import diffusers

        from tiny_models import BUILDERS, PIPELINE_CLASSES

        key = {"sd35_medium": "sd3", "flux_dev": "flux"}[name]
        pipe = getattr(diffusers, PIPELINE_CLASSES[key]).from_pretrained(BUILDERS[key](suite.work / f"tiny_{key}"))
        return pipe.to(suite.device), suite.dtype
    from benchmarks.realscale import models

    dtype = torch.bfloat16 if suite.cuda else suite.dtype  # both ship bfloat16 weights
    return (models.sd35_pipeline("medium", dtype, suite.device) if name == "sd35_medium"
            else models.flux_pipeline(dtype, suite.device)), dtype


def section_flow(suite: Suite) -> dict[str, Any]:
    """SD 3.5 Medium and FLUX.1-dev at real size through their adapters: standard, zeta, zigzag."""
    from benchmarks.realscale import models
    from samplers import build_sampler
    from zeta_eval.adapters import build_adapter

    suite.release_sdxl()
    table: dict[str, Any] = {}
    skipped: list[str] = []
    for name, spec in FLOW_MODELS.items():
        model_steps = suite.steps if suite.tiny else min(suite.args.steps or spec["steps"], spec["steps"])
        start = time.perf_counter()
        pipe, dtype = _flow_pipeline(suite, name)
        adapter = build_adapter(spec["family"], model=f"{'tiny' if suite.tiny else 'realscale'}/{name}",
                                dtype=str(dtype).removeprefix("torch."), height=suite.size, width=suite.size,
                                max_sequence_length=32 if suite.tiny else (256 if name == "sd35_medium" else 512),
                                **spec["options"])
        adapter.load(suite.device, pipeline=pipe)
        build_s = time.perf_counter() - start
        cond = adapter.encode([PROMPT])
        rows: dict[str, Any] = {}
        gamma = spec["gamma1"]
        chosen = {"standard": build_sampler("standard", gamma1=gamma),
                  "zeta": build_sampler("zeta", gamma1=gamma, gamma2=0.0, warmup_steps=3),
                  "zigzag": build_sampler("zigzag", gamma1=gamma, gamma2=0.0)}
        for sampler_name, sampler in chosen.items():
            if rows and suite.time_left() < 1.2 * rows["standard"]["s_per_sample"] * sampler.expected_nfe(
                    model_steps) / chosen["standard"].expected_nfe(model_steps):
                skipped.append(f"{name}/{sampler_name}")
                continue
            run = run_sample(suite, adapter, sampler, cond, seed=0, steps=model_steps)
            rows[sampler_name] = {"s_per_sample": run["seconds"], "decode_s": run["decode_seconds"],
                                  "nfe": run["nfe"], "finite": run["finite"],
                                  "peak_mb": run["peak_bytes"] / 2**20 if run["peak_bytes"] is not None else None}
        base = rows["standard"]
        for row in rows.values():
            row["time_ratio"] = row["s_per_sample"] / base["s_per_sample"]
            row["nfe_ratio"] = row["nfe"] / base["nfe"]
        table[name] = {"steps": model_steps, "dtype": str(dtype).removeprefix("torch."), "build_s": build_s,
                       "parameters": models.count_parameters(adapter.pipe.transformer), "samplers": rows}
        del pipe, adapter, cond
        models.release_memory()
    finite = all(r["finite"] for m in table.values() for r in m["samplers"].values())
    summary = "; ".join(f"{n}: " + ", ".join(f"{k} {v['s_per_sample']:.2f} s" for k, v in m["samplers"].items())
                        for n, m in table.items())
    return {"models": table, "all_finite": finite, "skipped_for_budget": skipped,
            "summary": summary + (f"; skipped {', '.join(skipped)}" if skipped else "")}


class SectionPartial(Exception):
    """A section that measured part of what it should: its result is kept, its status is 'error'."""

    def __init__(self, result: dict[str, Any]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in result.get("errors", {}).items()))
        self.result = result


# ---------------------------------------------------------------------------------------------- running
#: (key, title, function, share of the budget); run in this order
SECTIONS: list[tuple[str, str, Callable[[Suite], dict], float]] = [
    # shares of the 600 s default budget: the SDXL sections keep the seconds they had of 480 s
    ("1_parity", "fp16 vs fp32 parity, fp16 finiteness (tiny families)", section_parity, 0.064),
    ("2_samplers", "SDXL 1024x1024 fp16: s/sample, NFE, peak memory", section_samplers, 0.24),
    ("5_scorers", "scorer cost vs one SDXL sample", section_scorers, 0.12),
    ("3_mode_24gb", "24 GB mode (4090.yaml overlay)", section_24gb, 0.136),
    ("4_predict", "predict vs plain diffusers loop", section_predict, 0.20),
    ("6_flow", "SD 3.5 Medium and FLUX.1-dev at real size: standard, zeta, zigzag", section_flow, 0.20),
]


def run_section(suite: Suite, key: str, title: str, fn: Callable[[Suite], dict], share: float,
                end: float) -> None:
    start = time.monotonic()
    suite.deadline = min(end, start + share * suite.args.budget)
    record: dict[str, Any] = {"title": title}
    try:
        record.update(fn(suite))
        record["status"] = "ok"
    except SectionPartial as partial:
        record.update(partial.result)
        record.update(status="error", error=str(partial))
    except Exception as err:  # noqa: BLE001 - each section is independent: record the error and go on
        record.update(status="error", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())
    record["seconds"] = round(time.monotonic() - start, 1)
    if suite.cuda:
        record["max_memory_allocated_mb"] = torch.cuda.max_memory_allocated(suite.device) / 2**20
    suite.results["sections"][key] = record
    suite.write()
    line = record.get("summary", "") if record["status"] == "ok" else record["error"].splitlines()[0][:300]
    print(f"[{key}] {record['status']:5s} {record['seconds']:6.1f} s  {line}", flush=True)


def markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = [f"# GPU suite ({'tiny models' if results['settings']['tiny'] else 'real size'})", "",
             f"{env.get('gpu', 'no GPU')}, torch {env['torch']} (CUDA {env['cuda']}), diffusers {env['diffusers']}, "
             f"transformers {env['transformers']}; {results['settings']['size']} px, {results['settings']['steps']} "
             "steps", "", "| section | status | seconds | result |", "|---|---|---|---|"]
    for key, rec in sorted(results["sections"].items()):
        text = rec.get("summary", "") if rec["status"] == "ok" else rec.get("error", "").splitlines()[0][:200]
        lines.append(f"| {key} {rec['title']} | {rec['status']} | {rec['seconds']} | {text.replace('|', '/')} |")
    sampl = results["sections"].get("2_samplers", {}).get("samplers")
    if sampl:
        lines += ["", "| sampler | s/sample | NFE | time ratio | NFE ratio | peak MB |", "|---|---|---|---|---|---|"]
        for name, row in sampl.items():
            peak = f"{row['peak_mb']:.1f}" if row["peak_mb"] is not None else "-"
            lines.append(f"| {name} | {row['s_per_sample']:.3f} | {row['nfe']} | {row['time_ratio']:.3f} | "
                         f"{row['nfe_ratio']:.3f} | {peak} |")
    flow = results["sections"].get("6_flow", {}).get("models")
    if flow:
        lines += ["", "| model | steps | sampler | s/sample | NFE | time ratio | NFE ratio | peak MB |",
                  "|---|---|---|---|---|---|---|---|"]
        for model, rec in flow.items():
            for name, row in rec["samplers"].items():
                peak = f"{row['peak_mb']:.1f}" if row["peak_mb"] is not None else "-"
                lines.append(f"| {model} | {rec['steps']} | {name} | {row['s_per_sample']:.3f} | {row['nfe']} | "
                             f"{row['time_ratio']:.3f} | {row['nfe_ratio']:.3f} | {peak} |")
    score = results["sections"].get("5_scorers", {}).get("scorers")
    if score:
        lines += ["", "| scorer | ms/image | fraction of an SDXL sample |", "|---|---|---|"]
        lines += [f"| {name} | {row['ms_per_image']:.1f} | {row['fraction_of_sample']:.4f} |"
                  for name, row in score.items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("gpu_suite.json"))
    ap.add_argument("--tiny", action="store_true", help="the tests' tiny models (seconds on a CPU)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--budget", type=float, default=600.0, help="seconds for all sections together")
    ap.add_argument("--max-repeats", type=int, default=3, help="section 2: repeats while the budget lasts")
    ap.add_argument("--sections", nargs="*", default=None, help="keys to run (default: all)")
    ap.add_argument("--size", type=int, default=None, help="image side (default 1024; tiny 32)")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default 50; tiny 3); predict: at most 30")
    ap.add_argument("--dtype", default=None, help="default float16 on CUDA, float32 on CPU")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_suite: error: no CUDA device; use --device cpu (with --tiny) to run it on the CPU", file=sys.stderr)
        return 2
    quiet_libraries()
    suite = Suite(args)
    end = time.monotonic() + args.budget
    print(f"GPU suite: {suite.results['environment']}", flush=True)
    try:
        for key, title, fn, share in SECTIONS:
            if args.sections is None or key in args.sections:
                run_section(suite, key, title, fn, share, end)
    finally:
        shutil.rmtree(suite.work, ignore_errors=True)
    print("\n" + markdown(suite.results))
    failed = [k for k, r in suite.results["sections"].items() if r["status"] != "ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
