"""Wall time and memory of each sampler relative to standard CFG, on a small real diffusers UNet.

    python benchmarks/sampler_overhead.py [--steps 20] [--repeats 7] [--batch 4] [--device cpu|cuda]

Every sampler runs the same steps from the same latents; samplers alternate within each repeat (so drift in machine
load hits all of them alike) and the median over repeats is reported as a ratio to standard. Memory: on CUDA the peak
allocated bytes; on CPU the largest total of live tensor bytes (parameters excluded) seen at any network call, i.e.
what the sampler and the network's inputs hold, reported as extra bytes over standard and in latent-sized units.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusers import DDIMScheduler, UNet2DConditionModel  # noqa: E402

from samplers import ImplicitZigzag, Standard, Zeta, Zigzag, solver_from_scheduler  # noqa: E402


def build_unet(seed: int = 0) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(64, 128),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64, attention_head_dim=8, norm_num_groups=32).eval()


class UNetDenoiser:
    """Batched branches of a UNet over fixed text embeddings; optionally records live tensor bytes per call."""

    def __init__(self, unet, cond, uncond, census: bool):
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
                    total += o.element_size() * o.nelement()
        return total

    def __call__(self, x, t, branches):
        if self.census:
            self.peak_live = max(self.peak_live, self.live_bytes())
        emb = torch.cat([self.uncond if b == "uncond" else self.cond for b in branches])
        out = self.unet(torch.cat([x] * len(branches)), t, encoder_hidden_states=emb).sample
        return out.chunk(len(branches))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    unet = build_unet().to(dev)
    g = torch.Generator().manual_seed(1)
    cond = torch.randn(args.batch, 8, 64, generator=g).to(dev)
    uncond = torch.zeros_like(cond)
    x0 = torch.randn(args.batch, 4, 32, 32, generator=g).to(dev)
    solver = solver_from_scheduler(DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                                 clip_sample=False, set_alpha_to_one=False, steps_offset=1), args.steps)
    samplers = {"standard": Standard(), "zeta": Zeta(warmup_steps=3), "implicit_zigzag": ImplicitZigzag(),
                "zigzag": Zigzag()}
    times = {k: [] for k in samplers}
    with torch.inference_mode():
        samplers["standard"].sample(UNetDenoiser(unet, cond, uncond, False), x0.clone(), solver)  # warm-up
        for r in range(args.repeats):
            order = list(samplers) if r % 2 == 0 else list(reversed(samplers))
            for k in order:
                den = UNetDenoiser(unet, cond, uncond, False)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                samplers[k].sample(den, x0.clone(), solver)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                times[k].append(time.perf_counter() - t0)
        memory = {}
        for k, s in samplers.items():
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
                s.sample(UNetDenoiser(unet, cond, uncond, False), x0.clone(), solver)
                memory[k] = torch.cuda.max_memory_allocated()
            else:
                den = UNetDenoiser(unet, cond, uncond, True)
                s.sample(den, x0.clone(), solver)
                memory[k] = den.peak_live
    latent = x0.element_size() * x0.nelement()
    base_t = statistics.median(times["standard"])
    print(f"UNet {sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M params, batch {args.batch}, {args.steps} "
          f"DDIM steps, {args.repeats} repeats, device {args.device}, threads {args.threads}")
    print(f"{'sampler':16s} {'NFE':>5s} {'NFE ratio':>9s} {'median s':>9s} {'time ratio':>10s} "
          f"{'extra memory':>14s} {'in latents':>10s}")
    for k, s in samplers.items():
        nfe = s.expected_nfe(args.steps)
        med = statistics.median(times[k])
        extra = memory[k] - memory["standard"]
        print(f"{k:16s} {nfe:5d} {nfe / (2 * args.steps):9.3f} {med:9.3f} {med / base_t:10.3f} "
              f"{extra:14,d} {extra / latent:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
