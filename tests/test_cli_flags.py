"""One command-line style (issue 23, item 8): every on/off option works bare and with true/false, every option with
underscores and with hyphens, and the documents use one spelling (underscores)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from zeta_eval import flags
from zeta_eval.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(*args) -> int:
    return main([str(a) for a in args])


@pytest.mark.parametrize("args, expected", [
    (["--force"], ["--force=true"]),
    (["--force", "true"], ["--force=true"]),
    (["--force", "False"], ["--force=false"]),
    (["--force=no"], ["--force=false"]),
    (["--force", "--output-dir", "x"], ["--force=true", "--output_dir", "x"]),
    (["--dry-run", "out/run"], ["--dry_run=true", "out/run"]),  # a positional after a bare switch stays one
    (["--force=maybe"], ["--force=maybe"]),  # left for the parser to refuse
    (["--model.init-args.some-key", "-1"], ["--model.init_args.some_key", "-1"]),
    (["--set", "a.b-c=--d-e"], ["--set", "a.b-c=--d-e"]),  # values are never touched
    (["--", "--force", "--a-b"], ["--", "--force", "--a-b"]),
])
def test_normalize(args, expected):
    assert flags.normalize(args, {"--force", "--dry_run"}) == expected


def test_parser_switches_and_both_spellings():
    parser = flags.Parser(prog="x")
    parser.add_argument("folder")
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_switch("--skip_corrupt")
    parser.add_switch("--report", default=True)
    assert vars(parser.parse_args(["f"])) == {"folder": "f", "batch_size": 1, "skip_corrupt": False, "report": True}
    assert vars(parser.parse_args(["--skip-corrupt", "f", "--batch-size", "3", "--report", "false"])) == \
        {"folder": "f", "batch_size": 3, "skip_corrupt": True, "report": False}
    assert parser.parse_args(["f", "--skip_corrupt", "no"]).skip_corrupt is False
    with pytest.raises(SystemExit):
        parser.parse_args(["f", "--skip_corrupt=maybe"])


def _one_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_predict_switches_work_bare_and_with_a_value(tmp_path, capsys):
    """--oversubscribe bare lets too many CPU processes through, --oversubscribe false refuses them, --output-dir is
    --output_dir; --force works bare (the issue's "expected one argument")."""
    smoke = ["validate", "--config", "shapebench_smoke.yaml", "--trainer.accelerator", "cpu",
             "--trainer.devices", str(len(os.sched_getaffinity(0)) + 1), "--trainer.strategy", "ddp"]
    capsys.readouterr()
    assert run(*smoke, "--output-dir", tmp_path / "a", "--oversubscribe") == 0
    assert str(tmp_path / "a") in capsys.readouterr().out
    assert run(*smoke, "--output_dir", tmp_path / "a", "--oversubscribe", "false") == 2
    assert "--oversubscribe true" in _one_error(capsys)
    assert run(*smoke, "--oversubscribe", "true", "--force", "--report=false", "--write-queue", "0") == 0
    assert run(*smoke, "--oversubscribe=maybe") == 2
    assert "oversubscribe" in _one_error(capsys)


def test_report_and_score_options_in_both_spellings(monkeypatch):
    from zeta_eval import report, scoring

    calls = []
    monkeypatch.setattr(report, "write_report", lambda out, **kw: calls.append(("report", out, kw)) or {})
    monkeypatch.setattr(scoring, "score_run", lambda *a: calls.append(("score", *a)) or {})
    assert run("report", "out", "--skip-corrupt", "--require_complete", "false") == 0
    assert calls.pop() == ("report", "out", {"skip_corrupt": True, "baseline": None, "require_complete": False,
                                             "pareto_cost": "nfe"})
    assert run("report", "--skip_corrupt", "out", "--require-complete") == 0
    assert calls.pop() == ("report", "out", {"skip_corrupt": True, "baseline": None, "require_complete": True,
                                             "pareto_cost": "nfe"})
    assert run("score", "out", "--metrics", "clip_score", "--batch-size", "3", "--rescore", "--no-report",
               "--device", "cpu") == 0
    assert calls == [("score", "out", ["clip_score"], {}, "cpu", 3, True, False)]
    calls.clear()
    assert run("score", "out", "--metrics", "clip_score", "--batch_size", "2", "--skip_corrupt", "true",
               "--report", "--device", "cpu") == 0
    assert calls.pop(0) == ("score", "out", ["clip_score"], {}, "cpu", 2, False, True)
    assert calls == [("report", "out", {"skip_corrupt": True})]  # the report is rewritten afterwards
    calls.clear()
    assert run("score", "out", "--metrics", "clip_score", "--report", "false", "--device", "cpu") == 0
    assert [c[0] for c in calls] == ["score"]


def test_slurm_options_in_both_spellings(capsys):
    base = ["slurm", "--config", "shapebench_smoke.yaml", "--array", "2", "--gpus", "0"]
    capsys.readouterr()
    assert run(*base, "--dry-run", "--cpus-per-task", "3", "--no_slurm_overlay", "false") == 0
    out = capsys.readouterr().out
    assert "--cpus-per-task=3" in out and "slurm.yaml" in out
    assert run(*base, "--dry_run", "true", "--cpus_per_task", "5", "--no-slurm-overlay") == 0
    out = capsys.readouterr().out
    assert "--cpus-per-task=5" in out and "slurm.yaml" not in out


def test_documents_and_messages_spell_options_with_underscores():
    """No option of a zeta_eval command (the ``add_argument``/``add_switch`` calls of zeta_eval) is written with
    hyphens in the README, docs, slurm scripts, configs or messages (sbatch's own options, such as
    ``#SBATCH --cpus-per-task``, are sbatch's)."""
    sources = [p.read_text(encoding="utf-8") for p in ROOT.glob("zeta_eval/**/*.py")]
    ours = {o for text in sources for o in re.findall(r'add_(?:argument|switch)\("(--[a-z0-9_]+)"', text)}
    hyphenated = {o.replace("_", "-") for o in ours if "_" in o}
    assert {"--skip-corrupt", "--dry-run", "--batch-size", "--output-dir"} <= hyphenated
    files = [ROOT / "README.md", *ROOT.glob("docs/**/*.md"), ROOT / "datamodules" / "README.md",
             *ROOT.glob("slurm/*"), *ROOT.glob("zeta_eval/**/*.py"), *ROOT.glob("zeta_eval/configs/*.yaml"),
             ROOT / "Makefile"]
    found = []
    for path in files:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "#SBATCH" in line or re.search(r"\bsbatch --", line):
                continue
            for option in re.findall(r"--[a-z][a-z0-9-]*[a-z0-9]", line):
                if option in hyphenated and "--" + option[2:].replace("-", "_") not in line:  # both: the equivalence
                    found.append(f"{path.relative_to(ROOT)}:{n}: {option}")
    assert not found, "\n".join(found)


def test_every_command_parser_is_in_the_one_style():
    """A new command keeps the style: its parser is :class:`zeta_eval.flags.Parser` (switches, both spellings),
    never a plain argparse parser with store_true flags."""
    plain = []
    for path in sorted(ROOT.glob("zeta_eval/**/*.py")):
        if path.name == "flags.py":
            continue
        text = path.read_text(encoding="utf-8")
        for needle in ("argparse.ArgumentParser(", 'action="store_true"', "action='store_true'", "type=bool,"):
            if needle in text:
                plain.append(f"{path.relative_to(ROOT)}: {needle}")
    assert not plain, plain
