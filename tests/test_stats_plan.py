"""The sample-size planner (issue 20): its formula, Var = (s_b^2 + s_w^2 / m) / G, against simulation; the variance
components it estimates from a pilot; and ``python -m zeta_eval plan`` (its output and its one-line errors)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from test_pipeline import run
from test_stats_report import study
from zeta_eval import stats

REPLICATES = 2000


def simulate(prompts: int, seeds: np.ndarray | int, between: float, within: float, mean: float = 0.0,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Replicates x samples of paired differences: mean + prompt effect (var s_b^2) + seed noise (var s_w^2)."""
    sizes = np.full(prompts, seeds) if np.isscalar(seeds) else np.asarray(seeds)
    g = np.repeat(np.arange(prompts), sizes)
    rng = np.random.default_rng(seed)
    effect = rng.normal(0.0, math.sqrt(between), (REPLICATES, prompts))
    return mean + effect[:, g] + rng.normal(0.0, math.sqrt(within), (REPLICATES, len(g))), g


@pytest.mark.parametrize("prompts, seeds, between, within", [(40, 3, 0.25, 2.25), (120, 1, 1.0, 0.0),
                                                             (30, 8, 0.04, 4.0)])
def test_the_formula_predicts_the_spread_and_the_half_width(prompts, seeds, between, within):
    d, g = simulate(prompts, seeds, between, within)
    mean, lo, hi = stats.clustered_t_rows(d, g)
    assert mean.var(ddof=1) == pytest.approx(stats.design_variance(between, within, prompts, seeds), rel=0.08)
    # the expected half-width: t * E[se], E[se] a little under sqrt(Var) (Jensen); within 3%
    assert np.mean((hi - lo) / 2) == pytest.approx(stats.half_width(between, within, prompts, seeds), rel=0.03)


def test_the_planned_prompts_give_the_planned_half_width_and_power():
    between, within, seeds = 0.3, 2.0, 4
    g = stats.prompts_for_half_width(between, within, seeds, 0.25)
    assert stats.half_width(between, within, g, seeds) <= 0.25 < stats.half_width(between, within, g - 1, seeds)
    d, codes = simulate(g, seeds, between, within, seed=1)
    _, lo, hi = stats.clustered_t_rows(d, codes)
    assert np.median((hi - lo) / 2) == pytest.approx(0.25, rel=0.04)
    # power: the planned G detects delta in ~80% of studies (two-sided 5%); half as many prompts clearly less
    delta = 0.4
    g = stats.prompts_for_power(between, within, seeds, delta)
    d, codes = simulate(g, seeds, between, within, mean=delta, seed=2)
    _, lo, hi = stats.clustered_t_rows(d, codes)
    assert np.mean(lo > 0) == pytest.approx(0.80, abs=0.03)
    d, codes = simulate(g // 2, seeds, between, within, mean=delta, seed=3)
    _, lo, _ = stats.clustered_t_rows(d, codes)
    assert np.mean(lo > 0) < 0.6
    # the MDE of a design is the delta its G was planned for
    se = math.sqrt(stats.design_variance(between, within, g, seeds))
    assert stats.minimum_detectable_effect(se, g) <= delta < stats.minimum_detectable_effect(
        math.sqrt(stats.design_variance(between, within, g - 1, seeds)), g - 1)


def test_variance_components_are_unbiased_for_unequal_prompt_sizes():
    sizes = np.random.default_rng(4).choice([1, 2, 4, 12, 40], size=60)
    d, g = simulate(60, sizes, 0.5, 3.0, seed=5)
    comps = [stats.variance_components(row, g) for row in d[:400]]
    assert np.mean([c.between for c in comps]) == pytest.approx(0.5, rel=0.1)
    assert np.mean([c.within for c in comps]) == pytest.approx(3.0, rel=0.02)
    # the model's standard error for the pilot's own unequal design matches the spread of the mean
    mean, _, _ = stats.clustered_t_rows(d, g)
    assert np.mean([c.model_se for c in comps]) == pytest.approx(mean.std(ddof=1), rel=0.08)
    one = stats.variance_components(np.array([1.0, 2.0, 4.0]), ["a", "b", "c"])  # one sample per prompt
    assert one.between == pytest.approx(np.var([1, 2, 4], ddof=1)) and math.isnan(one.within)


def test_plan_command_prints_the_design_and_its_targets(tmp_path, capsys):
    out, scores = study(tmp_path, {"base": 0.0, "better": 0.5})
    capsys.readouterr()
    assert run("plan", out, "--a", "better", "--b", "base", "--half-width", "0.1", "--delta", "0.2") == 0
    text = capsys.readouterr().out
    d = (scores["better"] - scores["base"])
    clusters = ["0"] * 6 + [str(p) for p in range(2, 12) for _ in range(3)]  # prompts 0 and 1 share a text
    comp = stats.variance_components(np.concatenate([d[:2].reshape(-1), d[2:].reshape(-1)]), clusters)
    assert "## score: better − base" in text and "36 pairs of 11 prompts (3.27 per prompt)" in text
    assert f"s_b = {math.sqrt(comp.between):.3g} (between prompts), s_w = {math.sqrt(comp.within):.3g}" in text
    need = stats.prompts_for_half_width(comp.between, comp.within, 4, 0.1)
    detect = stats.prompts_for_power(comp.between, comp.within, 4, 0.2)
    hw = stats.half_width(comp.between, comp.within, 11, 4)
    assert f"| 4 | ±{hw:.3g} |" in text and text.split("| 4 | ")[1].split("\n")[0].endswith(f"| {need:,} | {detect:,} |")
    assert "| 3.3 (pilot) |" in text
    assert run("plan", out) == 0 and "## score: better − base" in capsys.readouterr().out  # against the baseline


@pytest.mark.parametrize("args, message", [
    (["--half-width", "0"], "--half_width must be a positive number, got 0"),
    (["--delta", "-1"], "--delta must be a positive number, got -1"),
    (["--a", "better"], "--a and --b go together (the two settings of one comparison)"),
    (["--a", "better", "--b", "nope"], "--b 'nope' is not a sampler setting of this folder; settings: base, better"),
    (["--metric", "clip"], "--metric 'clip' is not a metric of this folder; metrics: score"),
])
def test_plan_command_errors_are_one_line(tmp_path, capsys, args, message):
    out, _ = study(tmp_path, {"base": 0.0, "better": 0.5})
    capsys.readouterr()
    assert run("plan", out, *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"zeta_eval plan: error: {message}"]


def test_plan_refuses_a_sampler_name_that_several_settings_share(tmp_path, capsys):
    """``--a zeta`` where two settings are zeta samplers named neither of them: the first was taken in silence."""
    out, _ = study(tmp_path, {"base": 0.0, "better": 0.5, "other": 0.2})
    capsys.readouterr()
    assert run("plan", out, "--a", "zeta", "--b", "base") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["zeta_eval plan: error: --a 'zeta' names 2 sampler settings of this folder (better, other): "
                   "give a label or key"]
    assert run("plan", out, "--a", "other", "--b", "standard") == 0  # one standard setting: its name is enough
    assert "## score: other − base" in capsys.readouterr().out


def test_plan_command_on_a_missing_folder(tmp_path, capsys):
    assert run("plan", tmp_path / "nothing") == 2
    assert "does not exist" in capsys.readouterr().err
