"""``python -m zeta_eval {predict,validate,report,score,slurm} ...``

``predict`` and ``validate`` go through LightningCLI (configs, overlays, dotted overrides); ``report``, ``score`` and
``slurm`` are plain argparse tools over an output folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

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


# ---------------------------------------------------------------------------------------------- LightningCLI
def _first_config(args: Sequence[str]) -> str | None:
    for k, a in enumerate(args):
        if a in ("--config", "-c") and k + 1 < len(args):
            return args[k + 1]
        if a.startswith("--config="):
            return a.split("=", 1)[1]
    return None


def _build_cli(args: Sequence[str], plan_only: bool) -> Any:
    from jsonargparse import ArgumentError
    from lightning.pytorch.cli import LightningCLI

    from datamodules import PromptDataModule

    from . import config as zconfig
    from .experiment import finish_after_predict, prepare_output_dir, print_plan
    from .module import SamplingEvaluation
    from .writer import ParquetPartWriter

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

        def before_instantiate_classes(self) -> None:
            cfg = self.config["predict"]
            out = Path(cfg.get("output_dir") or Path("outputs") / config_stem)
            cfg["output_dir"] = str(out)
            cfg["model"]["output_dir"] = str(out)

        def instantiate_trainer(self, **kwargs: Any) -> Any:
            trainer = super().instantiate_trainer(**kwargs)
            if not plan_only:
                trainer.callbacks.append(ParquetPartWriter(self.config["predict"]["output_dir"]))
                if trainer.loggers:  # --trainer.logger: batch means, sample images and the summary (tracking.py)
                    from .tracking import ExperimentTracking

                    trainer.callbacks.append(ExperimentTracking(self.config["predict"]["output_dir"]))
            return trainer

        def before_predict(self) -> None:
            prepare_output_dir(self, force=bool(self.config["predict"].get("force")))

        def after_predict(self) -> None:
            finish_after_predict(self, write_report=bool(self.config["predict"].get("report", True)))

        def _run_subcommand(self, subcommand: str) -> None:
            if plan_only:
                print_plan(self)
                return
            super()._run_subcommand(subcommand)

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


def _one_line(message: str) -> str:
    """jsonargparse nests the reason of a failed class parse deep in a multi-line message; keep what matters."""
    lines = [ln.strip(" -") for ln in message.splitlines() if ln.strip()]
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
        if isinstance(cause, (ValueError, FileNotFoundError, UserError)) and type(cause).__module__.split(".")[0] in ours + ("builtins",):
            tb = cause.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            where = tb.tb_frame.f_globals.get("__name__", "") if tb is not None else ""
            if where.split(".")[0] in ours:
                return _one_line(str(cause))
    return _one_line(str(err))


def check_config_files(args: Sequence[str]) -> None:
    """Every --config file exists, is YAML, and names only known adapters, samplers and metrics."""
    from . import config as zconfig

    for k, a in enumerate(args):
        path = args[k + 1] if a in ("--config", "-c") and k + 1 < len(args) else (a.split("=", 1)[1] if a.startswith("--config=") else None)
        if path is None:
            continue
        if not Path(path).is_file():
            raise UserError(f"config file {path} does not exist")
        try:
            zconfig.load_file(path)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            raise UserError(f"{path} is not valid YAML{where}: {getattr(err, 'problem', None) or err}") from err
        except ValueError as err:
            raise UserError(f"{path}: {err}") from err


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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _configure_logging()
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command in ("predict", "validate"):
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
    except (UserError, ValueError, FileNotFoundError) as err:
        if os.environ.get("ZETA_EVAL_DEBUG"):
            raise
        print(f"zeta_eval {command}: error: {user_message(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - known user-facing failure types get one line too
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        from .adapters.base import ModelLoadError

        if isinstance(err, (MisconfigurationException, ModelLoadError)) and not os.environ.get("ZETA_EVAL_DEBUG"):
            print(f"zeta_eval {command}: error: {user_message(err)}", file=sys.stderr)
            return 2
        raise
