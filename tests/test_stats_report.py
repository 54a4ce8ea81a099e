"""The report's tables with several samples per prompt (issue 20): intervals clustered by prompt in summary.csv and
summary.md, prompt counts beside sample counts, Holm's marks and verdicts, minimum detectable effects, and
per-category tables marked exploratory."""

from __future__ import annotations

import csv
import datetime as dt
import json

import numpy as np
import pytest
from scipy import stats as st

from rows import full_row
from test_pipeline import run
from zeta_eval.parts import write_part

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
PROMPTS, SEEDS = 12, 3


def study(tmp_path, effects: dict[str, float], seed: int = 0):
    """A run by hand: settings x 12 prompts (two texts differ only in case and spacing, one prompt per category
    pair) x 3 seeds; a setting's score = prompt difficulty + its effect + noise. Returns the folder and scores."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 1.0, PROMPTS)
    scores = {}
    rows = []
    for index, (label, effect) in enumerate(effects.items()):
        name = "standard" if index == 0 else "zeta"
        values = difficulty[:, None] + effect + rng.normal(0, 0.3, (PROMPTS, SEEDS))
        scores[label] = values
        for p in range(PROMPTS):
            for s in range(SEEDS):
                text = f"prompt {p}" if p != 1 else ["Prompt  0", "prompt 0 ", "PROMPT 0"][s]  # = prompt 0
                rows.append(full_row(
                    sample_id=f"{label}-{p}-{s}", prompt_set="s", prompt_id=f"{p}-{s}" if p == 1 else str(p),
                    prompt=text, seed=100 + s, sample_index=0, model="m", steps=10, gamma1=5.5, gamma2=None,
                    gamma_eff=5.5, nfe=20, seconds=0.5, metadata="{}", media_path=None, sampler_params="{}",
                    sampler=name, sampler_label=label, sampler_key=f"{name}-{index}", sampler_index=index,
                    category="a" if p < 6 else "b", created_at=NOW, metric_conventions=json.dumps({"score": {}}),
                    score=float(values[p, s])))
    out = tmp_path / "run"
    write_part(rows, out, "part-0")
    assert run("report", out) == 0
    return out, scores


def summary(out) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv") as f:
        return {row["sampler_label"]: row for row in csv.DictReader(f)}


def t_half(x: np.ndarray) -> float:
    return st.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))


def test_summary_intervals_are_clustered_by_prompt_text(tmp_path):
    out, scores = study(tmp_path, {"base": 0.0, "better": 0.5, "same": 0.0})
    rows = summary(out)
    # 12 prompt ids but 11 distinct texts: prompt 1's items repeat prompt 0 (case and spacing aside)
    assert rows["base"]["n"] == "36" and rows["base"]["n_prompts"] == "11" and rows["base"]["score_n_prompts"] == "11"
    base = scores["base"]
    # prompt 0 has 6 samples, the others 3: unequal sizes, so the CR2 variance with Bell-McCaffrey df
    sizes = np.array([6] + [3] * 10, dtype=float)
    totals = np.array([base[:2].sum() - 6 * base.mean()] + [base[p].sum() - 3 * base.mean() for p in range(2, 12)])
    var = np.sum(totals ** 2 / (1 - sizes / 36)) / 36 ** 2
    k = np.diag(sizes) - np.outer(sizes, sizes) / 36
    w = 1 / (1 - sizes / 36)
    df = np.sum(w * np.diag(k)) ** 2 / (w @ k ** 2 @ w)
    assert 9 < df < 10  # fewer than G - 1 = 10
    half = st.t.ppf(0.975, df) * np.sqrt(var)
    assert float(rows["base"]["score_mean"]) == pytest.approx(base.mean())
    assert (float(rows["base"]["score_lo"]), float(rows["base"]["score_hi"])) == pytest.approx(
        (base.mean() - half, base.mean() + half), rel=1e-9)
    # wider than the interval that takes the 36 samples as independent
    assert 2 * half > 2 * t_half(base.reshape(-1)) * 1.5
    d = scores["better"] - base
    assert float(rows["better"]["score_pairs"]) == 36 and rows["better"]["score_pair_prompts"] == "11"
    assert float(rows["better"]["score_delta"]) == pytest.approx(d.mean())
    assert float(rows["better"]["score_delta_hi"]) - float(rows["better"]["score_delta_lo"]) > 2 * t_half(d.reshape(-1))


def test_holm_marks_verdicts_and_minimum_detectable_effects(tmp_path):
    out, scores = study(tmp_path, {"base": 0.0, "better": 0.6, "same": 0.0, "worse": -0.6}, seed=3)
    rows = summary(out)
    p = {label: float(rows[label]["score_delta_p"]) for label in ("better", "same", "worse")}
    order = sorted(p, key=p.get)
    expected = np.maximum.accumulate([3 * p[order[0]], 2 * p[order[1]], p[order[2]]])
    for label, value in zip(order, expected):
        assert float(rows[label]["score_delta_p_holm"]) == pytest.approx(min(1.0, value))
        assert rows[label]["score_delta_holm"] == str(min(1.0, value) <= 0.05)
    assert rows["better"]["score_delta_holm"] == "True" and rows["worse"]["score_delta_holm"] == "True"
    assert rows["same"]["score_delta_holm"] == "False"
    half = float(rows["better"]["score_delta_hi"]) - float(rows["better"]["score_delta"])
    assert 1.3 < float(rows["better"]["score_delta_mde"]) / half < 1.5  # (t.975 + t.80) / t.975, ~10 df
    md = (out / "summary.md").read_text()
    assert "| sampler | n samples | n prompts |" in md and "| base | 36 | 11 |" in md
    assert "144 samples of 11 distinct prompts from 4 sampler settings" in md
    assert "| better | 36 (11) |" in md  # pairs (prompts)
    assert "†" in md.split("## Paired difference")[1].split("| same")[0]
    assert "**Verdicts** (Holm, 3 comparisons):" in md
    verdicts = md.split("**Verdicts**")[1].split("##")[0]
    assert "better than base: better on score" in verdicts and "worse than base: worse on score" in verdicts
    assert "same on score" not in verdicts and "the other difference is not shown to differ" in verdicts
    assert "Minimum detectable effect" in md and "| MDE score |" in md
    category = md.split("## score per category")[1]
    assert category.lstrip().startswith("Exploratory") and "(n=18, 5 prompts)" in category


def test_one_sample_per_prompt_keeps_the_classic_intervals(tmp_path):
    """Regression: with one sample per distinct prompt the report's numbers are the independent ones."""
    from zeta_eval.results import mean_ci, paired_difference, win_rate

    rng = np.random.default_rng(5)
    a, b = rng.normal(size=20), rng.normal(size=20)
    rows = []
    for index, (label, values) in enumerate({"base": b, "ours": a}.items()):
        name = "standard" if index == 0 else "zeta"
        for k, v in enumerate(values):
            rows.append(full_row(sample_id=f"{label}-{k}", prompt_set="s", prompt_id=str(k), prompt=f"p{k}", seed=k,
                             sample_index=0, model="m", steps=10, gamma1=5.5, gamma2=None, gamma_eff=5.5, nfe=20,
                             seconds=0.5, metadata="{}", media_path=None, sampler_params="{}", sampler=name,
                             sampler_label=label, sampler_key=f"{name}-{index}", sampler_index=index, category=None,
                             created_at=NOW, metric_conventions=json.dumps({"score": {}}), score=float(v)))
    write_part(rows, tmp_path / "r", "part-0")
    assert run("report", tmp_path / "r") == 0
    ours = summary(tmp_path / "r")["ours"]
    assert [float(ours[k]) for k in ("score_mean", "score_lo", "score_hi")] == pytest.approx(mean_ci(a)[:3], rel=1e-12)
    assert [float(ours[k]) for k in ("score_delta", "score_delta_lo", "score_delta_hi")] == pytest.approx(
        paired_difference(a, b)[:3], rel=1e-12)
    assert [float(ours[k]) for k in ("score_winrate", "score_winrate_lo", "score_winrate_hi")] == pytest.approx(
        win_rate(a, b)[:3], rel=1e-12)
    half = st.t.ppf(0.975, 19) * a.std(ddof=1) / np.sqrt(20)
    assert float(ours["score_hi"]) == pytest.approx(a.mean() + half, rel=1e-12)
    assert ours["score_n_prompts"] == "20"


def test_a_category_of_one_prompt_is_counted_in_the_singular(tmp_path):
    rows = [full_row(sample_id=f"{label}-{k}", prompt_id=str(k), prompt=f"p{k}", seed=k, sampler=name,
                     sampler_label=label, sampler_key=f"{name}-{index}", sampler_index=index,
                     category="solo" if k == 0 else "rest", created_at=NOW,
                     metric_conventions=json.dumps({"score": {}}), score=float(k + index))
            for index, (label, name) in enumerate([("base", "standard"), ("ours", "zeta")]) for k in range(3)]
    write_part(rows, tmp_path / "r", "part-0")
    assert run("report", tmp_path / "r") == 0
    category = (tmp_path / "r" / "summary.md").read_text().split("## score per category")[1].split("\n## ")[0]
    assert "(n=1, 1 prompt)" in category and "(n=2, 2 prompts)" in category, category
    assert "1 prompts" not in category


def test_a_folder_with_only_samples_parquet_is_reported_again(tmp_path, capsys):
    """A committed study keeps samples.parquet, not parts/: report and plan read it, and the numbers are the same."""
    import shutil

    out, _ = study(tmp_path, {"base": 0.0, "better": 0.5})
    before = (out / "summary.csv").read_text()
    shutil.rmtree(out / "parts")
    (out / "summary.csv").unlink()
    assert run("report", out) == 0
    assert (out / "summary.csv").read_text() == before
    assert run("plan", out, "--a", "better", "--b", "base") == 0
    assert "36 pairs of 11 prompts" in capsys.readouterr().out
    (out / "samples.parquet").write_bytes(b"not parquet")
    assert run("report", out) == 2
    assert "has no parts/ and its samples.parquet cannot be read" in capsys.readouterr().err


def test_no_grid_is_drawn_when_no_image_is_in_the_folder(tmp_path):
    """Rows name media that are not in the folder (a study committed without its images): grid.png is not drawn
    (an existing one is left as it is) rather than replaced by empty cells."""
    rows = []
    for index, label in enumerate(("base", "ours")):
        name = "standard" if index == 0 else "zeta"
        for k in range(3):
            rows.append(full_row(sample_id=f"{label}-{k}", prompt_set="s", prompt_id=str(k), prompt=f"p{k}", seed=k,
                             sample_index=0, model="m", steps=10, gamma1=5.5, gamma2=None, gamma_eff=5.5, nfe=20,
                             seconds=0.5, metadata="{}", media_path=f"media/{label}-{k}.png", sampler_params="{}",
                             sampler=name, sampler_label=label, sampler_key=f"{name}-{index}", sampler_index=index,
                             category=None, created_at=NOW, metric_conventions=json.dumps({"score": {}}),
                             score=float(k)))
    out = tmp_path / "r"
    write_part(rows, out, "part-0")
    (out / "grid.png").write_bytes(b"the committed grid")
    assert run("report", out) == 0
    assert (out / "grid.png").read_bytes() == b"the committed grid"
