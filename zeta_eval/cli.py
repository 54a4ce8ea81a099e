"""``python -m zeta_eval {predict,validate,prepare,report,plan,score,slurm,configs} ...``: a thin front that
dispatches each command.

``predict`` and ``validate`` build the experiment with LightningCLI (:mod:`.lightning_cli`), and so does ``prepare``
(:mod:`.prepare`) before it fetches what the experiment needs; ``report``, ``plan``, ``score`` and ``slurm`` are
argparse tools over an output folder or config, in the one option style of :mod:`.flags`; ``configs`` lists the
configs a bare name finds. Every error a user can cause ends here as one line on stderr and exit code 2
(:mod:`.errors`).
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
from typing import Sequence

from .config import check_config_files, resolve_config_args
from .errors import UserError, filesystem_fault, user_message
from .stopping import StopRequested, requested, stop_on_signals

USAGE = """usage: python -m zeta_eval <command> [options]

commands:
  predict   run an experiment:  predict --config X.yaml [--config overlay.yaml] [--output_dir DIR] [--force]
            [dotted overrides, e.g. --model.steps 20 --data.init_args.limit 8 --trainer.devices 2]
  validate  build an experiment without loading weights and print its plan:  validate --config X.yaml
  report    merge the parts of an output folder into samples.parquet, summary.md/.csv and plots:  report OUT_DIR
  plan      prompts x seeds a comparison needs, from a pilot folder:  plan OUT_DIR [--a A --b B] [--metric M]
            [--half_width H] [--delta D]
  score     add metric columns to a finished run:  score OUT_DIR --metrics hpsv2 pickscore
  slurm     write (and submit) an sbatch array job for a config:  slurm --config X.yaml --array K --gpus G
  prepare   download what a config needs (model, prompts, scorer weights) for offline runs:  prepare --config X.yaml
  configs   list the configs a bare name (--config sdxl_drawbench.yaml) finds, from any folder

Options are written --output_dir (--output-dir works too); on/off options work bare (--force) or with a value
(--force true, --force false).

run `python -m zeta_eval <command> --help` for a command's options.
"""

log = logging.getLogger("zeta_eval")


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
    """Run one command; its exit code. Each call runs in a copy of the current context, so the parser state that
    jsonargparse keeps in context variables never leaks from one call into the next (tests and notebooks call
    ``main`` many times in one process)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return contextvars.copy_context().run(_main, argv)


def _main(argv: list[str]) -> int:
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


def _experiment(command: str, rest: list[str]) -> int:
    """``predict`` / ``validate``: config names resolved and checked before LightningCLI sees them."""
    from . import flags, lightning_cli

    rest = resolve_config_args(flags.normalize(rest, lightning_cli.SWITCHES))
    check_config_files(rest, require_adapter=not any(a in ("-h", "--help") for a in rest))
    getattr(lightning_cli, command)(rest)
    return 0


def _configs(command: str, rest: list[str]) -> int:
    """``configs``: every config a bare name resolves to, experiments first, with its one-line description."""
    from .config import config_folders, list_configs
    from .flags import Parser

    Parser(prog="python -m zeta_eval configs", description=_configs.__doc__).parse_args(rest)
    entries = list_configs()
    width = max((len(e.name) for e in entries), default=0)
    for overlay in (False, True):
        group = [e for e in entries if e.overlay == overlay]
        if group:
            print("overlays (give after an experiment config):" if overlay else "experiments:")
            for e in group:
                print(f"  {e.name:{width}s}  {e.description}")
    print(f"from {', '.join(str(f) for f in config_folders())}; use one with --config NAME.yaml from any folder")
    return 0


def _prepare(command: str, rest: list[str]) -> int:
    """``prepare``: :mod:`.prepare` with the experiment built as ``validate`` builds it."""
    from . import flags, lightning_cli, prepare

    return prepare.main(flags.normalize(rest, lightning_cli.SWITCHES), build=lightning_cli.build_cli)


def _tool(command: str, rest: list[str]) -> int:
    """``report`` / ``plan`` / ``score`` / ``slurm``: each module's own argparse ``main`` (imported only when used)."""
    import importlib

    module = {"report": ".report", "plan": ".plan", "score": ".scoring", "slurm": ".slurm"}[command]
    return importlib.import_module(module, __package__).main(rest)


#: every command and what runs it
COMMANDS = {"predict": _experiment, "validate": _experiment, "report": _tool, "plan": _tool, "score": _tool,
            "slurm": _tool, "prepare": _prepare, "configs": _configs}


def _dispatch(command: str, rest: list[str]) -> int:
    if command not in COMMANDS:
        print(f"zeta_eval: error: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[command](command, rest)
    except SystemExit as exit_:  # argparse --help (0) or an argparse error already printed (2)
        return int(exit_.code or 0)
    except Exception as err:  # noqa: BLE001 - the user-facing failures become one line; anything else is a bug
        stop = requested()
        if stop is not None:  # a stop signal broke something on its way (e.g. an import): the stop is the story
            raise stop from err
        message = _one_line_for(err, rest, in_place=command in ("report", "score"))
        if message is None or os.environ.get("ZETA_EVAL_DEBUG"):
            raise
        print(f"zeta_eval {command}: error: {message}", file=sys.stderr)
        return 2


def _one_line_for(err: Exception, rest: list[str], in_place: bool = False) -> str | None:
    """The one line for an error a user can cause or fix (a mistake in the command, config or folder, a refused
    write, a model that does not load), or None for a bug (its traceback is shown)."""
    if isinstance(err, (UserError, ValueError, FileNotFoundError, ConnectionError)):
        return user_message(err)
    if isinstance(err, OSError):  # a full disk, a read-only folder, ...: the machine's state, not a bug
        return filesystem_fault(err, _folder_argument(rest), in_place=in_place)
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from .adapters.base import ModelLoadError

    return user_message(err) if isinstance(err, (MisconfigurationException, ModelLoadError)) else None
