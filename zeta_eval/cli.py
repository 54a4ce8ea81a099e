"""``python -m zeta_eval {predict,validate,report,score,slurm} ...``

``predict`` and ``validate`` go through LightningCLI (configs, overlays, dotted overrides); ``report``, ``score`` and
``slurm`` are plain argparse tools over an output folder.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from .stopping import StopRequested, stop_on_signals

USAGE = """usage: python -m zeta_eval <command> [options]

commands:
  predict   run an experiment:  predict --config X.yaml [--config overlay.yaml] [--output_dir DIR] [--force]
            [dotted overrides, e.g. --model.steps 20 --data.init_args.limit 8 --trainer.devices 2]
  validate  build an experiment without loading weights and print its plan:  validate --config X.yaml
  report    merge the parts of an output folder into samples.parquet, summary.md/.csv and plots:  report OUT_DIR
  score     add metric columns to a finished run:  score OUT_DIR --metrics hpsv2 pickscore
  slurm     write (and submit) an sbatch array job for a config:  slurm --config X.yaml --array K --gpus G

run `python -m zeta_eval <command> --help` for a command's options.
"""

log = logging.getLogger("zeta_eval")


class UserError(Exception):
    """A mistake in the command line, config or output folder: reported as one line, exit code 2."""


# ---------------------------------------------------------------------------------------------- config files
def config_folders() -> list[Path]:
    """Where a config given without its folder (``sdxl_drawbench.yaml``) is looked up when the current folder does
    not hold it: ``./configs``, the configs packaged with zeta_eval, those of the source checkout it runs from."""
    package = Path(__file__).resolve().parent
    folders: list[Path] = []
    for folder in (Path("configs"), package / "configs", package.parent / "configs"):
        if folder.is_dir() and all(folder.resolve() != f.resolve() for f in folders):
            folders.append(folder)
    return folders


def find_config(name: str) -> str:
    """The path of config ``name``: as given if that file exists, else the same relative path inside one of
    :func:`config_folders` (``sdxl_drawbench.yaml`` and ``configs/sdxl_drawbench.yaml`` from any folder)."""
    path = Path(name).expanduser()
    if path.is_file() or path.is_absolute():
        return name
    inside = Path(*path.parts[1:]) if path.parts[:1] == ("configs",) and len(path.parts) > 1 else path
    for folder in config_folders():
        if (folder / inside).is_file():
            return str(folder / inside)
    looked = ", ".join(str(f) for f in config_folders()) or "configs/"
    raise UserError(f"config file {name} does not exist (looked in the current folder and in {looked})")


def _config_positions(args: Sequence[str]) -> list[tuple[int, str]]:
    """``(index, path)`` of every ``--config X`` (index of X) and ``--config=X`` (index of the whole argument)."""
    found = []
    for k, a in enumerate(args):
        if a in ("--config", "-c") and k + 1 < len(args):
            found.append((k + 1, args[k + 1]))
        elif a.startswith("--config="):
            found.append((k, a.split("=", 1)[1]))
    return found


def resolve_config_args(args: Sequence[str]) -> list[str]:
    """``args`` with every config name replaced by the file :func:`find_config` finds for it."""
    out = list(args)
    for k, name in _config_positions(args):
        path = find_config(name)
        out[k] = path if out[k] == name else f"--config={path}"
    return out


def _first_config(args: Sequence[str]) -> str | None:
    found = _config_positions(args)
    return found[0][1] if found else None


def check_config_files(args: Sequence[str]) -> None:
    """Every --config file exists, is a YAML mapping that names only known adapters, samplers and metrics, and the
    files and dotted overrides together configure a model adapter (an overlay such as ``4090.yaml`` alone does not)."""
    from . import config as zconfig

    loaded: list[tuple[str, dict]] = []
    for _, path in _config_positions(args):
        if not Path(path).is_file():
            raise UserError(f"config file {path} does not exist")
        try:
            with open(path, encoding="utf-8") as fh:
                raw = yaml.safe_load(fh)
            if raw is None:
                raise UserError(f"{path} is empty: a config needs model and data sections (see configs/)")
            if not isinstance(raw, dict):
                raise UserError(f"{path} must be a mapping with model, data and trainer sections, not a "
                                f"{type(raw).__name__}")
            loaded.append((path, zconfig.expand_config(raw)))
        except UnicodeDecodeError as err:
            raise UserError(f"{path} is not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start})") from err
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            raise UserError(f"{path} is not valid YAML{where}: {getattr(err, 'problem', None) or err}") from err
        except ValueError as err:
            raise UserError(f"{path}: {err}") from err
    if not _configures_adapter([cfg for _, cfg in loaded], args):
        if not loaded:
            raise UserError("no model adapter configured: give an experiment config, e.g. "
                            "--config configs/shapebench_smoke.yaml")
        names = ", ".join(Path(p).name for p, _ in loaded)
        kind = "is an overlay" if len(loaded) == 1 else "are overlays"
        raise UserError(f"no model adapter configured: {names} {kind} (no model.adapter); give the experiment config "
                        f"first, e.g. --config configs/sdxl_drawbench.yaml --config {loaded[0][0]}")


def _configures_adapter(configs: Sequence[dict], args: Sequence[str]) -> bool:
    """Some config names an adapter class (an overlay's ``adapter: {init_args: ...}`` only changes one), or a dotted
    override sets it."""
    for cfg in configs:
        model = cfg.get("model")
        target = (model.get("init_args", model) if "class_path" in model else model) if isinstance(model, dict) else {}
        adapter = target.get("adapter") if isinstance(target, dict) else None
        if isinstance(adapter, str) or (isinstance(adapter, dict) and "class_path" in adapter):
            return True
    keys = ("--model", "--model.adapter", "--model.init_args.adapter")
    return any(a.split("=", 1)[0] in keys or a.startswith(tuple(f"{k}." for k in keys[1:])) for a in args)


# ---------------------------------------------------------------------------------------------- LightningCLI
def _build_cli(args: Sequence[str], plan_only: bool) -> Any:
    from jsonargparse import ArgumentError
    from lightning.pytorch.cli import LightningCLI

    from datamodules import PromptDataModule

    from . import config as zconfig
    from .experiment import finish_after_predict, prepare_output_dir, print_plan
    from .module import SamplingEvaluation
    from .stopping import GracefulStop
    from .writer import DEFAULT_WRITE_QUEUE, ParquetPartWriter

    zconfig.register_loader()
    config_stem = Path(_first_config(args) or "experiment").stem

    class ZetaCLI(LightningCLI):
        @staticmethod
        def subcommands() -> dict[str, set[str]]:
            return {"predict": {"model", "dataloaders", "datamodule"}}

        def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any):  # noqa: D401
            parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
            # rows go to Parquet parts; keeping them in memory too would grow with the benchmark
            parser.set_defaults({"return_predictions": False})
            return parser

        def add_arguments_to_parser(self, parser: Any) -> None:
            parser.add_argument("--output_dir", type=Optional[str], default=None,
                                help="output folder (default: outputs/<first config file's stem>)")
            parser.add_argument("--force", type=bool, default=False,
                                help="write into a folder that holds another experiment's results")
            parser.add_argument("--report", type=bool, default=True,
                                help="write the report when a single (non-array) job finishes")
            parser.add_argument("--oversubscribe", type=bool, default=False,
                                help="start more CPU processes (--trainer.devices) than this machine has cores")
            parser.add_argument("--write_queue", type=int, default=DEFAULT_WRITE_QUEUE,
                                help="finished batches a background thread may hold while it writes their media and "
                                     "parts (0: write each batch before generating the next)")

        def before_instantiate_classes(self) -> None:
            cfg = self.config["predict"]
            out = Path(cfg.get("output_dir") or Path("outputs") / config_stem)
            if out.exists() and not out.is_dir():
                raise UserError(f"--output_dir {out} is a file, not a folder")
            cfg["output_dir"] = str(out)
            cfg["model"]["output_dir"] = str(out)

        def instantiate_trainer(self, **kwargs: Any) -> Any:
            trainer = super().instantiate_trainer(**kwargs)
            check_cpu_ranks(trainer, allow_more=bool(self.config["predict"].get("oversubscribe")))
            if not plan_only:
                self.part_writer = ParquetPartWriter(self.config["predict"]["output_dir"],
                                                     write_queue=self.config["predict"]["write_queue"])
                self.stopper = GracefulStop(lambda: self.part_writer.written, trainer)
                trainer.callbacks.extend([self.part_writer, self.stopper.callback()])
                if trainer.loggers:  # --trainer.logger: batch means, sample images and the summary (tracking.py)
                    from .tracking import ExperimentTracking

                    trainer.callbacks.append(ExperimentTracking(self.config["predict"]["output_dir"]))
            return trainer

        def before_predict(self) -> None:
            self.prepared = prepare_output_dir(self, force=bool(self.config["predict"].get("force")))
            self.part_writer.before_first_part = self.prepared.write_record

        def after_predict(self) -> None:
            finish_after_predict(self, write_report=bool(self.config["predict"].get("report", True)))

        def _run_subcommand(self, subcommand: str) -> None:
            if plan_only:
                print_plan(self)
                return
            self.prepared = None
            self.stopper.install()
            try:
                super()._run_subcommand(subcommand)
            except OSError as err:
                message = filesystem_fault(err, self.config["predict"]["output_dir"])
                if message is None:
                    raise
                raise UserError(message) from err
            finally:
                self.stopper.uninstall()
                if self.prepared is not None:
                    self.prepared.release()

    parser_kwargs = {"parser_mode": zconfig.MODE, "exit_on_error": False,
                     "predict": {"parser_mode": zconfig.MODE, "exit_on_error": False}}
    try:
        return ZetaCLI(
            SamplingEvaluation, PromptDataModule, subclass_mode_data=True,
            save_config_callback=None, auto_configure_optimizers=False, seed_everything_default=False,
            parser_kwargs=parser_kwargs,
            trainer_defaults={"logger": False, "enable_checkpointing": False, "enable_model_summary": False,
                              "precision": "32-true", "devices": 1},
            args=["predict", *args],
        )
    except ArgumentError as err:
        raise UserError(user_message(err)) from err


def check_cpu_ranks(trainer: Any, allow_more: bool = False) -> None:
    """More CPU processes than cores only slow every one of them down (each holds its own model copy and threads)."""
    from lightning.pytorch.accelerators import CPUAccelerator

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if isinstance(trainer.accelerator, CPUAccelerator) and trainer.num_devices > cores and not allow_more:
        raise UserError(f"--trainer.devices {trainer.num_devices} starts {trainer.num_devices} CPU processes but this "
                        f"machine has {cores} cores; use at most {cores}, or add --oversubscribe true to start them "
                        "anyway")


#: errors of the file system that are the machine's state, not a bug: one line, exit 2
_FILESYSTEM_ERRNOS = {errno.ENOSPC: "free some space and rerun the same command to resume (finished samples are kept)",
                      errno.EDQUOT: "free some quota and rerun the same command to resume (finished samples are kept)",
                      errno.EROFS: "choose a writable --output_dir", errno.EACCES: "choose a writable --output_dir",
                      errno.EPERM: "choose a writable --output_dir", errno.ENOTDIR: "check the --output_dir path",
                      errno.EISDIR: "check the --output_dir path", errno.EEXIST: "check the --output_dir path",
                      errno.EFBIG: "the file system refuses files this large", errno.ENAMETOOLONG: "use shorter names"}


def filesystem_fault(err: BaseException, where: str | os.PathLike | None = None) -> str | None:
    """One line for a write that the file system refused (full, read-only, no permission...), or None for any other
    error. Names the file when the error does (else ``where``, the output folder)."""
    chain, e = [], err
    while e is not None and all(e is not c for c in chain):
        chain.append(e)
        e = e.__cause__ or e.__context__
    for cause in chain:
        if isinstance(cause, OSError) and cause.errno in _FILESYSTEM_ERRNOS:
            path = cause.filename or where or "the output folder"
            return f"cannot write {path}: {os.strerror(cause.errno)}; {_FILESYSTEM_ERRNOS[cause.errno]}"
    return None


def _one_line(message: str) -> str:
    """jsonargparse nests the reason of a failed class parse deep in a multi-line message; keep what matters."""
    lines = [re.sub(r"^- ", "", ln.strip()) for ln in message.splitlines() if ln.strip()]  # jsonargparse's bullets
    if not lines:
        return message
    detail = [ln for ln in lines[1:] if any(w in ln for w in ("Expected", "not", "unknown", "must", "Unrecognized",
                                                                "does not", "required", "Problem"))]
    head = lines[0]
    return head if not detail else f"{head}: {detail[-1]}"


def user_message(err: BaseException) -> str:
    """One line for an error: the outermost one raised by zeta_eval's own code (skipping the wrappers of
    jsonargparse and Lightning), else the error itself."""
    chain: list[BaseException] = []
    e: BaseException | None = err
    while e is not None and all(e is not c for c in chain):
        chain.append(e)
        e = e.__cause__ or e.__context__
    ours = ("zeta_eval", "samplers", "datamodules", "metrics")
    for cause in chain:
        if (isinstance(cause, (ValueError, FileNotFoundError, ConnectionError, UserError))
                and type(cause).__module__.split(".")[0] in ours + ("builtins",)):
            tb = cause.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            where = tb.tb_frame.f_globals.get("__name__", "") if tb is not None else ""
            if where.split(".")[0] in ours:
                return _one_line(str(cause))
    return _one_line(str(err))


# ---------------------------------------------------------------------------------------------- entry point
class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in str(record.msg)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each message (notebooks, pytest and wrappers replace it
    between calls; a handler that kept the first stream would write to a closed file)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _configure_logging() -> None:
    """zeta_eval's own messages once, on stderr; Lightning keeps its handler; its advertising tips are dropped."""
    import warnings

    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DropTips())
    # known-harmless warnings of the stack, each said once per run otherwise
    for pattern in (r".*LightningCLI's args parameter is intended.*", r".*treespec, LeafSpec.*",
                    r".*overridden `transfer_batch_to_device`.*", r".*does not have many workers.*",
                    r".*Total length of `DataLoader` across ranks is zero.*",
                    r".*The `srun` command is available on your system but is not used.*"):
        warnings.filterwarnings("ignore", message=pattern)


def _folder_argument(args: Sequence[str]) -> str | None:
    """The output folder of a report/score command line (its first positional argument), for messages."""
    return next((a for a in args if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _configure_logging()
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    try:
        with stop_on_signals():  # from here on (before torch is imported) a stop signal ends in one line
            return _run_command(command, rest)
    except StopRequested as stop:  # SIGTERM / SIGINT; during predict what was finished is on disk
        print(f"zeta_eval {command}: {stop}", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:  # Ctrl-C before the handlers were in place
        print(f"zeta_eval {command}: interrupted", file=sys.stderr)
        return 130


def _run_command(command: str, rest: list[str]) -> int:
    try:
        return _dispatch(command, rest)
    except BrokenPipeError:  # the reader of our output went away (`validate ... | head`): not an error of the run
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 128 + 13


def _dispatch(command: str, rest: list[str]) -> int:
    try:
        if command in ("predict", "validate"):
            rest = resolve_config_args(rest)
            check_config_files(rest)
            _build_cli(rest, plan_only=command == "validate")
            return 0
        if command == "report":
            from .report import main as report_main

            return report_main(rest)
        if command == "score":
            from .scoring import main as score_main

            return score_main(rest)
        if command == "slurm":
            from .slurm import main as slurm_main

            return slurm_main(rest)
        print(f"zeta_eval: error: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    except SystemExit as exit_:  # argparse --help (0) or an argparse error already printed (2)
        return int(exit_.code or 0)
    except (UserError, ValueError, FileNotFoundError, ConnectionError) as err:
        if os.environ.get("ZETA_EVAL_DEBUG"):
            raise
        print(f"zeta_eval {command}: error: {user_message(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a read-only folder, ...: the machine's state, not a bug
        message = filesystem_fault(err, _folder_argument(rest))
        if message is None or os.environ.get("ZETA_EVAL_DEBUG"):
            raise
        print(f"zeta_eval {command}: error: {message}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - known user-facing failure types get one line too
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        from .adapters.base import ModelLoadError

        if isinstance(err, (MisconfigurationException, ModelLoadError)) and not os.environ.get("ZETA_EVAL_DEBUG"):
            print(f"zeta_eval {command}: error: {user_message(err)}", file=sys.stderr)
            return 2
        raise
