"""Export a training checkpoint as the packaged ShapeBench model folder.

    python -m zeta_eval.shapebench.export runs/shapebench_train/checkpoints/step_0012000.pt --out zeta_eval/assets/shapebench

Writes the EMA weights (``--raw`` for the raw weights) as safetensors in diffusers / transformers folders with the
ShapeBench manifest, and refuses to write a folder over ``--max_mb``.
"""

from __future__ import annotations

import os
import shutil

from ..flags import Parser
from .model import load_model, save_model
from .train import checkpoint_paths, load_checkpoint, model_from_checkpoint


def folder_megabytes(folder: str) -> float:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs) / 2**20


def export(checkpoint: str, out: str, use_ema: bool = True, max_mb: float = 20.0) -> str:
    if os.path.isdir(checkpoint):  # a training folder: take its last checkpoint
        found = checkpoint_paths(checkpoint)
        if not found:
            raise ValueError(f"checkpoint folder {checkpoint!r} has no checkpoints/step_*.pt")
        checkpoint = found[-1]
    if not os.path.isfile(checkpoint):
        raise ValueError(f"checkpoint must be a step_*.pt file or a training folder; {checkpoint!r} does not exist")
    state = load_checkpoint(checkpoint)
    model = model_from_checkpoint(state, use_ema=use_ema)
    tmp = out.rstrip("/") + ".tmp-export"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tmp, trained_steps=int(state["step"]), weights="ema" if use_ema else "raw",
               training_args=state["args"], checkpoint=os.path.basename(checkpoint))
    size = folder_megabytes(tmp)
    if size > max_mb:
        shutil.rmtree(tmp)
        raise ValueError(f"exported folder is {size:.1f} MB, over --max_mb {max_mb}")
    load_model(tmp)  # it must load before it replaces anything
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> None:
    p = Parser(prog="python -m zeta_eval.shapebench.export", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="a checkpoints/step_*.pt file, or a training folder (its last checkpoint)")
    p.add_argument("--out", required=True, help="model folder to write (replaced)")
    p.add_switch("--raw", help="export the raw weights instead of the EMA")
    p.add_argument("--max_mb", type=float, default=20.0)
    args = p.parse_args(argv)
    path = export(args.checkpoint, args.out, use_ema=not args.raw, max_mb=args.max_mb)
    print(f"wrote {path} ({folder_megabytes(path):.1f} MB)")


if __name__ == "__main__":
    main()
