"""``predict`` and ``validate``: an experiment built by LightningCLI (configs, overlays, dotted overrides), then run.

:func:`build_cli` parses and instantiates everything (``run=False``: LightningCLI never calls the trainer itself);
:func:`run_predict` runs it around ``trainer.predict`` and :func:`experiment.print_plan` prints ``validate``'s plan.
Only LightningCLI's public hooks are used: extra arguments (``add_arguments_to_parser``), the output folder
(``before_instantiate_classes``) and the callbacks that write results (``instantiate_trainer``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

from lightning.pytorch.cli import LightningCLI

from datamodules import PromptDataModule

from . import config as zconfig
from . import flags
from .errors import UserError, filesystem_fault, user_message
from .experiment import finish_after_predict, prepare_output_dir, print_plan
from .module import SamplingEvaluation
from .writer import DEFAULT_WRITE_QUEUE

#: what a run of zeta_eval never wants from Lightning: loggers, checkpoints and a model summary unless asked for
TRAINER_DEFAULTS = {"logger": False, "enable_checkpointing": False, "enable_model_summary": False,
                    "precision": "32-true", "devices": 1}


#: the on/off options of predict and validate (bare, ``true`` or ``false``; see :mod:`.flags`)
SWITCHES = ("--force", "--report", "--oversubscribe")


class ZetaCLI(LightningCLI):
    """One experiment: :class:`SamplingEvaluation` over a :class:`PromptDataModule`, plus zeta_eval's own options.

    ``writes_results`` False (``validate``) builds everything but attaches no writer: nothing is written.
    """

    def __init__(self, args: Sequence[str], writes_results: bool = True, command: str = "predict"):
        self.writes_results = writes_results
        self.config_stem = Path(zconfig.first_config(args) or "experiment").stem
        parser_kwargs = {"parser_mode": zconfig.MODE, "exit_on_error": False, "prog": f"python -m zeta_eval {command}"}
        super().__init__(SamplingEvaluation, PromptDataModule, subclass_mode_data=True, save_config_callback=None,
                         auto_configure_optimizers=False, seed_everything_default=False, parser_kwargs=parser_kwargs,
                         trainer_defaults=TRAINER_DEFAULTS, args=list(args), run=False)

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_argument("--output_dir", type=Optional[str], default=None,
                            help="output folder (default: outputs/<first config file's stem>)")
        switch = {"type": bool, "nargs": "?", "const": True}
        parser.add_argument("--force", default=False, **switch,
                            help="write into a folder that holds another experiment's results")
        parser.add_argument("--report", default=True, **switch,
                            help="write the report when a single (non-array) job finishes")
        parser.add_argument("--oversubscribe", default=False, **switch,
                            help="start more CPU processes (--trainer.devices) than this machine has cores")
        parser.add_argument("--write_queue", type=int, default=DEFAULT_WRITE_QUEUE,
                            help="finished batches a background thread may hold while it writes their media and "
                                 "parts (0: write each batch before generating the next)")
        # one output folder: the model's is --output_dir (set in before_instantiate_classes), never a second option
        parser.link_arguments("output_dir", "model.output_dir")

    def before_instantiate_classes(self) -> None:
        out = Path(self.config.get("output_dir") or Path("outputs") / self.config_stem)
        if out.exists() and not out.is_dir():
            raise UserError(f"--output_dir {out} is a file, not a folder")
        self.config["output_dir"] = str(out)
        self.config["model"]["output_dir"] = str(out)

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        trainer = super().instantiate_trainer(**kwargs)
        check_cpu_ranks(trainer, allow_more=bool(self.config.get("oversubscribe")))
        if self.writes_results:
            self._attach_writers(trainer)
        return trainer

    def _attach_writers(self, trainer: Any) -> None:
        """The Parquet writer, the graceful stop and (with ``--trainer.logger``) the experiment trackers."""
        from .stopping import GracefulStop
        from .writer import ParquetPartWriter

        self.part_writer = ParquetPartWriter(self.config["output_dir"], write_queue=self.config["write_queue"])
        self.stopper = GracefulStop(lambda: self.part_writer.written, trainer)
        trainer.callbacks.extend([self.part_writer, self.stopper.callback()])
        if trainer.loggers:  # batch means, sample images and the summary (tracking.py)
            from .tracking import ExperimentTracking

            trainer.callbacks.append(ExperimentTracking(self.config["output_dir"]))


def build_cli(args: Sequence[str], writes_results: bool = True, command: str = "predict") -> ZetaCLI:
    """Parse ``args`` (``--config`` files, overlays, dotted overrides, which take a config file's short forms) and
    build the experiment; a mistake in them is a :class:`UserError` (one line)."""
    from jsonargparse import ArgumentError

    zconfig.register_loader()
    args = zconfig.reset_list_overrides(zconfig.expand_override_args(flags.normalize(args, SWITCHES)))
    for arg in args:
        if arg.split("=", 1)[0] in ("--model.output_dir", "--model.init_args.output_dir"):
            raise UserError(f"{arg.split('=', 1)[0]} is not an option: the output folder is --output_dir (default "
                            "outputs/<first config file's stem>)")
    try:
        return ZetaCLI(args, writes_results=writes_results, command=command)
    except ArgumentError as err:
        raise UserError(user_message(err)) from err


def run_predict(cli: ZetaCLI) -> None:
    """Guard the output folder, generate and score every sample not yet written, then the summary and the report.
    A write that the file system refuses is a :class:`UserError`; the shard lock is released however it ends."""
    out, prepared = cli.config["output_dir"], None
    cli.stopper.install()
    try:
        prepared = prepare_output_dir(cli, force=bool(cli.config.get("force")))
        cli.part_writer.before_first_part = prepared.write_record
        # rows go to Parquet parts; keeping them in memory too would grow with the benchmark
        cli.trainer.predict(cli.model, datamodule=cli.datamodule, return_predictions=False)
        finish_after_predict(cli, write_report=bool(cli.config.get("report", True)))
    except OSError as err:
        message = filesystem_fault(err, out)
        if message is None:
            raise
        raise UserError(message) from err
    finally:
        cli.stopper.uninstall()
        if prepared is not None:
            prepared.release()


def predict(args: Sequence[str]) -> None:
    run_predict(build_cli(args))


def validate(args: Sequence[str], check_files: bool = True) -> None:
    """Print the plan of the experiment; with ``check_files``, also whether the model, prompts and scorer weights
    are on this machine (:func:`prepare.report_missing`: one line each, a report rather than an error)."""
    cli = build_cli(args, writes_results=False, command="validate")
    print_plan(cli)
    if check_files:
        from .prepare import report_missing

        report_missing(cli, zconfig.first_config(args) or "X.yaml")


def check_cpu_ranks(trainer: Any, allow_more: bool = False) -> None:
    """More CPU processes than cores only slow every one of them down (each holds its own model copy and threads)."""
    from lightning.pytorch.accelerators import CPUAccelerator

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if isinstance(trainer.accelerator, CPUAccelerator) and trainer.num_devices > cores and not allow_more:
        raise UserError(f"--trainer.devices {trainer.num_devices} starts {trainer.num_devices} CPU processes but this "
                        f"machine has {cores} cores; use at most {cores}, or add --oversubscribe true to start them "
                        "anyway")
