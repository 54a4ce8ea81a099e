"""Train the ShapeBench model from scratch on CPU (or GPU).

    python -m zeta_eval.shapebench.train --out runs/shapebench --steps 14000 --snapshot_every 1000   # the v2 run

Seeded and resumable: the batch of step k is a pure function of (seed, k) (captions, layouts, timesteps and noise),
so a run resumed from a checkpoint continues exactly as the uninterrupted run would. Writes into ``--out``:

    train_log.csv           step, loss, lr, seconds (one row every --log_every steps)
    loss_curve.png          the loss curve, redrawn at every checkpoint
    checkpoints/step_*.pt   model, EMA, optimizer (the last --keep of them); load with weights_only=True
    pipeline/               the EMA model as an exportable ShapeBench folder (updated at every checkpoint)
    snapshots/step_*/       the EMA model every --snapshot_every steps (kept; for evaluating the run as it goes)

Classifier-free guidance: a caption is replaced by the empty prompt with probability --cfg_dropout.
Caption noise: the image drawn for a caption sometimes disagrees with it (--noise_color, --noise_shape, --noise_count,
--noise_position; see ``prompts.CaptionNoise``), so that, as with web captions, the conditional distribution is broad
and guidance has something to sharpen. Evaluation, ground truth and the oracle never see this noise.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import time
from typing import Any

import numpy as np
import torch

from ..flags import Parser
from .model import ShapeBenchModel, new_model, save_model
from datamodules.shapebench.prompts import CaptionNoise, noisy_render_metadata, sample_training_caption
from datamodules.shapebench.world import render_metadata

CHECKPOINT_DIR = "checkpoints"
SNAPSHOT_DIR = "snapshots"
LOG_NAME = "train_log.csv"
CURVE_NAME = "loss_curve.png"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = Parser(prog="python -m zeta_eval.shapebench.train", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="output folder (log, checkpoints, pipeline/)")
    p.add_argument("--steps", type=int, default=12000, help="total optimiser steps")
    p.add_argument("--batch_size", type=int, default=48, help="(caption, image) pairs per step")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (AdamW)")
    p.add_argument("--warmup", type=int, default=300, help="linear warm-up steps")
    p.add_argument("--min_lr_ratio", type=float, default=0.1, help="cosine decay ends at lr * this")
    p.add_argument("--weight_decay", type=float, default=0.01, help="AdamW weight decay")
    p.add_argument("--ema_decay", type=float, default=0.999, help="decay of the EMA weights (what gets exported)")
    p.add_argument("--cfg_dropout", type=float, default=0.12, help="probability of the empty caption")
    defaults = CaptionNoise()
    p.add_argument("--noise_color", type=float, default=defaults.color,
                   help="caption noise: probability that an object's colour is drawn as a wheel neighbour")
    p.add_argument("--noise_shape", type=float, default=defaults.shape,
                   help="caption noise: probability that an object is drawn as a confusable shape")
    p.add_argument("--noise_count", type=float, default=defaults.count,
                   help="caption noise: probability that n counted objects are drawn as n - 1 or n + 1")
    p.add_argument("--noise_position", type=float, default=defaults.position,
                   help="caption noise: probability that a position relation is drawn mirrored")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the initial weights and of every batch (step k's batch is a function of seed and k)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to train")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--checkpoint_minutes", type=float, default=15.0, help="save a checkpoint this often")
    p.add_argument("--keep", type=int, default=3, help="checkpoints kept on disk")
    p.add_argument("--snapshot_every", type=int, default=0,
                   help="also write the EMA model to snapshots/step_N/ every this many steps (0: never)")
    p.add_argument("--log_every", type=int, default=10, help="write a train_log.csv row every this many steps")
    p.add_switch("--resume", help="continue from the last checkpoint in --out")
    args = p.parse_args(argv)
    for name, lo in (("steps", 1), ("batch_size", 1), ("threads", 1), ("keep", 1), ("log_every", 1), ("warmup", 0),
                     ("snapshot_every", 0)):
        if getattr(args, name) < lo:
            p.error(f"--{name.replace('_', '-')} must be >= {lo}, got {getattr(args, name)}")
    if not 0.0 <= args.cfg_dropout < 1.0:
        p.error(f"--cfg_dropout must be in [0, 1), got {args.cfg_dropout}")
    if not 0.0 < args.ema_decay < 1.0:
        p.error(f"--ema_decay must be in (0, 1), got {args.ema_decay}")
    for name in ("noise_color", "noise_shape", "noise_count", "noise_position"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            p.error(f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(args, name)}")
    return args


def caption_noise(args: argparse.Namespace) -> CaptionNoise:
    return CaptionNoise(color=args.noise_color, shape=args.noise_shape, count=args.noise_count,
                        position=args.noise_position)


# ---------------------------------------------------------------------------------------------- data
def make_batch(seed: int, step: int, batch_size: int, cfg_dropout: float,
               noise: CaptionNoise = CaptionNoise()) -> tuple[torch.Tensor, list[str]]:
    """Images in [-1, 1] (B, 3, 32, 32) and their captions ("" for CFG dropout) of one training step; the images
    carry the caption noise."""
    rng = np.random.default_rng([seed, step])
    images, captions = [], []
    for _ in range(batch_size):
        meta = sample_training_caption(rng)
        shown = noisy_render_metadata(meta, rng, noise)
        images.append(render_metadata(shown, int(rng.integers(2**31 - 1))))
        captions.append("" if rng.random() < cfg_dropout else meta["prompt"])
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return x, captions


def lr_at(step: int, args: argparse.Namespace) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def v_target(x0: torch.Tensor, noise: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    a = abar.sqrt().view(-1, 1, 1, 1)
    s = (1 - abar).sqrt().view(-1, 1, 1, 1)
    return a * noise - s * x0


def training_loss(model: ShapeBenchModel, x0: torch.Tensor, captions: list[str], generator: torch.Generator,
                  device: torch.device) -> torch.Tensor:
    sched = model.scheduler
    n_train = sched.config.num_train_timesteps
    t = torch.randint(0, n_train, (x0.shape[0],), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    abar = sched.alphas_cumprod[t].float()
    xt = abar.sqrt().view(-1, 1, 1, 1) * x0 + (1 - abar).sqrt().view(-1, 1, 1, 1) * noise
    if sched.config.prediction_type == "v_prediction":
        target = v_target(x0, noise, abar)
    elif sched.config.prediction_type == "epsilon":
        target = noise
    else:
        raise ValueError(f"prediction_type must be v_prediction or epsilon, got {sched.config.prediction_type!r}")
    ids = model.tokenize(captions).to(device)
    states = model.text_encoder(input_ids=ids).last_hidden_state
    pred = model.unet(xt.to(device), t.to(device), encoder_hidden_states=states).sample
    return torch.nn.functional.mse_loss(pred, target.to(device))


# ---------------------------------------------------------------------------------------------- EMA
class EMA:
    """Exponential moving average of the trainable parameters of the UNet and the text encoder."""

    def __init__(self, model: ShapeBenchModel, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in _params(model).items()}

    @torch.no_grad()
    def update(self, model: ShapeBenchModel, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in _params(model).items():
            self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)

    def copy_to(self, model: ShapeBenchModel) -> None:
        with torch.no_grad():
            for k, v in _params(model).items():
                v.copy_(self.shadow[k])


def _params(model: ShapeBenchModel) -> dict[str, torch.Tensor]:
    out = {f"unet.{k}": v for k, v in model.unet.named_parameters()}
    out.update({f"text_encoder.{k}": v for k, v in model.text_encoder.named_parameters()})
    return out


# ---------------------------------------------------------------------------------------------- checkpoints
def checkpoint_paths(out: str) -> list[str]:
    folder = os.path.join(out, CHECKPOINT_DIR)
    if not os.path.isdir(folder):
        return []
    names = sorted(n for n in os.listdir(folder) if n.startswith("step_") and n.endswith(".pt"))
    return [os.path.join(folder, n) for n in names]


def save_checkpoint(out: str, step: int, model: ShapeBenchModel, ema: EMA, opt: torch.optim.Optimizer,
                    args: argparse.Namespace, keep: int) -> str:
    folder = os.path.join(out, CHECKPOINT_DIR)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"step_{step:07d}.pt")
    state = {
        "step": step,
        "unet": model.unet.state_dict(),
        "text_encoder": model.text_encoder.state_dict(),
        "ema": ema.shadow,
        "optimizer": opt.state_dict(),
        "args": {k: v for k, v in vars(args).items()},
    }
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)
    for old in checkpoint_paths(out)[:-keep]:
        os.remove(old)
    return path


def load_checkpoint(path: str) -> dict[str, Any]:
    from metrics.weights import reading_weights

    with reading_weights(path, "the training checkpoint"):  # a truncated or corrupt file: one line naming it
        return torch.load(path, map_location="cpu", weights_only=True)


def model_from_checkpoint(state: dict[str, Any], use_ema: bool = True) -> ShapeBenchModel:
    """The model of a checkpoint (its EMA weights by default)."""
    model = new_model(int(state["args"].get("seed", 0)))
    model.unet.load_state_dict(state["unet"])
    model.text_encoder.load_state_dict(state["text_encoder"])
    if use_ema:
        ema = EMA(model, 0.5)
        ema.shadow = state["ema"]
        ema.copy_to(model)
    return model.__class__(unet=model.unet.eval(), text_encoder=model.text_encoder.eval(), tokenizer=model.tokenizer,
                           scheduler=model.scheduler, manifest=model.manifest)


# ---------------------------------------------------------------------------------------------- log and plot
def read_log(path: str) -> list[dict[str, float]]:
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def truncate_log(path: str, step: int) -> None:
    rows = [r for r in read_log(path) if r["step"] <= step]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["step", "loss", "lr", "seconds"])
        w.writeheader()
        for r in rows:
            w.writerow({"step": int(r["step"]), "loss": f"{r['loss']:.6f}", "lr": f"{r['lr']:.3e}",
                        "seconds": f"{r['seconds']:.1f}"})


def plot_loss(log_path: str, png_path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_log(log_path)
    if not rows:
        return
    steps = np.array([r["step"] for r in rows])
    loss = np.array([r["loss"] for r in rows])
    hours = np.array([r["seconds"] for r in rows]) / 3600
    window = max(1, len(loss) // 50)  # trailing mean over 2% of the run
    csum = np.concatenate([[0.0], np.cumsum(loss)])
    lo = np.maximum(np.arange(1, len(loss) + 1) - window, 0)
    smooth = (csum[1:] - csum[lo]) / (np.arange(1, len(loss) + 1) - lo)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, loss, lw=0.5, alpha=0.35, label="loss (mean of the logged interval)")
    ax.plot(steps, smooth, lw=1.5, label="trailing mean (2% of the run)")
    ax.set_xlabel("step")
    ax.set_ylabel("v-prediction MSE")
    ax.set_yscale("log")
    ax.set_title(f"ShapeBench training: step {int(steps[-1])}, {hours[-1]:.2f} h")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- main
def train(args: argparse.Namespace) -> str:
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    os.makedirs(args.out, exist_ok=True)
    model = new_model(args.seed)
    model.unet.to(device).train()
    model.text_encoder.to(device).train()
    params = list(model.unet.parameters()) + list(model.text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    ema = EMA(model, args.ema_decay)
    log_path = os.path.join(args.out, LOG_NAME)
    start, seconds0 = 0, 0.0
    existing = checkpoint_paths(args.out)
    if args.resume and existing:
        state = load_checkpoint(existing[-1])
        model.unet.load_state_dict(state["unet"])
        model.text_encoder.load_state_dict(state["text_encoder"])
        ema.shadow = {k: v.to(device) for k, v in state["ema"].items()}
        opt.load_state_dict(state["optimizer"])
        start = int(state["step"])
        truncate_log(log_path, start)
        rows = read_log(log_path)
        seconds0 = rows[-1]["seconds"] if rows else 0.0
        print(f"resumed from {existing[-1]} at step {start}", flush=True)
    elif existing:
        raise ValueError(f"--out {args.out!r} already has checkpoints; pass --resume to continue or use a new folder")
    else:
        truncate_log(log_path, -1)

    noise = caption_noise(args)
    t0 = time.time() - seconds0
    last_ckpt = time.time()
    acc_loss, acc_n = 0.0, 0
    bar = tqdm(range(start, args.steps), initial=start, total=args.steps, desc="shapebench train", mininterval=5)
    for step in bar:
        lr = lr_at(step, args)
        for g in opt.param_groups:
            g["lr"] = lr
        x0, captions = make_batch(args.seed, step, args.batch_size, args.cfg_dropout, noise)
        gen = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
        loss = training_loss(model, x0, captions, gen, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update(model, step)
        acc_loss += loss.item()
        acc_n += 1
        done = step + 1
        if done % args.log_every == 0 or done == args.steps:
            with open(log_path, "a", newline="") as f:
                csv.writer(f).writerow([done, f"{acc_loss / acc_n:.6f}", f"{lr:.3e}", f"{time.time() - t0:.1f}"])
            bar.set_postfix(loss=f"{acc_loss / acc_n:.4f}", lr=f"{lr:.2e}")
            acc_loss, acc_n = 0.0, 0
        if time.time() - last_ckpt >= args.checkpoint_minutes * 60 or done == args.steps:
            _checkpoint(args, done, model, ema, opt, log_path)
            last_ckpt = time.time()
        if args.snapshot_every and done % args.snapshot_every == 0:
            state = {"unet": model.unet.state_dict(), "text_encoder": model.text_encoder.state_dict(),
                     "ema": ema.shadow, "args": vars(args)}
            save_model(model_from_checkpoint(state), os.path.join(args.out, SNAPSHOT_DIR, f"step_{done:07d}"),
                       trained_steps=done, weights="ema", training_args=vars(args))
    return os.path.join(args.out, "pipeline")


def _checkpoint(args: argparse.Namespace, step: int, model: ShapeBenchModel, ema: EMA,
                opt: torch.optim.Optimizer, log_path: str) -> None:
    path = save_checkpoint(args.out, step, model, ema, opt, args, args.keep)
    plot_loss(log_path, os.path.join(args.out, CURVE_NAME))
    export_model = model_from_checkpoint(load_checkpoint(path))
    save_model(export_model, os.path.join(args.out, "pipeline"), trained_steps=step, weights="ema",
               training_args=vars(args), checkpoint=os.path.abspath(path))
    print(f"checkpoint {path}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    train(args)


if __name__ == "__main__":
    main()
