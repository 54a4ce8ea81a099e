"""Samples per second of ``zeta_eval predict`` with 1 and N DDP ranks, as parallel efficiency.

    python benchmarks/scaling.py [--config configs/shapebench_demo.yaml] [--ranks 1 2] [--accelerator cpu|gpu]

Each rank uses one thread on CPU (``OMP_NUM_THREADS=1``). Every run is a fresh ``python -m zeta_eval predict`` in
a new output folder; its wall time includes interpreter start-up, model loading and the report-free finish. The
start-up part is measured separately (a run of one item) and also subtracted, which shows what the ranks themselves
do: efficiency = rate(N) / (N * rate(1)).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(config: str, out: Path, ranks: int, accelerator: str, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "zeta_eval", "predict", "--config", config, "--output_dir", str(out), "--report",
           "false", "--trainer.accelerator", accelerator, "--trainer.devices", str(ranks),
           "--trainer.strategy", "ddp" if ranks > 1 else "auto", "--trainer.enable_progress_bar", "false", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"run with {ranks} ranks failed:\n{done.stderr[-3000:]}")
    return elapsed


def count(out: Path) -> int:
    sys.path.insert(0, str(ROOT))
    from zeta_eval.parts import read_parts

    return read_parts(out)[0].num_rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/shapebench_demo.yaml")
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--accelerator", default="cpu")
    ap.add_argument("--repeats", type=int, default=1)
    args, extra = ap.parse_known_args(argv)
    work = Path(tempfile.mkdtemp(prefix="zeta_scaling_"))
    startup = {}
    for ranks in args.ranks:  # one item per rank: interpreter, imports, model load, process group
        startup[ranks] = run(args.config, work / f"startup_{ranks}", ranks, args.accelerator,
                             [*extra, "--data.init_args.limit", str(ranks)])
    results = {}
    for r in range(args.repeats):
        for ranks in (args.ranks if r % 2 == 0 else list(reversed(args.ranks))):
            out = work / f"run_{ranks}_{r}"
            elapsed = run(args.config, out, ranks, args.accelerator, extra)
            results.setdefault(ranks, []).append((count(out), elapsed))
    print(f"{args.config}, accelerator {args.accelerator}, one thread per rank, {os.cpu_count()} CPUs")
    print(f"{'ranks':>5s} {'samples':>8s} {'wall s':>8s} {'samples/s':>10s} {'efficiency':>10s} "
          f"{'start-up s':>10s} {'samples/s w/o start-up':>22s} {'efficiency':>10s}")
    base = base_net = None
    for ranks in args.ranks:
        n, elapsed = min(results[ranks], key=lambda t: t[1])
        rate, net = n / elapsed, n / max(elapsed - startup[ranks], 1e-9)
        base, base_net = (rate, net) if base is None else (base, base_net)
        print(f"{ranks:5d} {n:8d} {elapsed:8.1f} {rate:10.2f} {rate / (ranks * base):10.3f} "
              f"{startup[ranks]:10.1f} {net:22.2f} {net / (ranks * base_net):10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
