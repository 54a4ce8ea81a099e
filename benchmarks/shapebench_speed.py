"""Forward cost of the ShapeBench UNet on CPU: FLOPs per sample and seconds per sample at batch 48 (x2 branches).

    python benchmarks/shapebench_speed.py --threads 1 2

The README demo costs about 20k sample-network-evaluations; the last column extrapolates to that.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode


def main() -> None:
    from zeta_eval.shapebench.model import MAX_TOKENS, TEXT_CONFIG, build_unet, count_parameters

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch-size", type=int, default=48)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    unet = build_unet().eval()
    h = torch.randn(1, MAX_TOKENS, TEXT_CONFIG["hidden_size"])
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        unet(torch.randn(1, 3, 32, 32), torch.tensor([500]), encoder_hidden_states=h)
    print(f"UNet parameters {count_parameters(unet) / 1e6:.2f} M, {fc.get_total_flops() / 1e9:.3f} GFLOP per sample")
    n = 2 * args.batch_size  # one CFG call: uncond + cond
    x, t, hs = torch.randn(n, 3, 32, 32), torch.full((n,), 500), h.expand(n, -1, -1).contiguous()
    for threads in args.threads:
        torch.set_num_threads(threads)
        with torch.no_grad():
            unet(x, t, encoder_hidden_states=hs)
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                unet(x, t, encoder_hidden_states=hs)
                times.append(time.perf_counter() - t0)
        per = min(times) / n
        print(f"threads {threads}: batch {n} best {min(times):.3f} s, median {sorted(times)[len(times) // 2]:.3f} s "
              f"-> {per * 1e3:.2f} ms per sample-evaluation, 20k evaluations ~ {per * 20000:.0f} s")


if __name__ == "__main__":
    main()
