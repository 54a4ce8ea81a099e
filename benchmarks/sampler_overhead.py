"""Wall time and memory of each sampler relative to standard CFG, on a small or a real-size diffusers UNet.

    python benchmarks/sampler_overhead.py [--steps 20] [--repeats 7] [--batch 4] [--device cpu|cuda]
    python benchmarks/sampler_overhead.py --arch sdxl [--size 256] [--steps 10] [--repeats 3] [--batch 1]
                                          [--dtype bfloat16|float16|float32]
    python benchmarks/sampler_overhead.py --measure [--samplers standard,zeta] [--no-memory] ...

``--arch tiny`` (default): a 3 M-parameter UNet, DDIM. ``--arch sdxl``: SDXL base's UNet at its real size (2.57 B
parameters, random weights, benchmarks/realscale), its Euler scheduler, fixed random text embeddings of the real
shapes (77 x 2048 tokens, 1280 pooled, 6 time ids); bfloat16 weights on CPU and float16 on CUDA by default.
The flow-matching transformers at real size, with their flow-matching Euler schedules and random text embeddings of
the real shapes (each branch its own draw): ``--arch sd35_medium | sd35_large`` (MMDiT; 77 CLIP + 256 T5 tokens of
4096, 2048 pooled; shift 3), ``--arch flux`` (FLUX.1-dev; 512 T5 tokens, 768 pooled, distilled guidance 3.5, packed
latents with the pipeline's position ids, dynamic shift), ``--arch wan_1_3b | wan_14b`` (Wan 2.1; 512 UMT5 tokens,
``--frames`` video frames, shift 3). The dtype used is printed.

Every sampler runs the same steps from the same latents; samplers alternate within each repeat (so drift in machine
load hits all of them alike) and the median over repeats is reported as a ratio to standard, in wall time and, on
CPU, in this process's CPU time (the ratio that survives a machine shared with other jobs). Memory: on CUDA the peak
allocated bytes; on CPU the largest total of live tensor bytes (parameters excluded) seen at any network call, i.e.
what the sampler and the network's inputs hold, reported as extra bytes over standard and in latent-sized units
(measured over the first 6 steps, by which every sampler holds all its buffers).

``--measure``: the cost of measuring guidance (samplers/guidance.py, what the pipeline does on every sample). Each
sampler also runs measured, alternating with its plain runs; reported: the ratio of the medians (measured / plain),
and, robust to a noisy machine, the seconds spent inside the meter itself (its two hooks, timed around each call) as
a share of the measured run's time.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]

from diffusers import DDIMScheduler, UNet2DConditionModel  # noqa: E402

from benchmarks.realscale import hardware  # noqa: E402
from samplers import ImplicitZigzag, Standard, Zeta, Zigzag, sample_measured, solver_from_scheduler  # noqa: E402
from samplers.guidance import GuidanceMeter  # noqa: E402


class MeterClock:
    """Times the meter's two hooks (every bit of work measuring adds to a run) by wrapping them on the class."""

    def __init__(self):
        self.seconds = 0.0
        for name in ("evaluated", "stepped"):
            setattr(GuidanceMeter, name, self._timed(getattr(GuidanceMeter, name)))

    def _timed(self, method):
        def timed(meter, *args, **kwargs):
            start = time.perf_counter()
            try:
                return method(meter, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        return timed


def build_tiny_unet(seed: int = 0) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(64, 128),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64, attention_head_dim=8, norm_num_groups=32).eval()


class UNetDenoiser:
    """Batched branches of a UNet over fixed conditioning kwargs; optionally records live tensor bytes per call."""

    def __init__(self, unet, cond: dict, uncond: dict, census: bool):
        self.unet, self.cond, self.uncond, self.census = unet, cond, uncond, census
        self.param_ids = {id(p) for p in unet.parameters()} | {id(b) for b in unet.buffers()}
        self.peak_live = 0

    def live_bytes(self) -> int:
        gc.collect()
        total = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for o in gc.get_objects():
                if isinstance(o, torch.Tensor) and id(o) not in self.param_ids and o.device.type == "cpu":
                    n = o.nelement()
                    if isinstance(n, int):  # not the symbolic tensors torch.compile may leave in the process
                        total += o.element_size() * n
        return total

    def __call__(self, x, t, branches):
        if self.census:
            self.peak_live = max(self.peak_live, self.live_bytes())
        parts = [self.uncond if b == "uncond" else self.cond for b in branches]
        kwargs = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        added = {k: kwargs.pop(k) for k in ("text_embeds", "time_ids") if k in kwargs}
        dtype = self.unet.dtype
        out = self.unet(torch.cat([x] * len(branches)).to(dtype), t, added_cond_kwargs=added or None, **kwargs).sample
        return out.to(x.dtype).chunk(len(branches))


def tiny_setup(args, dev):
    """The 3 M-parameter UNet, DDIM, random 8-token text embeddings."""
    unet = build_tiny_unet().to(dev, getattr(torch, args.dtype or "float32"))
    g = torch.Generator().manual_seed(1)
    cond = {"encoder_hidden_states": torch.randn(args.batch, 8, 64, generator=g).to(dev, unet.dtype)}
    uncond = {"encoder_hidden_states": torch.zeros_like(cond["encoder_hidden_states"])}
    x0 = torch.randn(args.batch, 4, 32, 32, generator=g).to(dev)
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    return unet, cond, uncond, x0, scheduler


def sdxl_setup(args, dev):
    """SDXL base's UNet at real size (random weights), its Euler scheduler, real-shaped random conditioning."""
    from diffusers import EulerDiscreteScheduler

    from benchmarks.realscale import models

    dtype = hardware.resolve_dtype(args.dtype, dev)
    cfg = models.load_config("sdxl_base_1_0")
    with models.empty_parameters():
        unet = UNet2DConditionModel(**cfg["unet"])
    models.RandomInit(0, dev).materialise(unet, dtype)
    models.check_count("SDXL unet", unet, cfg["published_params"]["unet"])
    g = torch.Generator().manual_seed(1)
    tokens, pooled = cfg["unet"]["cross_attention_dim"], cfg["text_encoder_2"]["projection_dim"]
    time_ids = torch.tensor([[args.size, args.size, 0, 0, args.size, args.size]] * args.batch, dtype=torch.float32)
    cond = {"encoder_hidden_states": torch.randn(args.batch, 77, tokens, generator=g),
            "text_embeds": torch.randn(args.batch, pooled, generator=g), "time_ids": time_ids}
    uncond = {k: torch.zeros_like(v) if k != "time_ids" else v for k, v in cond.items()}  # SDXL's zeroed empty prompt
    cond, uncond = ({k: v.to(dev, dtype) for k, v in c.items()} for c in (cond, uncond))
    latent = args.size // 8
    x0 = torch.randn(args.batch, 4, latent, latent, generator=g).to(dev)
    return unet, cond, uncond, x0, EulerDiscreteScheduler(**cfg["scheduler"])


class TransformerDenoiser(UNetDenoiser):
    """Batched branches of a flow-matching transformer: ``call(network, x, t, kwargs)`` runs one batched call."""

    def __init__(self, network, cond: dict, uncond: dict, census: bool, call):
        super().__init__(network, cond, uncond, census)
        self.call = call

    def __call__(self, x, t, branches):
        if self.census:
            self.peak_live = max(self.peak_live, self.live_bytes())
        parts = [self.uncond if b == "uncond" else self.cond for b in branches]
        kwargs = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        dtype = next(self.unet.parameters()).dtype
        x_in = torch.cat([x] * len(branches)).to(dtype)
        out = self.call(self.unet, x_in, torch.full((x_in.shape[0],), float(t), device=x.device), kwargs)
        return out.to(x.dtype).chunk(len(branches))


FLOW_ARCHS = {"sd35_medium": "sd_3_5_medium", "sd35_large": "sd_3_5_large", "flux": "flux_1_dev",
              "wan_1_3b": "wan_2_1_t2v_1_3b", "wan_14b": "wan_2_1_t2v_14b"}


def flow_setup(args, dev):
    """A flow-matching transformer at real size (random weights), its schedule, real-shaped random conditioning."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from benchmarks.realscale import models

    dtype = hardware.resolve_dtype(args.dtype, dev)
    network, cfg = models.flow_transformer(FLOW_ARCHS[args.arch], dtype, dev)
    g = torch.Generator().manual_seed(1)
    b, side = args.batch, args.size // 8

    def set_timesteps(steps: int) -> dict:
        return {}

    def draw(*shape):
        return torch.randn(*shape, generator=g).to(dev, dtype)

    if args.arch.startswith("sd35"):
        n_text = args.text_tokens or 77 + 256
        def tokens():
            return {"encoder_hidden_states": draw(b, n_text, 4096), "pooled_projections": draw(b, 2048)}
        x0 = torch.randn(b, 16, side, side, generator=g).to(dev)
        scheduler = FlowMatchEulerDiscreteScheduler(**cfg["scheduler"])

        def call(net, x, t, kw):
            return net(hidden_states=x, timestep=t, return_dict=False, **kw)[0]
    elif args.arch == "flux":
        from zeta_eval.adapters.flow import calculate_shift
        from zeta_eval.adapters.flux import FluxAdapter

        n_text = args.text_tokens or 512
        def tokens():
            return {"encoder_hidden_states": draw(b, n_text, 4096), "pooled_projections": draw(b, 768)}
        side = 2 * (args.size // 16)
        x0 = torch.randn(b, 16, side, side, generator=g).to(dev)
        ids = torch.zeros(side // 2, side // 2, 3)
        ids[..., 1], ids[..., 2] = torch.arange(side // 2)[:, None], torch.arange(side // 2)[None, :]
        img_ids, txt_ids = ids.reshape(-1, 3).to(dev, dtype), torch.zeros(n_text, 3, device=dev, dtype=dtype)
        sch = cfg["scheduler"]
        scheduler = FlowMatchEulerDiscreteScheduler(**sch)
        mu = calculate_shift((side // 2) ** 2, sch["base_image_seq_len"], sch["max_image_seq_len"], sch["base_shift"],
                             sch["max_shift"])

        def set_timesteps(steps: int) -> dict:  # the pipeline's linear sigmas and its mu
            return {"sigmas": np.linspace(1.0, 1.0 / steps, steps).tolist(), "mu": mu}

        def call(net, x, t, kw):
            guidance = torch.full((x.shape[0],), 3.5, device=x.device, dtype=torch.float32)
            out = net(hidden_states=FluxAdapter.pack(x), timestep=t.to(x.dtype) / 1000, guidance=guidance,
                      txt_ids=txt_ids, img_ids=img_ids, return_dict=False, **kw)[0]
            return FluxAdapter.unpack(out, side, side)
    else:
        n_text = args.text_tokens or 512
        def tokens():
            return {"encoder_hidden_states": draw(b, n_text, 4096)}
        x0 = torch.randn(b, 16, (args.frames - 1) // 4 + 1, side, side, generator=g).to(dev)
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=cfg["scheduler"]["flow_shift"])

        def call(net, x, t, kw):
            return net(hidden_states=x, timestep=t, return_dict=False, **kw)[0]
    cond, uncond = tokens(), tokens()
    return network, cond, uncond, x0, scheduler, call, set_timesteps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=None, help="default 20 (tiny), 10 (sdxl)")
    ap.add_argument("--repeats", type=int, default=None, help="default 7 (tiny), 3 (sdxl)")
    ap.add_argument("--batch", type=int, default=None, help="default 4 (tiny), 1 (sdxl)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--arch", default="tiny", choices=("tiny", "sdxl", *FLOW_ARCHS))
    ap.add_argument("--size", type=int, default=256, help="image side for the real-size archs (latents are size/8)")
    ap.add_argument("--frames", type=int, default=5, help="video frames for --arch wan_* (4k + 1)")
    ap.add_argument("--text-tokens", type=int, default=None,
                    help="text tokens of the flow archs (default the real 333 / 512 / 512; fewer for a CPU run)")
    ap.add_argument("--dtype", default=None, help="network dtype (default: float32 tiny; real-size archs: float16 on "
                                                  "CUDA, on CPU bfloat16 where native, else float32)")
    ap.add_argument("--samplers", default="standard,zeta,implicit_zigzag,zigzag", help="comma-separated subset")
    ap.add_argument("--measure", action="store_true", help="also time each sampler with its guidance measured")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory census")
    args = ap.parse_args(argv)
    tiny = args.arch == "tiny"
    args.steps = args.steps or (20 if tiny else 10)
    args.repeats = args.repeats or (7 if tiny else 3)
    args.batch = args.batch or (4 if tiny else 1)
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    flow = args.arch in FLOW_ARCHS
    if flow:
        unet, cond, uncond, x0, scheduler, call, set_timesteps = flow_setup(args, dev)

        def make(census: bool):
            return TransformerDenoiser(unet, cond, uncond, census, call)
    else:
        unet, cond, uncond, x0, scheduler = (sdxl_setup if args.arch == "sdxl" else tiny_setup)(args, dev)

        def set_timesteps(steps: int) -> dict:
            return {}

        def make(census: bool):
            return UNetDenoiser(unet, cond, uncond, census)
    solver = solver_from_scheduler(scheduler, args.steps, **set_timesteps(args.steps))
    x0 = x0 * solver.init_noise_sigma  # Euler starts at sigma_max, DDIM at 1
    every = {"standard": Standard(), "zeta": Zeta(warmup_steps=min(3, args.steps - 1)),
             "implicit_zigzag": ImplicitZigzag(), "zigzag": Zigzag()}
    chosen = args.samplers.split(",")
    if "standard" not in chosen or any(k not in every for k in chosen):
        ap.error(f"--samplers: a subset of {', '.join(every)} that includes standard")
    samplers = {k: every[k] for k in chosen}
    runs = [(k, False) for k in samplers] + ([(k, True) for k in samplers] if args.measure else [])
    times = {run: [] for run in runs}
    cpu_times = {run: [] for run in runs}
    meter_seconds = {k: [] for k in samplers}
    clock = MeterClock() if args.measure else None
    with torch.inference_mode():
        samplers["standard"].sample(make(False), x0.clone(), solver)  # warm-up
        for r in range(args.repeats):
            order = runs if r % 2 == 0 else list(reversed(runs))
            for k, measured in order:
                den = make(False)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                if clock is not None:
                    clock.seconds = 0.0
                t0, c0 = time.perf_counter(), time.process_time()
                if measured:
                    sample_measured(samplers[k], den, x0.clone(), solver)
                else:
                    samplers[k].sample(den, x0.clone(), solver)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                times[k, measured].append(time.perf_counter() - t0)
                cpu_times[k, measured].append(time.process_time() - c0)
                if measured:
                    meter_seconds[k].append(clock.seconds)
        memory = {}
        # the buffers of every sampler are in place after its first zigzag step: 6 steps show the peak, cheaper
        census_steps = min(args.steps, 6)
        census_solver = solver_from_scheduler(scheduler, census_steps, **set_timesteps(census_steps))
        for k, s in samplers.items() if not args.no_memory else ():
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
                s.sample(make(False), x0.clone(), census_solver)
                memory[k] = torch.cuda.max_memory_allocated()
            else:
                den = make(True)
                s.sample(den, x0.clone(), census_solver)
                memory[k] = den.peak_live
    latent = x0.element_size() * x0.nelement()
    base_t = statistics.median(times["standard", False])
    base_c = statistics.median(cpu_times["standard", False])
    kind = type(unet).__name__
    text = f", {cond['encoder_hidden_states'].shape[1]} text tokens" if flow else ""
    print(f"{kind} {sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M params (dtype {unet.dtype}{text}), latents "
          f"{tuple(x0.shape)}, {args.steps} {type(scheduler).__name__} steps, {args.repeats} repeats, device "
          f"{args.device}, threads {args.threads}")
    print(hardware.banner(dev, unet.dtype))
    print(f"{'sampler':16s} {'NFE':>5s} {'NFE ratio':>9s} {'median s':>9s} {'time ratio':>10s} {'CPU s':>9s} "
          f"{'CPU ratio':>9s} {'extra memory':>14s} {'in latents':>10s}")
    for k, s in samplers.items():
        nfe = s.expected_nfe(args.steps)
        med, cpu = statistics.median(times[k, False]), statistics.median(cpu_times[k, False])
        extra = memory[k] - memory["standard"] if memory else 0
        print(f"{k:16s} {nfe:5d} {nfe / (2 * args.steps):9.3f} {med:9.3f} {med / base_t:10.3f} {cpu:9.3f} "
              f"{cpu / base_c:9.3f} " + (f"{extra:14,d} {extra / latent:10.2f}" if memory else f"{'-':>14s} {'-':>10s}"))
    if args.measure:
        print("\nmeasuring guidance (samplers/guidance.py): measured vs plain runs of the same sampler")
        print(f"{'sampler':16s} {'plain s':>9s} {'measured s':>10s} {'time ratio':>10s} {'CPU ratio':>9s} "
              f"{'meter s':>9s} {'meter share':>11s}")
        for k in samplers:
            plain, measured = statistics.median(times[k, False]), statistics.median(times[k, True])
            cpu = statistics.median(cpu_times[k, True]) / statistics.median(cpu_times[k, False])
            meter = statistics.median(meter_seconds[k])
            share = statistics.median(m / t for m, t in zip(meter_seconds[k], times[k, True]))
            print(f"{k:16s} {plain:9.3f} {measured:10.3f} {measured / plain:10.4f} {cpu:9.4f} {meter:9.4f} "
                  f"{share:11.4%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
