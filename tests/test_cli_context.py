"""``zeta_eval.cli.main`` called several times in one process (tests, notebooks) starts from a clean parser state.

jsonargparse keeps parser state in context variables (the subclass parser, dump and parse settings); a call of
``main`` must not leave them set for the next one.
"""

import contextvars

from test_faults import write_experiment
from zeta_eval.cli import main


def _context() -> dict:
    ctx = contextvars.copy_context()
    return {var: ctx[var] for var in ctx}


def test_main_twice_leaves_no_parser_state_behind(tmp_path, capsys):
    cfg = write_experiment(tmp_path)
    before = _context()
    assert main(["validate", "--config", str(cfg), "--output_dir", str(tmp_path / "out")]) == 0
    after_first = _context()
    assert main(["validate", "--config", str(cfg), "--model.steps", "0"]) == 2  # a failing parse
    after_second = _context()
    leaked = {var.name for state in (after_first, after_second) for var in state
              if var not in before or state[var] is not before[var]}
    assert not leaked, f"main left context variables set: {sorted(leaked)}"
    err = capsys.readouterr().err
    assert "model.steps must be a positive integer" in err  # the second call parsed its own arguments
    assert "Traceback" not in err


def test_a_config_yaml_of_an_earlier_version_still_configures_a_rerun(tmp_path, capsys):
    """Before zeta_eval called ``trainer.predict`` itself, config.yaml also held the arguments of LightningCLI's
    predict subcommand (always at these values): such a file is still accepted; any other value is refused."""
    import yaml

    cfg = yaml.safe_load(write_experiment(tmp_path).read_text())
    old = tmp_path / "config.yaml"
    old.write_text(yaml.safe_dump({**cfg, "return_predictions": False, "ckpt_path": None, "weights_only": None}))
    assert main(["validate", "--config", str(old), "--output_dir", str(tmp_path / "out")]) == 0
    assert "samplers:" in capsys.readouterr().out
    old.write_text(yaml.safe_dump({**cfg, "ckpt_path": "/weights/last.ckpt"}))
    assert main(["validate", "--config", str(old)]) == 2
    err = capsys.readouterr().err
    assert "ckpt_path" in err and "not supported" in err and "Traceback" not in err
