"""Faults and bad input through the real command line: one line on stderr, exit code 2, nothing written or lost.

Each case runs ``zeta_eval.cli.main`` (or ``python -m zeta_eval`` where a separate process is the point) and checks
the exit code, that zeta_eval printed exactly one error line and no traceback, and what is on disk afterwards.
"""

import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from zeta_eval.cli import main
from zeta_eval.parts import list_parts, read_parts

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [{"id": f"p{k}", "prompt": f"a thing number {k}"} for k in range(4)]


def write_experiment(tmp: Path, *, batch_size: int = 2, delay: float = 0.0, name: str = "exp.yaml",
                     wait_for: Path | None = None) -> Path:
    (tmp / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    adapter_args = {"delay": delay, **({"wait_for": str(wait_for)} if wait_for else {})}
    cfg = {"model": {"adapter": {"class_path": "toy_adapter.ToyAdapter", "init_args": adapter_args}, "steps": 4,
                     "samplers": ["standard", {"name": "zeta", "warmup_steps": 1}]},
           "data": {"source": str(tmp / "prompts.jsonl"), "batch_size": batch_size}}
    path = tmp / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(*args) -> int:
    return main([str(a) for a in args])


def one_error(capsys, *needles: str) -> str:
    """The single error line zeta_eval printed (Lightning's informational lines may share stderr); no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("zeta_eval")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def cli_process(*args, env=None, **kw) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]),
                   "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "zeta_eval", *map(str, args)], cwd=ROOT, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("finished")
    cfg = write_experiment(tmp)
    assert run("predict", "--config", cfg, "--output_dir", tmp / "out") == 0
    return cfg, tmp / "out"


# ---------------------------------------------------------------------------------------------- item 13
@pytest.mark.parametrize("command", ["validate", "predict", "slurm"])
def test_paper_config_offline_without_prompts_dir(tmp_path, capsys, monkeypatch, command):
    monkeypatch.delenv("ZETA_EVAL_PROMPTS_DIR", raising=False)
    out = tmp_path / "out"
    args = [command, "--config", ROOT / "configs" / "sdxl_drawbench.yaml", "--output_dir", out]
    if command == "slurm":
        args += ["--array", "2", "--gpus", "1", "--dry-run"]
    capsys.readouterr()
    assert run(*args) == 2
    one_error(capsys, "drawbench", "prompts_dir")
    assert not out.exists()


def test_output_dir_that_is_a_file(tmp_path, capsys):
    cfg = write_experiment(tmp_path)
    target = tmp_path / "afile"
    target.write_text("mine")
    for command in ("predict", "validate"):
        capsys.readouterr()
        assert run(command, "--config", cfg, "--output_dir", target) == 2
        one_error(capsys, str(target), "is a file")
        assert target.read_text() == "mine"


@contextmanager
def read_only(folder: Path):
    """``folder`` read-only for this process: chmod for a normal user; as root (who ignores modes) a read-only bind
    mount of the folder onto itself."""
    if os.geteuid() != 0:
        mode = folder.stat().st_mode
        for p in [folder, *folder.rglob("*")]:
            if p.is_dir():
                p.chmod(0o555)
        try:
            yield
        finally:
            for p in [folder, *folder.rglob("*")]:
                if p.is_dir():
                    p.chmod(mode)
        return
    if shutil.which("mount") is None or subprocess.run(["mount", "--bind", str(folder), str(folder)],
                                                       capture_output=True).returncode != 0:
        pytest.skip("running as root without the right to bind-mount: no way to make a folder read-only")
    try:
        done = subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only: {done.stderr.strip()}")
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def test_read_only_output_folder(tmp_path, finished, capsys):
    cfg, done_out = finished
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with read_only(fresh):
        capsys.readouterr()
        assert run("predict", "--config", cfg, "--output_dir", fresh) == 2
        one_error(capsys, str(fresh))
    assert not any(fresh.iterdir())
    copy = tmp_path / "copy"
    shutil.copytree(done_out, copy)
    (copy / "summary.md").unlink()
    before = snapshot(copy)
    with read_only(copy):
        capsys.readouterr()
        assert run("report", copy) == 2
        one_error(capsys, str(copy))
    assert snapshot(copy) == before


@contextmanager
def small_disk(tmp: Path, free_bytes: int):
    """A folder on a tmpfs with about ``free_bytes`` left (root only); None where no tmpfs can be mounted."""
    mount_point = tmp / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                                           capture_output=True).returncode != 0:
        yield None
        return
    try:
        filler = mount_point / "filler"
        with open(filler, "wb") as fh:
            try:
                fh.write(b"\0" * (1 << 20))
            except OSError as err:
                assert err.errno == errno.ENOSPC
        size = filler.stat().st_size
        os.truncate(filler, max(size - free_bytes, 0))
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def test_full_disk_stops_with_one_line_and_the_rerun_finishes(tmp_path, capsys, monkeypatch):
    cfg = write_experiment(tmp_path, batch_size=1)
    with small_disk(tmp_path, free_bytes=48 * 1024) as disk:
        if disk is None:  # no tmpfs: the disk fills up at the third part file
            import zeta_eval.parts as parts

            calls = {"n": 0}
            write_table = parts.pq.write_table

            def failing(table, where, **kw):
                calls["n"] += 1
                if calls["n"] >= 3:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where))
                return write_table(table, where, **kw)

            monkeypatch.setattr(parts.pq, "write_table", failing)
            out = tmp_path / "out"
        else:
            out = disk / "out"
        capsys.readouterr()
        assert run("predict", "--config", cfg, "--output_dir", out) == 2
        line = one_error(capsys, "No space left on device", "rerun")
        assert str(out) in line
        written = read_parts(out)[0].to_pylist()  # every part that exists is whole
        assert len(written) < len(PROMPTS) * 2
        for row in written:
            assert (out / row["media_path"]).stat().st_size > 0
        if disk is None:
            monkeypatch.undo()
        else:
            (disk / "filler").unlink()  # free the space
        assert run("predict", "--config", cfg, "--output_dir", out) == 0
        rows = read_parts(out)[0].to_pylist()
        assert len(rows) == len(PROMPTS) * 2 == sum(pq.read_metadata(p).num_rows for p in list_parts(out))


def test_score_with_an_unknown_metric_lists_every_metric(finished, capsys):
    _, out = finished
    before = snapshot(out)
    capsys.readouterr()
    assert run("score", out, "--metrics", "hpsv3") == 2
    one_error(capsys, "unknown metric 'hpsv3'", "hpsv2", "shapebench")
    assert snapshot(out) == before


def test_unknown_metric_in_a_config_lists_every_metric(tmp_path, capsys):
    cfg = write_experiment(tmp_path)
    data = yaml.safe_load(cfg.read_text())
    data["model"]["metrics"] = ["hpsv3"]
    cfg.write_text(yaml.safe_dump(data))
    capsys.readouterr()
    assert run("validate", "--config", cfg) == 2
    one_error(capsys, "unknown metric 'hpsv3'", "shapebench", "pickscore")


def test_short_names_work_in_command_line_overrides_too(tmp_path, capsys):
    """``--model.samplers`` / ``--model.metrics`` / ``--model.adapter`` take the short forms a config file takes; a
    wrong name or a setting that cannot run says so in the same one line as in a config file."""
    cfg = write_experiment(tmp_path)
    capsys.readouterr()
    assert run("validate", "--config", cfg, "--model.samplers", "[standard, {name: zeta, warmup_steps: 2}]",
               "--model.metrics=[{name: toy_metric.Brightness}]") == 0
    out = capsys.readouterr().out
    assert "zeta γ=5.5 τ=2" in out
    assert "brightness" in out
    assert run("validate", "--config", cfg, "--model.metrics", "[hpsv3]") == 2
    one_error(capsys, "unknown metric 'hpsv3'", "shapebench")
    assert run("validate", "--config", cfg, "--model.samplers", "[{name: zeta, warmup_steps: 4}]") == 2
    one_error(capsys, "warmup_steps 4", "leaves no zigzag step")  # the experiment has 4 steps
    assert run("validate", "--config", cfg, "--model.samplers", "[{name: zigzag, lambda_steps: 0}]") == 2
    one_error(capsys, "lambda_steps")
    assert run("validate", "--config", cfg, "--model.samplers", "[zetta]") == 2
    one_error(capsys, "unknown sampler 'zetta'")
    # slurm builds the experiment once before it writes the array job: the same forms work there
    assert run("slurm", "--config", cfg, "--array", "2", "--gpus", "1", "--dry-run", "--output_dir", tmp_path / "s",
               "--model.samplers", "[standard, {name: zeta, warmup_steps: 2}]") == 0
    assert "zeta γ=5.5 τ=2" in capsys.readouterr().out
    assert run("slurm", "--config", cfg, "--array", "2", "--gpus", "1", "--dry-run", "--output_dir", tmp_path / "s",
               "--model.metrics", "[hpsv3]") == 2
    one_error(capsys, "unknown metric 'hpsv3'")


@pytest.mark.parametrize("suffix,content", [
    (".txt", b"a caf\xc3\xa9 prompt\nfine\n\xff\xfe bad\n"),
    (".jsonl", b'{"prompt": "ok"}\n{"prompt": "ok too"}\n{"prompt": "caf\xe9"}\n'),
    (".csv", b"prompt\nok\nok too\ncaf\xe9\n"),
])
def test_a_prompt_file_that_is_not_utf8_names_the_file_and_line(tmp_path, capsys, suffix, content):
    cfg = write_experiment(tmp_path)
    prompts = tmp_path / f"latin1{suffix}"
    prompts.write_bytes(content)
    capsys.readouterr()
    assert run("validate", "--config", cfg, "--data.init_args.source", prompts) == 2
    line = one_error(capsys, f"{prompts}:{3 if suffix != '.csv' else 4}", "UTF-8")
    assert "codec can't decode" not in line


def test_empty_config(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n")
    capsys.readouterr()
    assert run("validate", "--config", empty) == 2
    one_error(capsys, str(empty), "empty")


def test_an_overlay_alone(capsys):
    capsys.readouterr()
    assert run("validate", "--config", ROOT / "configs" / "4090.yaml") == 2
    one_error(capsys, "4090.yaml", "overlay", "--config sdxl_drawbench.yaml")


def test_report_on_a_regular_file(tmp_path, capsys):
    target = tmp_path / "afile"
    target.write_text("mine")
    capsys.readouterr()
    assert run("report", target) == 2
    one_error(capsys, str(target), "not a folder")
    assert target.read_text() == "mine" and sorted(tmp_path.iterdir()) == [target]


# ---------------------------------------------------------------------------------------------- item 14
@pytest.mark.parametrize("bad", [["--model.steps", "1000000000"], ["--model.schedule", "[999, 500, 700]"]])
def test_a_failed_run_does_not_block_its_corrected_rerun(tmp_path, capsys, bad):
    cfg = write_experiment(tmp_path)
    out = tmp_path / "out"
    capsys.readouterr()
    assert run("predict", "--config", cfg, "--output_dir", out, *bad) == 2
    one_error(capsys)
    assert not (out / "experiment.json").exists() and not list_parts(out)
    assert run("predict", "--config", cfg, "--output_dir", out) == 0
    assert read_parts(out)[0].num_rows == len(PROMPTS) * 2


def test_a_folder_without_results_is_free(tmp_path):
    cfg = write_experiment(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "experiment.json").write_text(json.dumps({"fingerprint": "another experiment", "data": {}}))
    assert run("predict", "--config", cfg, "--output_dir", out) == 0
    assert json.loads((out / "experiment.json").read_text())["fingerprint"] != "another experiment"


# ---------------------------------------------------------------------------------------------- item 15
def test_a_second_predict_of_the_same_shard_is_refused_while_other_shards_run(tmp_path, capsys):
    go = tmp_path / "go"  # the first run holds its shard after its first batch until this file exists (on any load)
    cfg = write_experiment(tmp_path, batch_size=1, wait_for=go)
    out = tmp_path / "out"
    shard0 = ["--data.init_args.shard_index", "0", "--data.init_args.num_shards", "2"]
    first = cli_process("predict", "--config", cfg, "--output_dir", out, *shard0, "--report", "false")
    try:
        deadline = time.time() + 120
        while not list_parts(out) and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, first.communicate()
        capsys.readouterr()
        assert run("predict", "--config", cfg, "--output_dir", out, *shard0) == 2
        one_error(capsys, "shard 0 of 2", "already running")
        assert first.poll() is None  # the refusal came while the first run held the shard
        go.touch()
        # the other shard writes the same folder while the first run finishes
        assert run("predict", "--config", cfg, "--output_dir", out, "--data.init_args.shard_index", "1",
                   "--data.init_args.num_shards", "2") == 0
    finally:
        go.touch()
        stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-3000:]
    rows = read_parts(out)[0].to_pylist()
    assert len(rows) == len(PROMPTS) * 2 == sum(pq.read_metadata(p).num_rows for p in list_parts(out))


def test_the_lock_is_released_when_its_holder_dies(tmp_path):
    cfg = write_experiment(tmp_path)
    out = tmp_path / "out"
    lock = out / "locks" / "shard-0-of-1.lock"
    lock.parent.mkdir(parents=True)
    # the lock of a predict that was killed with kill -9 must not block the next run
    subprocess.run([sys.executable, "-c", f"import fcntl, os, signal; fd = os.open({str(lock)!r}, os.O_RDWR | "
                    "os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); os.kill(os.getpid(), signal.SIGKILL)"])
    assert lock.is_file()
    assert run("predict", "--config", cfg, "--output_dir", out) == 0
    assert read_parts(out)[0].num_rows == len(PROMPTS) * 2


# ---------------------------------------------------------------------------------------------- item 16
def test_a_corrupt_part_is_moved_aside_once_and_its_samples_recomputed(tmp_path, capsys):
    cfg = write_experiment(tmp_path)
    out = tmp_path / "out"
    assert run("predict", "--config", cfg, "--output_dir", out) == 0
    victim = list_parts(out)[0]
    lost = pq.read_table(victim).num_rows
    victim.write_bytes(victim.read_bytes()[:100])  # truncated by a crash of the disk, not by zeta_eval
    capsys.readouterr()
    assert run("predict", "--config", cfg, "--output_dir", out) == 0
    err = capsys.readouterr().err
    assert sum(victim.name in line for line in err.splitlines()) == 1, err
    assert "parts/corrupt" in err
    assert not victim.exists() and (out / "parts" / "corrupt" / victim.name).is_file()
    rows = read_parts(out)[0].to_pylist()
    assert len(rows) == len(PROMPTS) * 2 and lost > 0
    capsys.readouterr()
    assert run("report", out) == 0  # nothing left to trip on
    assert victim.name not in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- item 17
def test_more_cpu_ranks_than_cores_are_refused_unless_forced(tmp_path, capsys):
    cfg = write_experiment(tmp_path)
    too_many = str(len(os.sched_getaffinity(0)) + 1)
    args = ["validate", "--config", cfg, "--trainer.accelerator", "cpu", "--trainer.devices", too_many,
            "--trainer.strategy", "ddp"]
    capsys.readouterr()
    assert run(*args) == 2
    one_error(capsys, f"--trainer.devices {too_many}", "cores", "--oversubscribe true")
    assert run(*args, "--oversubscribe", "true") == 0


def test_a_bare_config_name_is_found_in_configs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no shapebench_smoke.yaml here, nor a configs/ folder
    capsys.readouterr()
    assert run("validate", "--config", "shapebench_smoke.yaml", "--output_dir", tmp_path / "out") == 0
    assert "shapebench" in capsys.readouterr().out
    assert run("validate", "--config", "no_such_config.yaml") == 2
    one_error(capsys, "no_such_config.yaml", "configs")


def test_a_source_typo_with_a_subset_says_unknown_source(capsys):
    capsys.readouterr()
    assert run("validate", "--config", ROOT / "configs" / "shapebench_smoke.yaml", "--data.init_args.source",
               "shapebnch") == 2
    one_error(capsys, "unknown source 'shapebnch'")


# ---------------------------------------------------------------------------------------------- item 12
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_keeps_every_finished_sample_and_says_how_to_resume(tmp_path, signum):
    cfg = write_experiment(tmp_path, batch_size=1, delay=0.1)  # 0.1 s per network call, 8 calls per sample
    out = tmp_path / "out"
    proc = cli_process("predict", "--config", cfg, "--output_dir", out)
    deadline = time.time() + 120
    while len(list_parts(out)) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    sent = time.time()
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert time.time() - sent < 10  # within seconds, not at the end of the run
    assert proc.returncode == 128 + signum
    lines = [ln for ln in stderr.splitlines() if ln.startswith("zeta_eval")]
    assert "Traceback" not in stderr and len(lines) == 1, stderr[-3000:]
    rows = read_parts(out)[0].to_pylist()
    name = signal.Signals(signum).name
    assert lines[0] == (f"zeta_eval predict: stopped by {name} after {len(rows)} samples; rerun the same command to "
                        "resume")
    assert 2 <= len(rows) < len(PROMPTS) * 2
    assert not list(out.glob("parts/*.tmp"))
    assert run("predict", "--config", cfg, "--output_dir", out) == 0
    assert len(read_parts(out)[0].to_pylist()) == len(PROMPTS) * 2 == sum(
        pq.read_metadata(p).num_rows for p in list_parts(out))
