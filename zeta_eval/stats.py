"""Statistics of a report, clustered by prompt: means, proportions, paired differences and win rates with 95%
intervals, Holm's correction for many comparisons, and a sample-size planner.

**The unit of analysis is the prompt.** The samples of one prompt (its seeds, its sample indices, and items that
repeat its text) share whatever makes that prompt easy or hard, so they are repeated measures of one unit, not
independent draws. Every function takes ``clusters``, one key per value (:func:`cluster_key`: prompt set and
normalised prompt text); ``None`` treats every value as its own cluster, and then every result equals the classic
independent interval (Student t, Wilson) exactly.

**Method.** The estimate is the plain mean over samples (every sample weighs the same, as before). Its variance is
the cluster-robust (sandwich) variance of that mean with the CR2 small-sample correction (Bell & McCaffrey 2002):

    Var = sum_g r_g^2 / (1 - n_g/N) / N^2,    r_g = sum over cluster g of (y_i - mean)

(G clusters of n_g values, N in all), referred to Student t with the Bell-McCaffrey degrees of freedom. With equal
cluster sizes this is the familiar G/(G-1) * sum_g r_g^2 / N^2 with G - 1 degrees of freedom, i.e. the t interval
over the G prompt means; with unequal sizes (items that repeat a prompt's text) the degrees of freedom drop below
G - 1, as they must: a few large prompts then carry most of the weight. With one value per cluster it is s^2/N
with N - 1 degrees of freedom, the textbook interval.

- Continuous means and paired differences: ``mean +- t * sqrt(Var)`` (the number of prompts, not of samples,
  limits what is known); clipped to the range of 0/1 scores (differences of
  0/1 scores to [-1, 1]).
- 0/1 means and win rates: Wilson's score interval at the effective sample size n_eff = N / deff, where the design
  effect deff = Var / (s^2/N) compares the clustered variance with the variance the same values would have if they
  were independent (s^2: their sample variance), and the quantile of the same Student t in place of z (the
  variance is estimated from G clusters, as for the t interval). One value per cluster gives deff = 1 and z: plain
  Wilson. When every value is the same (p = 0 or 1) the design effect cannot be estimated, and the interval takes
  the cautious end, n_eff = G (one value per prompt).

Why not a cluster bootstrap: it is random (a seed and a resample count to report), slow on large studies, and its
percentile intervals under-cover with few prompts; CR2 with Bell-McCaffrey degrees of freedom is the small-sample
correction recommended for few or unequal clusters (Imbens & Kolesar 2016; Pustejovsky & Tipton 2018), is
closed-form and deterministic, and reduces exactly to the classic intervals for one sample per prompt. Its coverage
is checked by simulation in ``tests/test_stats_coverage.py`` (balanced and unbalanced seeds, prompt effects of
several sizes, 0/1 and continuous scores, paired differences and win rates).

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

import functools
import math
import unicodedata
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import special as _special
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
    degrees of freedom of its t reference (n_clusters - 1 for equal cluster sizes, fewer for unequal ones); ``n_eff``
    the effective sample size (n / design effect); ``p_value`` the two-sided p-value of "no difference" (paired
    differences: 0; win rates: 0.5), NaN for plain means. Undefined quantities are NaN (bounds: fewer than 2
    clusters)."""

    estimate: float
    lo: float
    hi: float
    n: int
    n_clusters: int
    se: float = NAN
    df: float = NAN
    n_eff: float = NAN
    p_value: float = NAN

    @property
    def interval(self) -> Interval:
        """The classic 4-tuple ``(estimate, lo, hi, n)``."""
        return self.estimate, self.lo, self.hi, self.n

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2


@functools.lru_cache(maxsize=4096)
def t_quantile(q: float, df: float) -> float:
    """Student t's ``q`` quantile with ``df`` degrees of freedom (cached: reports and simulations ask for few)."""
    return float(_st.t.ppf(q, df))


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
    keys = np.asarray(clusters)
    if len(keys) != n:
        raise ValueError(f"{len(keys)} cluster keys for {n} values")
    if keys.dtype == object:  # mixed or None keys: compare them as text
        keys = keys.astype(str)
    _, codes = np.unique(keys, return_inverse=True)
    return codes.reshape(-1)


def _finite(values: np.ndarray, clusters: Any) -> tuple[np.ndarray, np.ndarray]:
    """The finite values and their cluster codes."""
    v = np.asarray(values, dtype=float).reshape(-1)
    codes = _codes(clusters, len(v))
    ok = np.isfinite(v)
    return v[ok], codes[ok]


def _group(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(order, starts, G): an ordering of the values by cluster, where each cluster starts in it, and G."""
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]) if len(codes) else np.array([], int)
    return order, starts, len(starts)


def _moments(values: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, float]:
    """Per row of ``values`` (replicates x N, all finite, one design ``codes``): the mean, the cluster-robust (CR2)
    variance of the mean (NaN below 2 clusters) and the sample variance s^2 (ddof 1); then G and the degrees of
    freedom of the t reference (Bell-McCaffrey; G - 1 for equal cluster sizes)."""
    rows, n = values.shape
    mean = values.mean(axis=1)
    s2 = values.var(axis=1, ddof=1) if n > 1 else np.full(rows, np.nan)
    order, starts, g = _group(codes)
    if g < 2:
        return mean, np.full(rows, np.nan), s2, g, float("nan")
    if g == n:  # one value per cluster: the textbook s^2 / n
        return mean, s2 / n, s2, g, float(n - 1)
    sizes = np.diff(np.r_[starts, n]).astype(float)
    weights = 1.0 / (1.0 - sizes / n)  # CR2: (I - H_gg)^(-1/2) scales a cluster's residual total by this root
    totals = np.add.reduceat((values - mean[:, None])[:, order], starts, axis=1)
    var = np.sum(weights * totals ** 2, axis=1) / n ** 2
    return mean, var, s2, g, _bell_mccaffrey_df(sizes, weights)


def _bell_mccaffrey_df(sizes: np.ndarray, weights: np.ndarray) -> float:
    """Satterthwaite degrees of freedom of the CR2 variance of a mean under independent errors (Bell & McCaffrey
    2002; Imbens & Kolesar 2016): tr(C)^2 / tr(C^2) with C = sum_g w_g v_g v_g', v_g the centred indicator of
    cluster g, whose inner products are K = diag(n_g) - n n' / N. Equal sizes give G - 1; unequal ones fewer."""
    n = sizes.sum()
    k = np.diag(sizes) - np.outer(sizes, sizes) / n
    trace = float(np.sum(weights * np.diag(k)))
    trace_sq = float(weights @ (k ** 2) @ weights)
    return trace ** 2 / trace_sq


def _t_bounds(mean: np.ndarray, var: np.ndarray, df: float,
              bounds: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray]:
    half = (t_quantile(0.975, df) if df > 0 else np.nan) * np.sqrt(var)
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = np.maximum(bounds[0], lo), np.minimum(bounds[1], hi)
    return lo, hi


def _wilson_bounds(p: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson's score interval, elementwise (NaN where n is not positive)."""
    p, n = np.asarray(p, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        lo = np.where(p <= 0, 0.0, np.maximum(0.0, centre - half))
        hi = np.where(p >= 1, 1.0, np.minimum(1.0, centre + half))
    bad = ~(n > 0)
    return np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)


def _effective_n(var: np.ndarray, s2: np.ndarray, n: int, g: int) -> np.ndarray:
    """n / deff with deff = Var / (s^2 / n), i.e. s^2 / Var; n for independent values; G where every value is the
    same (no design effect to estimate: assume one value per prompt)."""
    if g == n:
        return np.full(var.shape, float(n))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((s2 > 0) & (var > 0), s2 / var, float(g))


def _wilson_z(n: int, g: int, df: float) -> float:
    """The quantile of the Wilson-type interval: z for independent values (classic Wilson), Student t with the
    clustered variance's degrees of freedom when it comes from G clusters (as for the t interval; z under-covers
    with few prompts)."""
    return Z95 if g == n or g < 2 else t_quantile(0.975, df)


def clustered_t_rows(values: np.ndarray, clusters: Any = None, bounds: tuple[float, float] | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, lo, hi) of :func:`clustered_t` for every row of ``values`` (replicates x N, finite, one design of
    clusters): for simulations and resampling experiments."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    codes = _codes(clusters, values.shape[1])
    mean, var, _, _, df = _moments(values, codes)
    return (mean, *_t_bounds(mean, var, df, bounds))


def clustered_wilson_rows(values: np.ndarray, clusters: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, lo, hi) of :func:`clustered_wilson` for every row of ``values`` (replicates x N, finite, one design
    of clusters)."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    n = values.shape[1]
    codes = _codes(clusters, n)
    p, var, s2, g, df = _moments(values, codes)
    return (p, *_wilson_bounds(p, _effective_n(var, s2, n, g), _wilson_z(n, g, df)))


def is_binary(values: np.ndarray) -> bool:
    """Every finite value is 0 or 1 (accuracies such as GenEval and ShapeBench)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return len(v) > 0 and bool(np.isin(v, (0.0, 1.0)).all())


# ---------------------------------------------------------------------------------------------- intervals
def wilson(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a proportion p out of n (n may be an effective, non-integer size); inside
    [0, 1], and ending at 0 or 1 when p does."""
    lo, hi = _wilson_bounds(np.array([p]), np.array([n]), z)
    return float(lo[0]), float(hi[0])


def _p_value(mean: float, se: float, df: float, null: float | None) -> float:
    if null is None or not df > 0 or not math.isfinite(se):
        return NAN
    if se == 0:
        return 1.0 if mean == null else 0.0
    return float(2 * _special.stdtr(df, -abs(mean - null) / se))


def clustered_t(values: np.ndarray, clusters: Any = None, bounds: tuple[float, float] | None = None,
                null: float | None = None) -> Estimate:
    """Mean of the finite values and its 95% t interval (G - 1 degrees of freedom, cluster-robust variance),
    clipped to ``bounds`` when given; with ``null``, the two-sided p-value of mean == null."""
    v, codes = _finite(values, clusters)
    n = len(v)
    if n == 0:
        return Estimate(NAN, NAN, NAN, 0, 0)
    mean, var, s2, g, df = _moments(v[None, :], codes)
    lo, hi = _t_bounds(mean, var, df, bounds)
    se = math.sqrt(var[0]) if math.isfinite(var[0]) else NAN
    n_eff = float(_effective_n(var, s2, n, g)[0]) if g >= 2 else NAN
    return Estimate(float(mean[0]), float(lo[0]), float(hi[0]), n, g, se, df, n_eff,
                    _p_value(float(mean[0]), se, df, null))


def clustered_wilson(values: np.ndarray, clusters: Any = None, null: float | None = None) -> Estimate:
    """Mean of finite values in [0, 1] (0/1 scores, or win/tie/loss as 1/0.5/0) and its 95% Wilson interval at
    the effective sample size n / deff (quantile: z for independent values, t with G - 1 df for clustered ones);
    with ``null``, the two-sided t p-value (G - 1 df) of mean == null."""
    v, codes = _finite(values, clusters)
    n = len(v)
    if n == 0:
        return Estimate(NAN, NAN, NAN, 0, 0)
    p, var, s2, g, df = _moments(v[None, :], codes)
    n_eff = _effective_n(var, s2, n, g)
    lo, hi = _wilson_bounds(p, n_eff, _wilson_z(n, g, df))
    se = math.sqrt(var[0]) if math.isfinite(var[0]) else NAN
    return Estimate(float(p[0]), float(lo[0]), float(hi[0]), n, g, se, df, float(n_eff[0]),
                    _p_value(float(p[0]), se, df, null))


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
    error of the mean of this very design; ``model_se`` the one the components predict for it,
    sqrt((s_b^2 sum_g n_g^2 + s_w^2 N) / N^2) (a check of the model: close to ``se`` when it fits)."""

    mean: float
    between: float
    within: float
    prompts: int
    samples: int
    per_prompt: float
    se: float
    model_se: float = NAN


def variance_components(values: np.ndarray, clusters: Any) -> Components:
    """One-way random-effects ANOVA estimates (Searle's method of moments, unbalanced designs included):
    s_w^2 = MSW, the pooled within-prompt variance (N - G df); s_b^2 = (MSB - MSW) / n0 with
    MSB = sum_g n_g (mean_g - mean)^2 / (G - 1) and n0 = (N - sum_g n_g^2 / N) / (G - 1) (= m when every prompt
    has m samples), floored at 0. With one sample per prompt s_w^2 cannot be told from s_b^2: it is NaN and the
    total variance goes to s_b^2."""
    v, codes = _finite(values, clusters)
    n = len(v)
    if n == 0:
        return Components(NAN, NAN, NAN, 0, 0, NAN, NAN)
    _, codes = np.unique(codes, return_inverse=True)
    g = int(codes.max()) + 1
    sizes = np.bincount(codes, minlength=g).astype(float)
    means = np.bincount(codes, weights=v, minlength=g) / sizes
    mean_, var_, _, _, _ = _moments(v[None, :], codes)
    mean, var = float(mean_[0]), float(var_[0])
    within = float(np.sum((v - means[codes]) ** 2) / (n - g)) if n > g else NAN
    if g < 2:
        between = NAN
    elif math.isfinite(within):
        msb = float(np.sum(sizes * (means - mean) ** 2)) / (g - 1)
        n0 = (n - float(np.sum(sizes ** 2)) / n) / (g - 1)
        between = max(0.0, (msb - within) / n0)
    else:
        between = float(means.var(ddof=1))
    model = (between * float(np.sum(sizes ** 2)) + (within if math.isfinite(within) else 0.0) * n) / n ** 2
    return Components(mean, between, within, g, n, n / g, math.sqrt(var) if math.isfinite(var) else NAN,
                      math.sqrt(model) if math.isfinite(model) else NAN)


def design_variance(between: float, within: float, prompts: float, per_prompt: float) -> float:
    """Var of the mean over ``prompts`` prompts with ``per_prompt`` samples each: (s_b^2 + s_w^2 / m) / G (an
    unknown s_w^2, from a pilot with one sample per prompt, counts as 0: the total is in s_b^2)."""
    within = within if math.isfinite(within) else 0.0
    return (between + within / per_prompt) / prompts


def half_width(between: float, within: float, prompts: int, per_prompt: float) -> float:
    """Expected half-width of the 95% t interval (G - 1 df) of the mean for a design of G prompts x m seeds."""
    if prompts < 2:
        return NAN
    return t_quantile(0.975, prompts - 1) * math.sqrt(design_variance(between, within, prompts, per_prompt))


def minimum_detectable_effect(se: float, prompts: int, power: float = 0.8, alpha: float = 0.05,
                              df: float | None = None) -> float:
    """The smallest true difference a two-sided test at level ``alpha`` finds with probability ``power`` when its
    standard error is ``se``: (t_{1-alpha/2} + t_{power}) * se, with ``df`` degrees of freedom (default G - 1; pass
    an :class:`Estimate`'s ``df`` for the design it came from)."""
    df = prompts - 1 if df is None else df
    if prompts < 2 or not math.isfinite(se) or not df > 0:
        return NAN
    return (t_quantile(1 - alpha / 2, df) + t_quantile(power, df)) * se


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
