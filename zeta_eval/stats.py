"""Statistics of a report, clustered by prompt: means, proportions, paired differences and win rates with 95%
intervals, Holm's correction for many comparisons, and a sample-size planner.

**The unit of analysis is the prompt.** The samples of one prompt (its seeds, its sample indices, and items that
repeat its text) share whatever makes that prompt easy or hard, so they are repeated measures of one unit, not
independent draws. Every function takes ``clusters``, one key per value (:func:`cluster_key`: prompt set and
normalised prompt text); ``None`` treats every value as its own cluster, and then every result equals the classic
independent interval (Student t, Wilson) exactly.

**Method.** The estimate is the plain mean over samples (every sample weighs the same, as before). Its variance is
the cluster-robust (sandwich) variance of that mean with the usual small-sample factor G/(G-1):

    Var = G/(G-1) * sum_g r_g^2 / N^2,    r_g = sum over cluster g of (y_i - mean)

(G clusters, N values). With one value per cluster this is s^2/N, the textbook variance of a mean.

- Continuous means and paired differences: Student t with G - 1 degrees of freedom (the number of clusters, not of
  samples, limits what is known), ``mean +- t * sqrt(Var)``; clipped to the range of 0/1 scores (differences of
  0/1 scores to [-1, 1]).
- 0/1 means and win rates: Wilson's score interval at the effective sample size n_eff = N / deff, where the design
  effect deff = Var / (s^2/N) compares the clustered variance with the variance the same values would have if they
  were independent (s^2: their sample variance). One value per cluster gives deff = 1: plain Wilson. When every
  value is the same (p = 0 or 1) the design effect cannot be estimated, and the interval takes the cautious end,
  n_eff = G (one value per prompt).

Why not a cluster bootstrap: it is random (a seed and a resample count to report), slower on large studies, and
no better calibrated at the cluster counts evaluations have; the sandwich variance is closed-form, deterministic
and reduces exactly to today's intervals for one sample per prompt. Its coverage is checked by simulation in
``tests/test_stats_coverage.py`` (balanced and unbalanced seeds, small and large prompt effects, 0/1 and
continuous scores).

**Many comparisons.** :func:`holm` adjusts the p-values of a family of tests (Holm 1979: controls the family-wise
error at level alpha under any dependence between the tests).

**Planning.** For paired differences, the between-prompt variance s_b^2 (of the prompts' true mean differences)
and the within-prompt variance s_w^2 (seed to seed) give the variance of the mean difference over G prompts with m
seeds each:

    Var = (s_b^2 + s_w^2 / m) / G

(:func:`variance_components` estimates both from a pilot; :func:`half_width`, :func:`prompts_for_half_width`,
:func:`prompts_for_power` and :func:`minimum_detectable_effect` turn them into a design.)

This module depends on numpy and scipy only.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats as _st

#: the two-sided 95% normal quantile
Z95 = 1.959963984540054
#: an interval: (estimate, lo, hi, n)
Interval = tuple[float, float, float, int]
NAN = float("nan")


@dataclass(frozen=True)
class Estimate:
    """An estimate with its 95% interval, clustered by prompt.

    ``n`` values (finite ones) from ``n_clusters`` clusters; ``se`` the cluster-robust standard error; ``df`` the
    degrees of freedom of its t reference (n_clusters - 1); ``n_eff`` the effective sample size (n / design
    effect); ``p_value`` the two-sided p-value of "no difference" (paired differences: 0; win rates: 0.5), NaN for
    plain means. Undefined quantities are NaN (bounds: fewer than 2 clusters)."""

    estimate: float
    lo: float
    hi: float
    n: int
    n_clusters: int
    se: float = NAN
    df: int = 0
    n_eff: float = NAN
    p_value: float = NAN

    @property
    def interval(self) -> Interval:
        """The classic 4-tuple ``(estimate, lo, hi, n)``."""
        return self.estimate, self.lo, self.hi, self.n

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2


# ---------------------------------------------------------------------------------------------- clusters
def normalise_prompt(text: Any) -> str:
    """A prompt's text as a cluster sees it: Unicode NFKC, case-folded, runs of whitespace as one space, stripped
    (``"A  red cube "`` and ``"a red cube"`` are one prompt)."""
    return " ".join(unicodedata.normalize("NFKC", str(text)).casefold().split())


def cluster_key(prompt_set: Any, prompt: Any) -> str:
    """The cluster of a sample: its prompt set and normalised prompt text (not the item id: items that repeat a
    text are the same prompt)."""
    return f"{prompt_set}\x1f{normalise_prompt(prompt)}"


def _codes(clusters: Sequence[Any] | np.ndarray | None, n: int) -> np.ndarray:
    """Integer codes 0..G-1 of the clusters (every value its own when None)."""
    if clusters is None:
        return np.arange(n)
    keys = np.asarray(clusters, dtype=object)
    if len(keys) != n:
        raise ValueError(f"{len(keys)} cluster keys for {n} values")
    _, codes = np.unique(keys.astype(str), return_inverse=True)
    return codes.reshape(-1)


def _finite(values: np.ndarray, clusters: Any) -> tuple[np.ndarray, np.ndarray]:
    """The finite values and their cluster codes."""
    v = np.asarray(values, dtype=float).reshape(-1)
    codes = _codes(clusters, len(v))
    ok = np.isfinite(v)
    return v[ok], codes[ok]


def _sandwich(v: np.ndarray, codes: np.ndarray) -> tuple[float, float, int]:
    """(mean, cluster-robust variance of the mean, number of clusters); the variance is NaN below 2 clusters."""
    n = len(v)
    mean = float(v.mean())
    _, codes = np.unique(codes, return_inverse=True)
    g = int(codes.max()) + 1
    if g < 2:
        return mean, NAN, g
    if g == n:  # one value per cluster: the textbook s^2/n, computed as it always was
        return mean, float(v.var(ddof=1)) / n, g
    totals = np.bincount(codes, weights=v - mean, minlength=g)
    return mean, g / (g - 1) * float(np.sum(totals ** 2)) / n ** 2, g


def is_binary(values: np.ndarray) -> bool:
    """Every finite value is 0 or 1 (accuracies such as GenEval and ShapeBench)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return len(v) > 0 and bool(np.isin(v, (0.0, 1.0)).all())


# ---------------------------------------------------------------------------------------------- intervals
def wilson(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a proportion p out of n (n may be an effective, non-integer size); inside
    [0, 1], and ending at 0 or 1 when p does."""
    if not n > 0:
        return NAN, NAN
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if p <= 0 else max(0.0, centre - half)
    hi = 1.0 if p >= 1 else min(1.0, centre + half)
    return lo, hi


def clustered_t(values: np.ndarray, clusters: Any = None, bounds: tuple[float, float] | None = None,
                null: float | None = None) -> Estimate:
    """Mean of the finite values and its 95% t interval (G - 1 degrees of freedom, cluster-robust variance),
    clipped to ``bounds`` when given; with ``null``, the two-sided p-value of mean == null."""
    v, codes = _finite(values, clusters)
    n = len(v)
    if n == 0:
        return Estimate(NAN, NAN, NAN, 0, 0)
    mean, var, g = _sandwich(v, codes)
    if not math.isfinite(var):
        return Estimate(mean, NAN, NAN, n, g)
    se = math.sqrt(var)
    half = float(_st.t.ppf(0.975, g - 1) * se)
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = max(bounds[0], lo), min(bounds[1], hi)
    s2 = float(v.var(ddof=1))
    n_eff = n if g == n else (s2 / var if var > 0 else float(g))
    return Estimate(mean, lo, hi, n, g, se, g - 1, n_eff, _p_value(mean, se, g - 1, null))


def _p_value(mean: float, se: float, df: int, null: float | None) -> float:
    if null is None or not df >= 1:
        return NAN
    if se == 0:
        return 1.0 if mean == null else 0.0
    return float(2 * _st.t.sf(abs(mean - null) / se, df))


def clustered_wilson(values: np.ndarray, clusters: Any = None, null: float | None = None) -> Estimate:
    """Mean of finite values in [0, 1] (0/1 scores, or win/tie/loss as 1/0.5/0) and its 95% Wilson interval at
    the effective sample size n / deff; with ``null``, the two-sided t p-value (G - 1 df) of mean == null."""
    v, codes = _finite(values, clusters)
    n = len(v)
    if n == 0:
        return Estimate(NAN, NAN, NAN, 0, 0)
    p, var, g = _sandwich(v, codes)
    s2 = float(v.var(ddof=1)) if n > 1 else NAN
    if g == n:
        n_eff = float(n)  # independent values: plain Wilson
    elif s2 > 0 and var > 0:
        n_eff = s2 / var  # = n / deff with deff = var / (s2 / n)
    else:
        n_eff = float(g)  # every value the same: no design effect to estimate, assume one value per prompt
    lo, hi = wilson(p, n_eff)
    se = math.sqrt(var) if math.isfinite(var) else NAN
    return Estimate(p, lo, hi, n, g, se, g - 1, n_eff, _p_value(p, se, g - 1, null))


def mean_interval(values: np.ndarray, clusters: Any = None) -> Estimate:
    """A metric's mean and 95% interval: Wilson-type for 0/1 scores, Student t otherwise, clustered."""
    if is_binary(values):
        return clustered_wilson(values, clusters)
    return clustered_t(values, clusters)


def paired_difference(ours: np.ndarray, base: np.ndarray, clusters: Any = None,
                      higher_is_better: bool = True) -> Estimate:
    """Mean of ``ours - base`` over finite pairs (signed so that > 0 is better), its 95% clustered t interval
    (clipped to [-1, 1] for 0/1 scores) and the p-value of "no difference"."""
    ours, base = np.asarray(ours, dtype=float), np.asarray(base, dtype=float)
    d = ours - base
    bounds = (-1.0, 1.0) if is_binary(ours) and is_binary(base) else None
    return clustered_t(d if higher_is_better else -d, clusters, bounds, null=0.0)


def win_rate(ours: np.ndarray, base: np.ndarray, clusters: Any = None, higher_is_better: bool = True) -> Estimate:
    """Fraction of finite pairs where ours beats the baseline (ties count half), its 95% clustered Wilson interval
    and the p-value of a win rate of 0.5."""
    ours, base = np.asarray(ours, dtype=float), np.asarray(base, dtype=float)
    if not higher_is_better:
        ours, base = -ours, -base
    w = np.where(ours > base, 1.0, np.where(ours == base, 0.5, 0.0))
    w[~(np.isfinite(ours) & np.isfinite(base))] = np.nan
    return clustered_wilson(w, clusters, null=0.5)


# ---------------------------------------------------------------------------------------------- many comparisons
def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order); NaN stays NaN and is not counted in the family. A test is
    rejected at family-wise level alpha when its adjusted p-value is <= alpha."""
    p = np.asarray(pvalues, dtype=float).reshape(-1)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    k = len(ok)
    if k == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.maximum.accumulate((k - np.arange(k)) * p[order])
    out[order] = np.minimum(1.0, adjusted)
    return out


# ---------------------------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class Components:
    """Variance components of per-sample values (e.g. paired differences) clustered by prompt: ``mean``;
    ``between`` s_b^2, the variance of the prompts' true means; ``within`` s_w^2, the variance of a sample around
    its prompt's mean; ``prompts`` G, ``samples`` N, ``per_prompt`` m = N / G; ``se`` the cluster-robust standard
    error of the mean of this very design."""

    mean: float
    between: float
    within: float
    prompts: int
    samples: int
    per_prompt: float
    se: float


def variance_components(values: np.ndarray, clusters: Any) -> Components:
    """Method-of-moments (one-way ANOVA) estimates: s_w^2 pools the within-prompt variances (N - G degrees of
    freedom); s_b^2 = var(prompt means) - s_w^2 * mean(1/m_g), floored at 0 (unbalanced designs included). With
    one sample per prompt s_w^2 cannot be told from s_b^2: it is NaN and the total variance goes to s_b^2."""
    v, codes = _finite(values, clusters)
    n = len(v)
    if n == 0:
        return Components(NAN, NAN, NAN, 0, 0, NAN, NAN)
    _, codes = np.unique(codes, return_inverse=True)
    g = int(codes.max()) + 1
    sizes = np.bincount(codes, minlength=g).astype(float)
    means = np.bincount(codes, weights=v, minlength=g) / sizes
    mean, var, _ = _sandwich(v, codes)
    within = float(np.sum((v - means[codes]) ** 2) / (n - g)) if n > g else NAN
    if g < 2:
        between = NAN
    elif math.isfinite(within):
        between = max(0.0, float(means.var(ddof=1)) - within * float(np.mean(1 / sizes)))
    else:
        between = float(means.var(ddof=1))
    return Components(mean, between, within, g, n, n / g, math.sqrt(var) if math.isfinite(var) else NAN)


def design_variance(between: float, within: float, prompts: float, per_prompt: float) -> float:
    """Var of the mean over ``prompts`` prompts with ``per_prompt`` samples each: (s_b^2 + s_w^2 / m) / G (an
    unknown s_w^2, from a pilot with one sample per prompt, counts as 0: the total is in s_b^2)."""
    within = within if math.isfinite(within) else 0.0
    return (between + within / per_prompt) / prompts


def half_width(between: float, within: float, prompts: int, per_prompt: float) -> float:
    """Expected half-width of the 95% t interval (G - 1 df) of the mean for a design of G prompts x m seeds."""
    if prompts < 2:
        return NAN
    return float(_st.t.ppf(0.975, prompts - 1)) * math.sqrt(design_variance(between, within, prompts, per_prompt))


def minimum_detectable_effect(se: float, prompts: int, power: float = 0.8, alpha: float = 0.05) -> float:
    """The smallest true difference a two-sided test at level ``alpha`` finds with probability ``power`` when its
    standard error is ``se``: (t_{1-alpha/2} + t_{power}) * se with G - 1 df."""
    if prompts < 2 or not math.isfinite(se):
        return NAN
    df = prompts - 1
    return float(_st.t.ppf(1 - alpha / 2, df) + _st.t.ppf(power, df)) * se


def _smallest_prompts(ok, limit: int = 10_000_000) -> int | None:
    """The smallest G >= 2 with ok(G) true (ok is monotone), by doubling then bisection; None beyond ``limit``."""
    hi = 2
    while not ok(hi):
        hi *= 2
        if hi > limit:
            return None
    lo = hi // 2 if hi > 2 else 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def prompts_for_half_width(between: float, within: float, per_prompt: float, target: float) -> int | None:
    """Fewest prompts G (with ``per_prompt`` seeds each) whose expected 95% half-width is <= ``target``."""
    if not target > 0:
        raise ValueError(f"target half-width must be positive, got {target}")
    return _smallest_prompts(lambda g: half_width(between, within, g, per_prompt) <= target)


def prompts_for_power(between: float, within: float, per_prompt: float, delta: float, power: float = 0.8,
                      alpha: float = 0.05) -> int | None:
    """Fewest prompts G (with ``per_prompt`` seeds each) to detect a true difference ``delta`` with probability
    ``power`` in a two-sided test at level ``alpha``."""
    if not delta > 0:
        raise ValueError(f"difference to detect must be positive, got {delta}")

    def ok(g: int) -> bool:
        se = math.sqrt(design_variance(between, within, g, per_prompt))
        return minimum_detectable_effect(se, g, power, alpha) <= delta

    return _smallest_prompts(ok)
