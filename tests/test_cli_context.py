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
