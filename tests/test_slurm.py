"""A real SLURM (slurm-wlm + munge, started here on loopback): the generated array job and its report job."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from zeta_eval.parts import list_parts, read_parts

ROOT = Path(__file__).resolve().parents[1]
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo")

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root to start munged, slurmctld and slurmd"
    absent = [d for d in DAEMONS if shutil.which(d) is None and not Path(f"/usr/sbin/{d}").exists()]
    return f"SLURM is not installed ({', '.join(absent)} missing; .ci/run installs slurm-wlm and munge)" if absent else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("slurm")
    host = socket.gethostname().split(".")[0]
    started: list[subprocess.Popen] = []
    munge_pid = None
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
    Path("/run/munge").mkdir(parents=True, exist_ok=True)
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
        subprocess.run(["munged", "--force"], check=True)
        munge_pid = int(Path("/run/munge/munged.pid").read_text()) if Path("/run/munge/munged.pid").exists() else None
    ctld, node = _free_port(), _free_port()
    conf = tmp / "slurm.conf"
    (tmp / "state").mkdir()
    (tmp / "spool").mkdir()
    conf.write_text(f"""ClusterName=zetaci
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld}
SlurmdPort={node}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation={tmp}/state
SlurmdSpoolDir={tmp}/spool
SlurmctldPidFile={tmp}/slurmctld.pid
SlurmdPidFile={tmp}/slurmd.pid
SlurmctldLogFile={tmp}/slurmctld.log
SlurmdLogFile={tmp}/slurmd.log
NodeName={host} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    try:
        started.append(subprocess.Popen(["slurmctld", "-D", "-c", "-f", str(conf)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1)
        started.append(subprocess.Popen(["slurmd", "-D", "-f", str(conf)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 60
        state = ""
        while time.time() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout.strip()
            if state.startswith("idle"):
                break
            time.sleep(1)
        if not state.startswith("idle"):
            logs = "".join(p.read_text()[-1500:] for p in (tmp / "slurmctld.log", tmp / "slurmd.log") if p.exists())
            pytest.fail(f"the local SLURM node did not come up (state {state!r}):\n{logs}")
        yield env
    finally:
        # cancel whatever is still queued or running, and let its job steps exit, before the daemons go
        subprocess.run(["scancel", "--full", "--user", "root"], env=env, capture_output=True)
        deadline = time.time() + 30
        while time.time() < deadline and subprocess.run(["squeue", "-h"], env=env, capture_output=True,
                                                         text=True).stdout.strip():
            time.sleep(1)
        for proc in reversed(started):  # stop what this fixture started, by pid
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if munge_pid:
            try:
                os.kill(munge_pid, 15)
            except ProcessLookupError:
                pass


def _wait_for(env: dict, job_ids: list[str], timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        queue = subprocess.run(["squeue", "-h", "-j", ",".join(job_ids)], env=env, capture_output=True, text=True).stdout
        if not queue.strip():
            return
        time.sleep(2)
    pytest.fail(f"jobs {job_ids} still queued after {timeout} s")


def _sbatch(env: dict, *args: str) -> str:
    done = subprocess.run(["sbatch", "--parsable", *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(";")[0]


def _shards_of_parts(out: Path) -> dict[int, list[Path]]:
    """Part files by the array task that wrote them."""
    by_task: dict[int, list[Path]] = {}
    for path in list_parts(out):
        for task in set(pq.read_table(path, columns=["array_task"]).column("array_task").to_pylist()):
            by_task.setdefault(task, []).append(path)
    return by_task


def test_array_job_dependent_report_and_a_rerun_of_two_shards_on_a_real_slurm(slurm, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{k}", "prompt": f"prompt {k}"}) + "\n" for k in range(5)))
    cfg = tmp_path / "toy.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": {"adapter": {"class_path": "toy_adapter.ToyAdapter"}, "steps": 4,
                  "samplers": ["standard", {"name": "zeta", "warmup_steps": 1}]},
        "data": {"source": str(prompts), "batch_size": 2}}))
    out = tmp_path / "out"
    env = {**slurm, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "zeta_eval", "slurm", "--config", str(cfg), "--array", "4",
                           "--gpus", "0", "--cpus-per-task", "1", "--time", "00:10:00", "--output_dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("submitted array job")]
    assert line, done.stdout
    words = line[0].split()
    ids = [words[3], words[words.index("report") + 2].rstrip(";")]  # "submitted array job A (...) and report job B; ..."
    assert all(i.isdigit() for i in ids), line
    _wait_for(env, ids)

    def logs() -> str:
        return "\n".join(p.read_text()[-2000:] for p in sorted((out / "slurm" / "logs").glob("*.out")))

    assert (out / "summary.md").is_file(), f"no report after the jobs left the queue:\n{logs()}"
    table, _ = read_parts(out)
    rows = table.to_pylist()
    assert len(rows) == 5 * 2 and len({r["sample_id"] for r in rows}) == 10
    assert {r["array_task"] for r in rows} == {0, 1, 2, 3} and {r["array_tasks"] for r in rows} == {4}
    assert "zeta" in (out / "summary.md").read_text()
    first = {r["sample_id"]: r["array_task"] for r in rows}

    # shards 1 and 3 "failed": their parts are gone; rerun exactly those two tasks with the same script
    by_task = _shards_of_parts(out)
    for task in (1, 3):
        for path in by_task[task]:
            path.unlink()
    (out / "summary.md").unlink()
    assert {r["array_task"] for r in read_parts(out)[0].to_pylist()} == {0, 2}
    rerun = _sbatch(env, "--array=1,3", str(out / "slurm" / "predict.sbatch"))
    report = _sbatch(env, f"--dependency=afterok:{rerun}", str(out / "slurm" / "report.sbatch"))
    _wait_for(env, [rerun, report])
    assert (out / "summary.md").is_file(), f"the report job did not succeed after the rerun:\n{logs()}"
    rows = read_parts(out)[0].to_pylist()
    assert len(rows) == 10 and {r["sample_id"]: r["array_task"] for r in rows} == first  # each sample in its shard
    assert {r["array_tasks"] for r in rows} == {4}
    assert sum(pq.read_metadata(p).num_rows for p in list_parts(out)) == 10  # nothing computed twice
