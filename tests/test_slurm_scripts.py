"""The generated sbatch scripts and the templates in slurm/, run by bash with a stand-in srun (no SLURM needed): array
task k is shard k of the experiment's fixed shard count, whatever range the current submission has."""

import os
import subprocess
from pathlib import Path

import pytest

from zeta_eval.slurm import SlurmPlan

ROOT = Path(__file__).resolve().parents[1]


def fake_srun(tmp: Path) -> dict[str, str]:
    """A PATH whose ``srun`` prints its arguments one per line (instead of starting a job step)."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    srun = bin_dir / "srun"
    srun.write_text('#!/bin/bash\nprintf "%s\\n" "$@"\n')
    srun.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def run_as_array_task(script: Path, tmp: Path, task: int, first: int, count: int) -> list[str]:
    """The predict arguments the script gives to srun as task ``task`` of a submission ``--array=first,...``."""
    env = {**os.environ, **fake_srun(tmp), "SLURM_ARRAY_JOB_ID": "41", "SLURM_JOB_ID": "42",
           "SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MIN": str(first),
           "SLURM_ARRAY_TASK_MAX": str(task), "SLURM_ARRAY_TASK_COUNT": str(count)}
    done = subprocess.run(["bash", str(script)], cwd=tmp, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def shard_of(args: list[str]) -> tuple[int, int]:
    return (int(args[args.index("--data.init_args.shard_index") + 1]),
            int(args[args.index("--data.init_args.num_shards") + 1]))


@pytest.mark.parametrize("task,first,count", [(3, 3, 2), (5, 3, 2), (1, 1, 2), (0, 0, 4)])
def test_generated_script_maps_the_task_id_to_its_shard_of_the_fixed_count(tmp_path, task, first, count):
    plan = SlurmPlan(configs=["configs/x.yaml"], output_dir=str(tmp_path / "out"), array=8, gpus=0, name="t",
                     workdir=str(tmp_path))
    predict, report = plan.write()
    assert "#SBATCH --array=0-7" in predict.read_text()
    assert shard_of(run_as_array_task(predict, tmp_path, task, first, count)) == (task, 8)
    assert "report --require_complete" in report.read_text()


def test_template_maps_the_task_id_to_its_shard_of_the_fixed_count(tmp_path):
    template = ROOT / "slurm" / "predict_array.sbatch"
    # sbatch --array=3,5 slurm/predict_array.sbatch: task 5 of a two-task rerun is shard 5 of 8
    assert shard_of(run_as_array_task(template, tmp_path, 5, 3, 2)) == (5, 8)
    assert "report --require_complete" in (ROOT / "slurm" / "report.sbatch").read_text()
