"""``python -m zeta_eval slurm --config X.yaml --array K --gpus G``: an sbatch array of single-node DDP jobs.

Array task k runs ``srun python -m zeta_eval predict`` on shard k of K (one process per GPU, Lightning's DDP); K is
fixed in the script, so ``sbatch --array=3,5 OUT_DIR/slurm/predict.sbatch`` reruns exactly shards 3 and 5. Tasks run
with ``--requeue`` and Lightning's own auto-requeue off: a requeued or rerun task skips the samples already written
and finishes the rest. A dependent job (``--dependency=afterok:<array>``) merges every task's parts into the report
(``report --require_complete``: it fails, naming what is missing, unless every sample is there).
The scripts are written to ``OUT_DIR/slurm/`` and submitted (``--dry_run`` prints them instead).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .config import PACKAGED_CONFIGS, check_config_files, find_config
from .errors import UserError
from .flags import Parser


@dataclass
class SlurmPlan:
    configs: list[str]
    output_dir: str
    array: int
    gpus: int
    name: str
    partition: str | None = None
    time: str = "04:00:00"
    cpus_per_task: int = 8
    mem: str | None = None
    throttle: int | None = None
    python: str = sys.executable
    workdir: str = field(default_factory=lambda: str(Path.cwd()))
    overrides: list[str] = field(default_factory=list)
    sbatch_args: list[str] = field(default_factory=list)
    report_time: str = "00:30:00"

    def validate(self) -> None:
        if self.array < 1:
            raise UserError(f"--array must be >= 1 (the number of array tasks), got {self.array}")
        if self.gpus < 0:
            raise UserError(f"--gpus must be >= 0 (0 = one CPU process per task), got {self.gpus}")
        if self.throttle is not None and self.throttle < 1:
            raise UserError(f"--throttle must be >= 1, got {self.throttle}")

    @property
    def folder(self) -> Path:
        return Path(self.output_dir) / "slurm"

    def predict_script(self) -> str:
        ranks = max(self.gpus, 1)
        lines = ["#!/bin/bash",
                 f"#SBATCH --job-name={self.name}",
                 f"#SBATCH --array=0-{self.array - 1}" + (f"%{self.throttle}" if self.throttle else ""),
                 "#SBATCH --nodes=1",
                 f"#SBATCH --ntasks-per-node={ranks}",
                 f"#SBATCH --cpus-per-task={self.cpus_per_task}",
                 f"#SBATCH --time={self.time}",
                 "#SBATCH --requeue",
                 f"#SBATCH --output={self.folder.resolve()}/logs/%x_%A_%a.out"]
        if self.gpus:
            lines.append(f"#SBATCH --gres=gpu:{self.gpus}")
        if self.partition:
            lines.append(f"#SBATCH --partition={self.partition}")
        if self.mem:
            lines.append(f"#SBATCH --mem={self.mem}")
        lines += [f"#SBATCH {a}" for a in self.sbatch_args]
        configs = " ".join(f"--config {shlex.quote(c)}" for c in self.configs)
        trainer = (f"--trainer.accelerator gpu --trainer.devices {self.gpus} --trainer.strategy ddp"
                   if self.gpus else "--trainer.accelerator cpu --trainer.devices 1 --trainer.strategy auto")
        overrides = " ".join(shlex.quote(o) for o in self.overrides)
        lines += [
            "",
            "set -euo pipefail",
            f"cd {shlex.quote(self.workdir)}",
            "# one rendezvous port per array task, so tasks sharing a node never collide",
            "export MASTER_PORT=$(( 20000 + (${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID} % 1000) * 16 "
            "+ ${SLURM_ARRAY_TASK_ID:-0} % 16 ))",
            "# shard = array task id, of the experiment's fixed shard count: a rerun of some tasks (sbatch --array=3,5)",
            "# runs exactly their shards",
            f"NUM_SHARDS={self.array}",
            "SHARD=$SLURM_ARRAY_TASK_ID",
            f"srun {shlex.quote(self.python)} -m zeta_eval predict {configs} \\",
            f"    --output_dir {shlex.quote(self.output_dir)} {trainer} --trainer.num_nodes 1 \\",
            "    --data.init_args.shard_index $SHARD --data.init_args.num_shards $NUM_SHARDS"
            + (f" \\\n    {overrides}" if overrides else ""),
        ]
        return "\n".join(lines) + "\n"

    def report_script(self) -> str:
        lines = ["#!/bin/bash",
                 f"#SBATCH --job-name={self.name}-report",
                 "#SBATCH --nodes=1", "#SBATCH --ntasks=1", "#SBATCH --cpus-per-task=2",
                 f"#SBATCH --time={self.report_time}",
                 f"#SBATCH --output={self.folder.resolve()}/logs/%x_%j.out"]
        if self.partition:
            lines.append(f"#SBATCH --partition={self.partition}")
        lines += ["", "set -euo pipefail", f"cd {shlex.quote(self.workdir)}",
                  "# exits 2 (and names what is missing) unless every sample of the experiment is there",
                  f"{shlex.quote(self.python)} -m zeta_eval report --require_complete {shlex.quote(self.output_dir)}"]
        return "\n".join(lines) + "\n"

    def write(self) -> tuple[Path, Path]:
        (self.folder / "logs").mkdir(parents=True, exist_ok=True)
        predict, report = self.folder / "predict.sbatch", self.folder / "report.sbatch"
        predict.write_text(self.predict_script())
        report.write_text(self.report_script())
        return predict, report


def submit(plan: SlurmPlan, sbatch: str = "sbatch") -> tuple[str, str]:
    """Submit the array and the dependent report job; returns their job ids."""
    if shutil.which(sbatch) is None:
        raise UserError(f"{sbatch} is not on PATH: run this on a SLURM login node, or use --dry_run to print the scripts")
    predict, report = plan.write()
    array_id = _sbatch([sbatch, "--parsable", str(predict)])
    report_id = _sbatch([sbatch, "--parsable", f"--dependency=afterok:{array_id}", str(report)])
    return array_id, report_id


def _sbatch(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise UserError(f"{' '.join(cmd)} failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    return done.stdout.strip().split(";")[0]


def main(argv: Sequence[str]) -> int:
    parser = Parser(prog="python -m zeta_eval slurm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", required=True, help="experiment config (repeat for overlays)")
    parser.add_argument("--array", type=int, required=True, help="number of array tasks (shards)")
    parser.add_argument("--gpus", type=int, required=True, help="GPUs per task (one DDP rank each); 0 = CPU")
    parser.add_argument("--output_dir", default=None, help="default: outputs/<first config's stem>")
    parser.add_argument("--partition", default=None)
    parser.add_argument("--time", default="04:00:00", help="per array task")
    parser.add_argument("--cpus_per_task", type=int, default=8)
    parser.add_argument("--mem", default=None)
    parser.add_argument("--throttle", type=int, default=None, help="at most this many tasks at once (%%N)")
    parser.add_argument("--name", default=None, help="job name (default: zeta-<config stem>)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter on the compute nodes")
    parser.add_argument("--sbatch_arg", action="append", default=[], help="an extra #SBATCH line, e.g. --account=x")
    parser.add_switch("--no_slurm_overlay", help="do not add the slurm.yaml overlay")
    parser.add_switch("--dry_run", help="print the scripts; submit nothing")
    args, overrides = parser.parse_known_args(list(argv))
    stem = Path(args.config[0]).stem
    configs = [find_config(c) for c in args.config]
    overlay = PACKAGED_CONFIGS / "slurm.yaml"
    if not args.no_slurm_overlay and overlay.is_file() and str(overlay) not in configs:
        configs.append(str(overlay))
    config_args = [a for c in configs for a in ("--config", c)]
    check_config_files([*config_args, *overrides])
    plan = SlurmPlan(configs=configs, output_dir=args.output_dir or str(Path("outputs") / stem), array=args.array,
                     gpus=args.gpus, name=args.name or f"zeta-{stem}", partition=args.partition, time=args.time,
                     cpus_per_task=args.cpus_per_task, mem=args.mem, throttle=args.throttle, python=args.python,
                     overrides=overrides, sbatch_args=args.sbatch_arg)
    plan.validate()
    # build the whole experiment once here (no weights) and print its plan, so a config error shows now, not in every
    # array task
    from .lightning_cli import validate

    trainer = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto"]
    validate([*config_args, "--output_dir", plan.output_dir, *overrides, *trainer,
              "--data.init_args.shard_index", "0", "--data.init_args.num_shards", str(args.array)], check_files=False)
    if args.dry_run:
        print(f"# {plan.folder / 'predict.sbatch'}\n{plan.predict_script()}\n# {plan.folder / 'report.sbatch'}\n"
              f"{plan.report_script()}\n# submit with:\n#   ARRAY=$(sbatch --parsable {plan.folder / 'predict.sbatch'})\n"
              f"#   sbatch --dependency=afterok:$ARRAY {plan.folder / 'report.sbatch'}")
        return 0
    array_id, report_id = submit(plan)
    print(f"submitted array job {array_id} ({args.array} tasks x {max(args.gpus, 1)} ranks) and report job "
          f"{report_id}; results in {plan.output_dir}")
    return 0
