"""ShapeBench v2 design pilot on one GPU: train several variants side by side for a fixed wall-clock budget (the
same training step as zeta_eval.shapebench.train: batch 48, v-prediction MSE, AdamW, cosine, EMA; data drawn by
worker processes), then evaluate each at several guidance scales on the full held-out set (standard CFG, 20 DDIM
steps, one seed), judged by the oracle on a process pool. The table in docs/shapebench/README.md ("GPU design
pilot") came from one run on an H200 (16 CPU cores):

    python benchmarks/shapebench_gpu_pilot.py --budget-s 330 --out OUT --workers 3 --judges 14

Writes OUT/pilot_results.json (steps, loss, per-task accuracy per variant and guidance), the first two variants'
models as tar.gz, and the images at guidance 1 and 3 per variant. The learning-rate schedule is set for the number of
steps that fits the budget, measured over steps 60-160.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import time

import numpy as np
import torch

VARIANTS = {
    "A_default": {"unet": {}, "noise": (0.25, 0.15, 0.2, 0.15)},
    "B_c128": {"unet": {"block_out_channels": [16, 32, 64, 128]}, "noise": (0.25, 0.15, 0.2, 0.15)},
    "C_nonoise": {"unet": {}, "noise": (0.0, 0.0, 0.0, 0.0)},
    "D_strong": {"unet": {}, "noise": (0.35, 0.25, 0.3, 0.25)},
}
GUIDANCES = (1.0, 1.5, 2.0, 3.0, 4.5, 6.0, 9.0)


class Batches(torch.utils.data.IterableDataset):
    def __init__(self, seed, batch_size, dropout, noise):
        self.seed, self.batch_size, self.dropout, self.noise = seed, batch_size, dropout, noise

    def __iter__(self):
        from datamodules.shapebench.prompts import CaptionNoise
        from zeta_eval.shapebench.train import make_batch

        torch.set_num_threads(1)
        info = torch.utils.data.get_worker_info()
        k, n = (info.id, info.num_workers) if info else (0, 1)
        step = k
        while True:
            yield make_batch(self.seed, step, self.batch_size, self.dropout, CaptionNoise(*self.noise))
            step += n


def run_variant(name: str, budget_s: float, workdir: str, device: str, workers: int, batch_size: int, subset: str,
                guidances: tuple) -> None:
    torch.set_num_threads(1)
    from argparse import Namespace

    from zeta_eval.shapebench import model as M
    from zeta_eval.shapebench.train import lr_at, training_loss

    spec = VARIANTS[name]
    M.UNET_CONFIG.update(spec["unet"])
    dev = torch.device(device)
    model = M.new_model(0)
    model.unet.to(dev).train()
    model.text_encoder.to(dev).train()
    params = list(model.unet.parameters()) + list(model.text_encoder.parameters())
    shadow = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=5e-4, weight_decay=0.01)
    sched = Namespace(lr=5e-4, warmup=300, min_lr_ratio=0.1, steps=10**9)
    loader = iter(torch.utils.data.DataLoader(Batches(0, batch_size, 0.12, spec["noise"]), batch_size=None,
                                              num_workers=workers, prefetch_factor=8, persistent_workers=True))
    t_start = time.time()
    losses, step, probe = [], 0, None
    while True:
        if step == 60:
            torch.cuda.synchronize() if dev.type == "cuda" else None
            probe = time.time()
        if step == 160:
            torch.cuda.synchronize() if dev.type == "cuda" else None
            per = (time.time() - probe) / 100
            sched.steps = int((budget_s - (time.time() - t_start)) / per) + step
            print(f"[{name}] {per * 1e3:.1f} ms/step -> {sched.steps} steps", flush=True)
        if step >= sched.steps or (step > 160 and time.time() - t_start > budget_s + 30):
            break
        lr = lr_at(step, sched)
        for g in opt.param_groups:
            g["lr"] = lr
        x0, captions = next(loader)
        gen = torch.Generator().manual_seed(step)
        loss = training_loss(model, x0, captions, gen, dev)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        d = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_mul_(shadow, d)
            torch._foreach_add_(shadow, [p.detach() for p in params], alpha=1 - d)
        losses.append(loss.item() if step % 50 == 0 else float("nan"))
        step += 1
        if step % 2000 == 0:
            print(f"[{name}] step {step} loss {np.nanmean(losses[-2000:]):.4f} lr {lr:.2e} "
                  f"{time.time() - t_start:.0f}s", flush=True)
    train_s = time.time() - t_start
    with torch.no_grad():
        for p, s in zip(params, shadow):
            p.copy_(s)
    folder = os.path.join(workdir, name)
    model.unet.eval()
    model.text_encoder.eval()
    M.save_model(model, folder, trained_steps=step, weights="ema", pilot=name, noise=spec["noise"],
                 unet_override=spec["unet"])
    # evaluate
    from samplers import build_sampler
    from zeta_eval.adapters.shapebench import ShapeBenchAdapter
    from zeta_eval.shapebench.evaluate import generate
    from datamodules.shapebench.prompts import evaluation_set

    adapter = ShapeBenchAdapter(model=folder)
    adapter.load(device)
    items = evaluation_set(subset)
    out = {}
    t0 = time.time()
    for g in guidances:
        imgs = generate(adapter, items, build_sampler("standard", gamma1=g), 20, 720)
        out[f"g{g:g}"] = (imgs.clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy())
    np.savez_compressed(os.path.join(workdir, f"{name}_images.npz"), **out)
    tail = [x for x in losses[-1000:] if x == x]
    with open(os.path.join(workdir, f"{name}_train.json"), "w") as f:
        json.dump({"steps": step, "train_s": train_s, "final_loss": float(np.mean(tail)), "eval_s": time.time() - t0,
                   "params_unet": M.count_parameters(model.unet)}, f)
    print(f"[{name}] done: {step} steps in {train_s:.0f}s, loss {np.mean(tail):.4f}, eval {time.time() - t0:.0f}s",
          flush=True)


def judge_one(args):
    from metrics.shapebench import judge

    img, item = args
    return bool(judge(img, item)[0])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--budget-s", type=float, default=360)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=48)
    p.add_argument("--judges", type=int, default=14)
    p.add_argument("--subset", default="full")
    p.add_argument("--guidances", type=float, nargs="+", default=list(GUIDANCES))
    args = p.parse_args()
    import multiprocessing as mp

    workdir = os.path.join("/tmp", "sb2_pilot_work")
    os.makedirs(workdir, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=run_variant, args=(v, args.budget_s, workdir, args.device, args.workers,
                                                   args.batch_size, args.subset, tuple(args.guidances)))
             for v in args.variants]
    for pr in procs:
        pr.start()
    for pr in procs:
        pr.join()
    from datamodules.shapebench.prompts import TASKS, evaluation_set

    items = evaluation_set(args.subset)
    results = {}
    pool = mp.get_context("fork").Pool(args.judges)
    for v in args.variants:
        path = os.path.join(workdir, f"{v}_images.npz")
        if not os.path.isfile(path):
            print(f"[{v}] FAILED (no images)", flush=True)
            continue
        data = np.load(path)
        info = json.load(open(os.path.join(workdir, f"{v}_train.json")))
        rows = {}
        for key in data.files:
            ok = pool.map(judge_one, list(zip(data[key], items)), chunksize=20)
            per = {t: float(np.mean([o for o, it in zip(ok, items) if it["tag"] == t] or [np.nan])) for t in TASKS}
            per["overall"] = float(np.mean([per[t] for t in TASKS]))
            rows[key] = per
        results[v] = {"train": info, "rows": rows}
        print(f"\n== {v}: {info}")
        print(f"{'g':>5} " + " ".join(f"{t[:9]:>9}" for t in TASKS) + "   overall")
        for key, per in rows.items():
            print(f"{key[1:]:>5} " + " ".join(f"{per[t]:>9.3f}" for t in TASKS) + f"   {per['overall']:.3f}",
                  flush=True)
    with open(os.path.join(args.out, "pilot_results.json"), "w") as f:
        json.dump(results, f, indent=1)
    for v in args.variants[:2]:
        folder = os.path.join(workdir, v)
        if os.path.isdir(folder):
            with tarfile.open(os.path.join(args.out, f"model_{v}.tar.gz"), "w:gz", compresslevel=1) as tar:
                tar.add(folder, arcname=v)
    for v in args.variants:  # images at g1 and g3 of every variant (for the by-eye look)
        path = os.path.join(workdir, f"{v}_images.npz")
        if os.path.isfile(path):
            d = np.load(path)
            keep = {k: d[k] for k in d.files if k in ("g1", "g3")}
            np.savez_compressed(os.path.join(args.out, f"img_{v}.npz"), **keep)


if __name__ == "__main__":
    sys.exit(main())
