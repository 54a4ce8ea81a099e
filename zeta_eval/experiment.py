"""What ``predict`` does around ``trainer.predict``: guard the output folder, print plans, write the report."""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .parts import atomic_text, list_parts

log = logging.getLogger("zeta_eval")


class ShardLock:
    """An exclusive ``flock`` on ``OUT_DIR/locks/shard-<k>-of-<K>.lock``, held while one ``predict`` of that shard
    runs, so that a second ``predict`` of the same shard is refused instead of computing everything twice. Different
    shards of one array lock different files and write the folder together. The OS drops the lock when its process
    ends, ``kill -9`` included; the file itself stays (an unlocked file means nothing).

    Runs of another shard count (an unsharded run beside an array, whose shards hold the same items) are refused
    too: each run holds a shared lock on ``locks/layout-<K>.lock`` and checks that no other layout file is locked
    (it takes its own before it checks, so of two runs that start together at least the later one sees the other).
    """

    def __init__(self, path: Path, fd: int, created: list[Path], layout: tuple[Path, int] | None = None):
        self.path, self._fd, self._created = path, fd, created
        self._layout = layout

    @classmethod
    def acquire(cls, out: Path, shard_index: int, num_shards: int) -> "ShardLock":
        path = out / "locks" / f"shard-{shard_index}-of-{num_shards}.lock"
        created = [p for p in (out, path.parent) if not p.exists()]
        path.parent.mkdir(parents=True, exist_ok=True)
        layout = _lock_layout(out, num_shards)
        try:
            lock = cls._acquire_shard(out, path, shard_index, num_shards, created)
        except BaseException:
            os.close(layout[1])
            raise
        lock._layout = layout
        return lock

    @classmethod
    def _acquire_shard(cls, out: Path, path: Path, shard_index: int, num_shards: int,
                       created: list[Path]) -> "ShardLock":
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode(errors="replace").strip()
                os.close(fd)
                raise UserError(f"another predict is already running shard {shard_index} of {num_shards} in {out} "
                                f"({holder or 'see ' + str(path)}); wait for it to finish, or use another "
                                "--output_dir") from None
            try:
                current = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:  # not a file that a finishing run removed between our open and our flock
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        return cls(path, fd, created)

    def release(self, remove: bool = False) -> None:
        """Unlock; ``remove`` also deletes the lock file and the folders created for it (a run that produced no
        results leaves nothing behind). Removing it while still holding it is safe: a waiting run that locked the
        removed file sees that and locks a new one."""
        if self._fd < 0:
            return
        if self._layout is not None:
            layout_path, layout_fd = self._layout
            if remove:
                try:  # removed only when no other run of this layout holds it
                    fcntl.flock(layout_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    layout_path.unlink(missing_ok=True)
                except BlockingIOError:
                    pass
            os.close(layout_fd)
            self._layout = None
        if remove:
            self.path.unlink(missing_ok=True)
            for folder in reversed(self._created):
                try:
                    folder.rmdir()
                except OSError:  # not empty: another shard's lock, or results
                    break
        os.close(self._fd)
        self._fd = -1


def _lock_layout(out: Path, num_shards: int) -> tuple[Path, int]:
    """A shared lock on ``locks/layout-<num_shards>.lock`` (held by every shard of this count), after checking that
    no run of another shard count holds its own; the caller closes the descriptor to release it."""
    path = out / "locks" / f"layout-{num_shards}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:  # not a file that a finishing run removed meanwhile
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    for other in sorted(path.parent.glob("layout-*.lock")):
        if other == path:
            continue
        probe = os.open(other, os.O_RDONLY)
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            count = other.stem.removeprefix("layout-")
            running = "an unsharded predict" if count == "1" else f"a predict of {count} array shards"
            mine = "unsharded" if num_shards == 1 else f"as {num_shards} array shards"
            raise UserError(f"{running} is running in {out}, which holds the same items; this run ({mine}) would "
                            "compute them twice: wait for it to finish, use the same shard count, or use another "
                            "--output_dir") from None
        finally:
            os.close(probe)
    return path, fd


@dataclass
class PreparedRun:
    """What :func:`prepare_output_dir` leaves to the run: the shard lock, and the experiment record that is written
    with the run's first result (a run that fails before producing one leaves no experiment.json to block the
    corrected rerun)."""

    out: Path
    record: dict[str, Any]
    config_text: str
    lock: ShardLock | None = None

    def write_record(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        record = {**self.record, "updated_at": _dt.datetime.now(_dt.timezone.utc).isoformat()}
        atomic_text(self.out / "experiment.json", json.dumps(record, indent=2, sort_keys=True, default=str))
        atomic_text(self.out / "config.yaml", self.config_text)

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release(remove=not list_parts(self.out))


def prepare_output_dir(cli: Any, force: bool = False) -> PreparedRun:
    """Refuse a folder that holds another experiment's results (unless ``force``) or whose shard another ``predict``
    is running; take the shard's lock (global rank 0). Nothing else is written here: the experiment record is written
    with the first result (:meth:`PreparedRun.write_record`). A folder without results is free: the experiment.json
    of a run that produced nothing is simply replaced.
    """
    trainer, model, dm = cli.trainer, cli.model, cli.datamodule
    out = Path(cli.config["output_dir"])
    if out.exists() and not out.is_dir():
        raise UserError(f"--output_dir {out} is a file, not a folder")
    model.adapter.device = trainer.strategy.root_device  # identities include the dtype the run will use
    record = experiment_record(model, dm, out)
    replaced = check_same_experiment(out, record, force)
    full = yaml.safe_load(cli.parser.dump(cli.config, skip_none=False, format="yaml"))
    prepared = PreparedRun(out, record, yaml.safe_dump(full, sort_keys=False, allow_unicode=True))
    if trainer.is_global_zero:
        prepared.lock = ShardLock.acquire(out, int(getattr(dm, "shard_index", 0) or 0),
                                          int(getattr(dm, "num_shards", 1) or 1))
        if replaced:  # --force accepted another experiment: the folder is this one's from now on
            prepared.write_record()
            log.warning("%s held results of a different experiment (%s); --force: its record now names this one, "
                        "and rows of the other are left out of its report", out, replaced)
    done = samples_done(out, record)
    if done:
        log.info("resuming in %s: %d samples of this experiment already written will be skipped", out, done)
    return prepared


def samples_done(out: Path, record: dict[str, Any]) -> int:
    """How many samples of the experiment ``record`` the folder holds (rows of other experiments, and rows scored
    with metadata that has since changed, not counted)."""
    from .parts import read_parts
    from .results import completeness

    if not list_parts(out):
        return 0
    table, _ = read_parts(out, skip_corrupt=True)
    if table.num_rows == 0:
        return 0
    return completeness(table.select([c for c in COMPLETENESS_COLUMNS if c in table.column_names]).to_pydict(),
                        record).done


#: the row columns that :func:`zeta_eval.results.completeness` reads
COMPLETENESS_COLUMNS = ("sample_id", "sampler_key", "model_key", "prompt_set", "prompt_id", "prompt", "seed",
                        "sample_index", "metadata")


def check_same_experiment(out: Path, record: dict[str, Any], force: bool = False) -> str | None:
    """Refuse (one line) a folder whose results belong to another experiment than ``record``, or cannot be checked
    (parts without experiment.json), unless ``force``: ``predict`` before it writes, ``validate`` before it promises
    what is left to do there. Returns how the folder's experiment differs when ``force`` accepts it (None: the same
    experiment, or no results yet)."""
    if not list_parts(out):
        return None
    path = out / "experiment.json"
    if not path.is_file():
        if force:
            return "no experiment.json"
        raise UserError(f"{out} holds result parts but no experiment.json, so it cannot be checked; use another "
                        "--output_dir, or --force")
    previous = json.loads(path.read_text())
    if previous.get("fingerprint") == record["fingerprint"]:
        return None
    if force:
        return _difference(previous, record)
    raise UserError(f"{out} holds results of a different experiment ({_difference(previous, record)}); use "
                    "another --output_dir, or --force to write into it anyway")


def experiment_record(model: Any, dm: Any, out: Path) -> dict[str, Any]:
    """What experiment.json holds: the fingerprint and what it is made of (data, model and sampler identities),
    and, outside the identity, what a report needs to tell a complete run from a partial one: the model key every
    row carries, every item's key in order (``item_keys``; array shard k of K holds items k, k + K, ...), the shard
    count of the run, and where a local model lay."""
    from .identity import record_item_key, record_metadata_key

    dm.setup("predict")
    ident = dm.identity()  # a PromptDataModule (the CLI takes its subclasses only)
    items = _count(dm)
    records = dm.records() if items is not None and hasattr(dm, "records") else None
    return {"fingerprint": model.fingerprint(ident), "name": out.name, "data": ident,
            "model": model.model_identity(), "model_key": model.model_key(), "model_path": model.adapter.model_path,
            "samplers": [{"key": k, "label": model.sampler_label(s), "params": s.params(),
                          "steps": s.num_steps(model.steps), "nfe": model.expected_nfe(s)}
                         for s, k in ((s, _key(model, s)) for s in model.all_samplers())],
            "steps": model.steps, "max_steps_scaled_from": model.scaled_from, "schedule": model.schedule,
            "items": items, "item_keys": None if records is None else [record_item_key(r) for r in records],
            "item_metadata_keys": None if records is None else [record_metadata_key(r) for r in records],
            "num_shards": int(getattr(dm, "num_shards", 1) or 1)}


def _key(model: Any, sampler: Any) -> str:
    from .identity import sampler_key

    return sampler_key(sampler, model.steps, model.schedule)


def _count(dm: Any) -> int | None:
    for attr in ("num_items", "__len__"):
        fn = getattr(dm, attr, None)
        if callable(fn):
            try:
                return int(fn())
            except TypeError:
                continue
    return None


def _difference(previous: dict[str, Any], current: dict[str, Any]) -> str:
    parts = []
    if previous.get("data") != current.get("data"):
        parts.append("different prompts")
    if previous.get("model") != current.get("model"):
        parts.append("different model")
    if [s.get("key") for s in previous.get("samplers", [])] != [s["key"] for s in current["samplers"]]:
        parts.append("different samplers")
    return ", ".join(parts) or "different settings"


def print_plan(cli: Any) -> None:
    """``validate``: everything is built (no weights loaded); print what ``predict`` would do, and in a folder that
    already holds part of this experiment, what is left of it and what that costs."""
    from .results import completeness

    model, dm = cli.model, cli.datamodule
    out = Path(cli.config["output_dir"])
    model.adapter.device = cli.trainer.strategy.root_device  # the identity predict will use (its dtype)
    record = experiment_record(model, dm, out)
    check_same_experiment(out, record, force=bool(cli.config.get("force")))
    items = record["items"]
    desc = dm.describe() if hasattr(dm, "describe") else {}
    scaled = f" (max_steps: scaled from {model.scaled_from})" if model.scaled_from else ""
    lines = [f"experiment  -> {out}",
             f"model       {model.adapter.family}: {model.adapter.model_label}"
             + (f" in {model.adapter.model_path}" if model.adapter.model_path else "")
             + f" (dtype {model.adapter.dtype_name})",
             f"prompts     {desc.get('prompt_set', desc.get('source', '?'))}: {items} items "
             f"({desc.get('num_prompts', '?')} prompts; seeds: {_seed_rule(desc)})",
             f"schedule    {model.schedule}, default steps {model.steps}{scaled}",
             "samplers:"]
    total = twin_total = 0
    for s in model.all_samplers():
        nfe = model.expected_nfe(s)
        total += nfe * (items or 0)
        twin = getattr(s, "twin_kind", None) is not None  # a CFG twin: its scale is measured per sample
        twin_total += nfe * (items or 0) if twin else 0
        lines.append(f"  {model.sampler_label(s):48s} steps {s.num_steps(model.steps):4d}  NFE {nfe:5d}  "
                     + ("γ measured per sample" if twin else f"γ_eff {s.gamma_eff:g}"))
    if twin_total:
        lines.append(f"twins       CFG twins cost {twin_total:,} of these network evaluations "
                     f"({twin_total / total:.0%})")
    n_samples = (items or 0) * len(model.all_samplers())
    lines.append(f"total       {n_samples} samples, {total:,} network evaluations")
    if getattr(model, "frontier", None):
        from .frontier import frontier_label

        added = [s for s in model.samplers if s.label == frontier_label(s.gamma1)]
        cost = sum(model.expected_nfe(s) for s in added) * (items or 0)
        lines.append(f"frontier    CFG at γ = {', '.join(f'{g:g}' for g in model.frontier)}: {len(added)} settings "
                     f"added ({cost:,} network evaluations of the total)")
    metrics = [m.name for m in model.metric_list]
    lines.append(f"metrics     {', '.join(metrics) or 'none'}{'' if model.score_enabled else ' (deferred: score later)'}")
    todo, what = total, "the whole experiment"
    if out.is_dir() and list_parts(out):
        from .parts import read_parts

        table, _ = read_parts(out, skip_corrupt=True)
        state = completeness(table.select([c for c in COMPLETENESS_COLUMNS if c in table.column_names]).to_pydict(),
                             record)
        if state.expected is None:
            lines.append(f"done        {state.done} samples in {out}; how many remain is known once the streamed "
                         "source has been read")
        else:
            nfe = {entry["key"]: entry["nfe"] for entry in record["samplers"]}
            todo = sum(entry["missing"] * nfe[entry["key"]] for entry in state.samplers)
            left = ", ".join(f"{entry['label']} {entry['missing']}" for entry in state.samplers if entry["missing"])
            lines.append(f"remaining   {state.expected - state.done} of {state.expected} samples, {todo:,} network "
                         f"evaluations" + (f": {left}" if left else " (complete)"))
            what = f"the remaining {todo:,} network evaluations"
    seconds = _seconds_per_nfe(out)
    if seconds is not None:
        lines.append(f"estimate    {todo * seconds / 3600:.2f} device-hours for {what} at the {seconds * 1e3:.2f} ms "
                     "per NFE measured in this folder")
    else:
        lines.append("estimate    no timing measured yet for this model here: run a few prompts "
                     "(e.g. --data.init_args.limit 4) to measure ms per NFE")
    print("\n".join(lines))


def _seed_rule(desc: dict[str, Any]) -> str:
    seeds = desc.get("seeds", desc.get("seed_policy", "?"))
    return seeds.get("rule", str(seeds)) if isinstance(seeds, dict) else str(seeds)


def _seconds_per_nfe(out: Path) -> float | None:
    if not out.is_dir() or not list_parts(out):
        return None
    from .parts import read_parts

    table, _ = read_parts(out, skip_corrupt=True)
    if table.num_rows == 0 or "seconds" not in table.column_names:
        return None
    secs = sum(v for v in table.column("seconds").to_pylist() if v)
    nfe = sum(v for v in table.column("nfe").to_pylist() if v)
    return secs / nfe if nfe else None


def task_rows(out: Path, model: Any, dm: Any) -> list[dict[str, Any]]:
    """Every stored row of this array task (this run's and earlier runs'): the samples of its shard's items, or,
    for a streamed source whose items are not listed, the rows written as this shard with this model."""
    from .parts import read_parts

    table, _ = read_parts(out, skip_corrupt=True)
    if table.num_rows == 0:
        return []
    wanted = ["sample_id", "metadata", "array_task", "model_key"] + [m.name for m in model.metric_list]
    rows = table.select([c for c in wanted if c in table.column_names]).to_pylist()
    if not getattr(dm, "streaming", False) and hasattr(dm, "shard_records"):
        ids = {model.sample_id(r, s) for r in dm.shard_records() for s in model.all_samplers()}
        return [r for r in rows if r["sample_id"] in ids]
    shard = int(getattr(dm, "shard_index", 0) or 0)
    return [r for r in rows if r.get("array_task") == shard and r.get("model_key") == model.model_key()]


def finish_after_predict(cli: Any, write_report: bool = True) -> None:
    """On every rank: the metric summary of the task over all its stored rows (a collective), then, on rank 0,
    ``live_metrics_task<k>.json`` and - for a single (non-array) job - the report. Array tasks leave the report to
    the merge job."""
    trainer, dm, model = cli.trainer, cli.datamodule, cli.model
    out = Path(cli.config["output_dir"])
    try:  # every rank's parts are on disk past this point
        trainer.strategy.barrier("zeta_eval_finish")
    except RuntimeError as err:  # a torn-down process group: every rank has already returned
        log.debug("no barrier before the summary: %s", err)
    rows = task_rows(out, model, dm) if trainer.is_global_zero and out.is_dir() else []
    summary = model.finish_metrics(rows)
    if not trainer.is_global_zero:
        return
    if summary and out.is_dir():
        task = getattr(dm, "shard_index", 0) or 0
        atomic_text(out / f"live_metrics_task{task}.json", json.dumps(summary, indent=2, sort_keys=True))
        log.info("metrics of task %d over its %d samples written so far: %s", task, len(rows),
                 ", ".join(f"{k}={v:.4g}" for k, v in sorted(summary.items())))
    if not write_report or int(getattr(dm, "num_shards", 1) or 1) > 1:
        return
    from .report import write_report as build_report
    from .results import ReportError

    try:
        written = build_report(out)
    except ReportError as err:  # e.g. nothing was generated because everything was already done and reported
        log.warning("no report: %s", err)
        return
    log.info("report written: %s", ", ".join(str(p) for p in written.values()))
    from .tracking import log_summaries

    log_summaries(trainer, out)  # experiment trackers (--trainer.logger) get the summary table
