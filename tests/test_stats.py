"""zeta_eval.stats: clustered intervals reduce to the classic ones with one sample per prompt, widen with repeated
measures, Holm's adjustment, and the planner's formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from zeta_eval import stats
from zeta_eval.results import mean_ci, paired_difference, wilson, win_rate


def test_one_sample_per_prompt_gives_the_classic_intervals_exactly():
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    half = st.t.ppf(0.975, 49) * x.std(ddof=1) / math.sqrt(50)
    singletons = [f"p{i}" for i in range(50)]
    for clusters in (None, singletons):
        est = stats.mean_interval(x, clusters)
        assert est.interval == pytest.approx((x.mean(), x.mean() - half, x.mean() + half, 50), rel=1e-12)
        assert (est.n, est.n_clusters, est.df) == (50, 50, 49)
    b = (rng.random(40) < 0.3).astype(float)
    assert stats.mean_interval(b, [f"p{i}" for i in range(40)]).interval == (b.mean(), *wilson(b.mean(), 40), 40)
    y = rng.normal(size=50)
    assert stats.paired_difference(x, y, singletons).interval == paired_difference(x, y)
    assert stats.win_rate(x, y, singletons).interval == win_rate(x, y)


def test_repeated_measures_of_one_prompt_widen_the_interval():
    # 10 prompts x 5 identical seeds: the information of 10 values, not 50
    per_prompt = np.arange(10, dtype=float)
    values = np.repeat(per_prompt, 5)
    clusters = np.repeat([f"p{i}" for i in range(10)], 5)
    est = stats.clustered_t(values, clusters)
    half = st.t.ppf(0.975, 9) * per_prompt.std(ddof=1) / math.sqrt(10)
    assert (est.n, est.n_clusters, est.df) == (50, 10, 9)
    assert (est.lo, est.hi) == pytest.approx((4.5 - half, 4.5 + half), rel=1e-12)
    assert est.hi - est.lo > mean_ci(values)[2] - mean_ci(values)[1]
    # 0/1 scores, perfectly correlated within a prompt: n_eff is the number of prompts
    b = np.repeat([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0], 4)
    est = stats.clustered_wilson(b, np.repeat(list("abcdefgh"), 4))
    assert est.n_eff == pytest.approx(8 * (32 / 31) * (7 / 8), rel=1e-12)  # s^2 / Var with Var = G/(G-1) * ...
    assert est.lo < wilson(b.mean(), 32)[0]


def test_constant_scores_take_one_value_per_prompt():
    est = stats.clustered_wilson(np.ones(12), np.repeat(list("abc"), 4))
    assert (est.estimate, est.hi, est.n_eff) == (1.0, 1.0, 3.0)
    assert est.lo == pytest.approx(wilson(1.0, 3, z=st.t.ppf(0.975, 2))[0])  # t quantile, 2 df


def test_cluster_key_normalises_the_prompt_text_but_keeps_prompt_sets_apart():
    assert stats.cluster_key("s", "A  red\tcube ") == stats.cluster_key("s", "a red cube")
    assert stats.cluster_key("s", "a red cube") != stats.cluster_key("t", "a red cube")
    with pytest.raises(ValueError, match="3 cluster keys for 2 values"):
        stats.clustered_t(np.ones(2), ["a", "b", "c"])


def test_non_finite_values_and_their_clusters_are_left_out():
    est = stats.clustered_t(np.array([1.0, np.nan, 3.0, 5.0]), ["a", "b", "b", "c"])
    assert (est.estimate, est.n, est.n_clusters) == (3.0, 3, 3)
    assert stats.clustered_t(np.array([np.nan]), ["a"]).n == 0
    one = stats.clustered_t(np.array([1.0, 2.0]), ["a", "a"])  # one prompt: no interval
    assert one.estimate == 1.5 and math.isnan(one.lo) and one.n_clusters == 1


def test_paired_difference_p_value_is_the_clustered_t_test():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(30), 3)
    d = rng.normal(0.2, 1.0, size=30)[g] + rng.normal(size=90)
    est = stats.paired_difference(d, np.zeros(90), g)
    means = np.bincount(g, weights=d) / 3  # balanced: the cluster-robust t is the t test of the prompt means
    assert est.p_value == pytest.approx(st.ttest_1samp(means, 0.0).pvalue, rel=1e-9)
    assert est.interval[1:3] == pytest.approx(st.ttest_1samp(means, 0.0).confidence_interval(0.95), rel=1e-9)


def test_holm_matches_the_step_down_definition():
    p = [0.01, 0.04, np.nan, 0.03, 0.005]
    adj = stats.holm(p)
    # sorted 0.005, 0.01, 0.03, 0.04 with k = 4: 0.02, 0.03, 0.06, 0.06 (monotone)
    assert adj[[4, 0, 3, 1]] == pytest.approx([0.02, 0.03, 0.06, 0.06])
    assert math.isnan(adj[2])
    assert stats.holm([0.6, 0.9]).tolist() == [1.0, 1.0]
    assert stats.holm([]).size == 0


def test_a_setting_clusters_by_prompt_text_and_falls_back_to_the_prompt_id():
    from zeta_eval.results import Setting

    rows = {"sample_id": list("abcde"), "prompt_set": ["s", "s", "s", "t", "s"],
            "prompt": ["A cube", "a  cube", None, "a cube", ""], "prompt_id": ["1", "2", "3", "4", "3"]}
    s = Setting(model="m", key="k", label="l", name="standard", index=0, rows=rows)
    c = s.clusters
    assert c[0] == c[1] and c[2] == c[4]  # same text; no text: the same prompt id
    assert len({c[0], c[2], c[3]}) == 3 and s.n_prompts == 3  # another prompt set is another prompt
