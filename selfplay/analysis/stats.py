"""Statistics the report rests on: pass@k, bootstrap intervals, exact binomial intervals and
change points, in numpy alone.

The unit of evidence is the *task*. The samples drawn for one task share its difficulty, so
they are not independent draws: every interval here resamples tasks (a percentile bootstrap
over per-task values), never samples. pass@k uses the unbiased estimator of Chen et al.
(2021) rather than "any of the first k correct", whose value depends on sample order and
which is biased low for ``k < n``.

Change points answer "did this curve move at one step or drift?": the single mean shift that
best splits a metric's history, a permutation test of whether a split that good arises by
chance in the same values shuffled, and ``jump_share``, the part of the total rise that
happens in the one step at the split.

Every function is pure and deterministic for a given ``seed``; bad input (NaN, mismatched
lengths, out-of-range counts) raises ``ValueError`` rather than producing a number.
"""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike

_MAX_BYTES = 50_000_000
"""Rough bound on the working memory of one chunk of resamples or permutations."""

_TIE_TOLERANCE = 1e-10
"""Relative slack when comparing a permuted statistic with the observed one, so that a
permutation that reaches the same split statistic by another summation order counts as a tie."""


@dataclass(frozen=True)
class Estimate:
    """A point estimate with the bounds of its confidence interval."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        """``{"value", "low", "high"}`` as plain floats, for JSON."""
        return {"value": self.value, "low": self.low, "high": self.high}

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


@dataclass(frozen=True)
class ChangePoint:
    """The best single mean shift in a series.

    ``index`` is the position of the first point of the after-segment, ``step`` the x value
    (``steps[index]``) there, ``before`` and ``after`` the means of ``values[:index]`` and
    ``values[index:]``, and ``p_value`` the permutation p-value of the split (see
    ``change_point``).
    """

    index: int
    step: float
    before: float
    after: float
    p_value: float

    def to_dict(self) -> dict[str, float | int]:
        """All fields, for JSON."""
        return asdict(self)


def ks_up_to(n: int) -> list[int]:
    """The k at which pass@k is reported for ``n`` samples: 1, 2, 4, 8, ... up to ``n``, and
    ``n`` itself when it is not a power of two (``ks_up_to(10) == [1, 2, 4, 8, 10]``)."""
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"ks_up_to needs n >= 1, got {n}")
    ks = [1 << e for e in range(n.bit_length()) if 1 << e <= n]
    if ks[-1] != n:
        ks.append(n)
    return ks


def _pass_table(n: int, k: int) -> np.ndarray:
    """pass@k for c = 0..n correct out of ``n``, as a float64 array of length ``n + 1``.

    ``C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i)``, so the ratio for every c is one
    cumulative product over i = n, n-1, ..., 1. Each factor lies in (0, 1) while
    ``n - c >= k``, so there is no cancellation and at worst a harmless underflow to 0; for
    ``n - c < k`` every k-subset holds a correct sample and the value is set to exactly 1.0.
    """
    i = np.arange(n, 0, -1, dtype=np.float64)
    ratio = np.concatenate(([1.0], np.cumprod(1.0 - k / i)))
    ratio[n - k + 1 :] = 0.0
    return 1.0 - ratio


def _integers(values: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def pass_at_k(n: ArrayLike, c: ArrayLike, k: int) -> float | np.ndarray:
    """Unbiased pass@k (Chen et al., 2021) for ``n`` samples of which ``c`` are correct:
    ``1 - C(n-c, k) / C(n, k)``, the probability that a k-subset drawn without replacement
    from the n samples holds at least one correct one. It is exactly 1.0 when ``n - c < k``.

    ``n`` and ``c`` are integers or integer arrays and broadcast together; ``k`` is an int.
    A float is returned when both are scalars, a float64 array of the broadcast shape
    otherwise. The value is read from a table over c = 0..n built once per distinct n (see
    ``_pass_table``), so a million tasks cost one gather. Raises ``ValueError`` unless
    ``1 <= k <= n`` and ``0 <= c <= n`` everywhere.
    """
    k = operator.index(k)
    n_in, c_in = _integers(n, "n"), _integers(c, "c")
    scalar = n_in.ndim == 0 and c_in.ndim == 0
    n_all, c_all = np.broadcast_arrays(n_in, c_in)
    if k < 1:
        raise ValueError(f"pass@k needs k >= 1, got k={k}")
    if n_all.size:
        if (low_n := int(n_all.min())) < k:
            raise ValueError(f"pass@k needs k <= n, got k={k} and n={low_n}")
        bad = (c_all < 0) | (c_all > n_all)
        if bad.any():
            at = np.unravel_index(int(np.argmax(bad)), bad.shape)
            raise ValueError(
                f"pass@k needs 0 <= c <= n, got c={int(c_all[at])} and n={int(n_all[at])}"
                + (f" at position {tuple(int(i) for i in at)}" if not scalar else "")
            )
    if n_in.ndim == 0:
        out = _pass_table(int(n_in), k)[c_all]
    else:
        distinct, which = np.unique(n_all, return_inverse=True)
        tables = [_pass_table(int(m), k) for m in distinct]
        starts = np.concatenate(([0], np.cumsum([len(t) for t in tables])[:-1]))
        out = np.concatenate(tables)[starts[which.reshape(n_all.shape)] + c_all]
    return float(out) if scalar else out


def _finite(values: ArrayLike, name: str = "values") -> np.ndarray:
    """``values`` as a 1-D float64 array; ``ValueError`` naming the first non-finite position."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    bad = ~np.isfinite(array)
    if bad.any():
        at = int(np.argmax(bad))
        raise ValueError(f"{name}[{at}] is {array[at]}; only finite values are allowed")
    return array


def _check_resampling(resamples: int, confidence: float) -> None:
    if operator.index(resamples) < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def bootstrap_mean(
    values: ArrayLike, *, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Estimate:
    """Mean of ``values`` (one per task) with a percentile bootstrap interval.

    ``value`` is the sample mean. Each of ``resamples`` resamples draws ``len(values)`` items
    with replacement (``numpy.random.default_rng(seed)``) and takes their mean; ``low`` and
    ``high`` are the ``(1 - confidence)/2`` and ``(1 + confidence)/2`` quantiles of those
    means (numpy's default linear interpolation). One item, or all items equal, gives
    ``low == high == value``. Resamples are drawn in chunks of about 50 MB of indices.
    """
    x = _finite(values)
    if x.size == 0:
        raise ValueError("bootstrap_mean needs at least one value, got none")
    _check_resampling(resamples, confidence)
    if np.ptp(x) == 0:
        v = float(x[0])
        return Estimate(v, v, v)
    m = x.size
    rng = np.random.default_rng(seed)
    rows = max(1, _MAX_BYTES // (16 * m))
    means = np.empty(resamples)
    for start in range(0, resamples, rows):
        stop = min(start + rows, resamples)
        means[start:stop] = x[rng.integers(0, m, size=(stop - start, m))].mean(axis=1)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Estimate(float(x.mean()), float(low), float(high))


def pass_at_k_estimate(
    counts: ArrayLike,
    n: int,
    k: int,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Mean pass@k over tasks with a bootstrap interval: ``counts[t]`` is how many of the ``n``
    samples of task t were correct; per-task ``pass_at_k(n, counts[t], k)``, then
    ``bootstrap_mean`` over tasks."""
    per_task = pass_at_k(n, np.atleast_1d(_integers(counts, "counts")), k)
    return bootstrap_mean(per_task, resamples=resamples, confidence=confidence, seed=seed)


def paired_difference(
    a: ArrayLike,
    b: ArrayLike,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """``mean(b) - mean(a)`` over the same tasks, with a paired bootstrap interval.

    ``a[t]`` and ``b[t]`` belong to task t (before and after, say). Each resample draws one
    set of task indices for both, so the interval reflects the per-task differences rather
    than two independent spreads. Since ``mean(b*) - mean(a*) = mean((b - a)*)`` for shared
    indices, this is ``bootstrap_mean(b - a)``.
    """
    x, y = _finite(a, "a"), _finite(b, "b")
    if x.size != y.size:
        raise ValueError(
            f"paired_difference needs a and b of one length, got {x.size} and {y.size}"
        )
    return bootstrap_mean(y - x, resamples=resamples, confidence=confidence, seed=seed)


def _binomial_tail(log_choose: np.ndarray, successes: int, p: float, upper: bool) -> float:
    """``P(X >= successes)`` (``upper``) or ``P(X <= successes)`` for X ~ Binomial(n, p),
    summed in log space from the precomputed ``log C(n, j)``, j = 0..n."""
    n = log_choose.size - 1
    j = np.arange(n + 1)
    log_pmf = log_choose + j * math.log(p) + (n - j) * math.log1p(-p)
    part = log_pmf[successes:] if upper else log_pmf[: successes + 1]
    top = part.max()
    return float(math.exp(top) * np.exp(part - top).sum())


def _bisect(f, target: float, increasing: bool) -> float:
    """The p in (0, 1) where the monotone ``f(p)`` crosses ``target``, to double precision."""
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if (f(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval for a binomial proportion.

    With ``alpha = 1 - confidence``, ``low`` is the p at which ``P(X >= successes) = alpha/2``
    and ``high`` the p at which ``P(X <= successes) = alpha/2``, X ~ Binomial(trials, p);
    ``low = 0.0`` when ``successes == 0`` and ``high = 1.0`` when ``successes == trials``.
    Both are found by bisection on the binomial tail, summed from ``math.lgamma`` terms, so
    no beta quantile (scipy) is needed. Cost is O(trials) per bisection step.
    """
    successes, trials = operator.index(successes), operator.index(trials)
    if trials < 1:
        raise ValueError(f"clopper_pearson needs trials >= 1, got {trials}")
    if not 0 <= successes <= trials:
        raise ValueError(
            f"clopper_pearson needs 0 <= successes <= trials, got {successes}/{trials}"
        )
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    tail = (1.0 - confidence) / 2
    j = np.arange(trials + 1)
    log_choose = math.lgamma(trials + 1) - np.array([math.lgamma(i + 1) for i in j])
    log_choose -= np.array([math.lgamma(trials - i + 1) for i in j])
    low = 0.0
    if successes > 0:
        low = _bisect(lambda p: _binomial_tail(log_choose, successes, p, True), tail, True)
    high = 1.0
    if successes < trials:
        high = _bisect(lambda p: _binomial_tail(log_choose, successes, p, False), tail, False)
    return low, high


def _split_gains(x: np.ndarray, min_size: int) -> np.ndarray:
    """For each row of ``x`` (shape ``(rows, m)``) and each split t = min_size..m-min_size, the
    drop in within-segment sum of squared errors from splitting ``x[:, :t] | x[:, t:]``:
    ``t (m - t) / m * (mean_left - mean_right)^2``, from one cumulative sum per row."""
    m = x.shape[1]
    cumulative = np.cumsum(x, axis=1)
    left = cumulative[:, min_size - 1 : m - min_size]
    right = cumulative[:, -1:] - left
    t = np.arange(min_size, m - min_size + 1, dtype=np.float64)
    return (left / t - right / (m - t)) ** 2 * (t * (m - t) / m)


def change_point(
    values: ArrayLike,
    steps: ArrayLike | None = None,
    *,
    min_size: int = 2,
    permutations: int = 999,
    seed: int = 0,
) -> ChangePoint | None:
    """The single mean shift that best explains ``values``, and how surprising it is.

    The split index t (``min_size <= t <= len - min_size``) minimises
    ``SSE(values[:t]) + SSE(values[t:])``, SSE being the sum of squared deviations from the
    segment mean; equivalently it maximises the gain ``SSE(values) - that sum``. Ties go to
    the earliest t. ``steps`` (default ``0, 1, 2, ...``) gives the x value reported as
    ``step``. ``p_value = (1 + #{permutations whose best gain >= the observed one}) /
    (1 + permutations)``, each permutation a uniform shuffle of ``values``
    (``numpy.random.default_rng(seed)``); "at least" allows a relative 1e-10 for rounding.

    Returns None when ``len(values) < 2 * min_size`` or the values are constant. Raises
    ``ValueError`` on a non-finite value (naming its position) or a ``steps`` of another
    length.
    """
    x = _finite(values)
    m = x.size
    if steps is None:
        xs = np.arange(m, dtype=np.float64)
    else:
        xs = _finite(steps, "steps")
        if xs.size != m:
            raise ValueError(f"change_point needs steps of len(values)={m}, got {xs.size}")
    min_size = operator.index(min_size)
    if min_size < 1:
        raise ValueError(f"min_size must be >= 1, got {min_size}")
    if operator.index(permutations) < 1:
        raise ValueError(f"permutations must be >= 1, got {permutations}")
    if m < 2 * min_size or np.ptp(x) == 0:
        return None
    centred = x - x.mean()
    gains = _split_gains(centred[None, :], min_size)[0]
    best = int(np.argmax(gains))
    observed = gains[best] * (1.0 - _TIE_TOLERANCE)
    rng = np.random.default_rng(seed)
    rows = max(1, _MAX_BYTES // (32 * m))
    at_least = 0
    for start in range(0, permutations, rows):
        shuffled = rng.permuted(np.tile(centred, (min(rows, permutations - start), 1)), axis=1)
        at_least += int((_split_gains(shuffled, min_size).max(axis=1) >= observed).sum())
    index = best + min_size
    return ChangePoint(
        index=index,
        step=float(xs[index]),
        before=float(x[:index].mean()),
        after=float(x[index:].mean()),
        p_value=(1 + at_least) / (1 + permutations),
    )


def jump_share(values: ArrayLike, index: int, direction: float = 0.0) -> float:
    """The share of a series' movement that happens in the one step into ``index``:
    ``(values[index] - values[index - 1]) / sum(|values[i] - values[i - 1]|)`` -- the step's
    change over the total variation -- and 0.0 for a constant series.

    ``direction`` 0 takes the step's absolute change (a share in [0, 1]); +1 or -1 counts
    only a move that way (a step the other way gives a negative share). Near 1 the curve
    jumps at ``index``; near ``1 / (len - 1)`` it moves evenly; noise spreads it out.
    ``index`` must satisfy ``1 <= index < len(values)``."""
    x = _finite(values)
    index = operator.index(index)
    if not 1 <= index < x.size:
        raise ValueError(f"jump_share needs 1 <= index < {x.size}, got {index}")
    variation = float(np.abs(np.diff(x)).sum())
    if variation == 0:
        return 0.0
    step = float(x[index] - x[index - 1])
    return (abs(step) if direction == 0 else step * math.copysign(1.0, direction)) / variation


def pearson(x: ArrayLike, y: ArrayLike) -> float | None:
    """Pearson correlation ``sum(dx dy) / sqrt(sum(dx^2) sum(dy^2))`` with ``d`` the deviation
    from the mean, clipped to [-1, 1]. None with fewer than 3 points or when either series is
    constant; ``ValueError`` on a length mismatch or a non-finite value."""
    a, b = _finite(x, "x"), _finite(y, "y")
    if a.size != b.size:
        raise ValueError(f"pearson needs x and y of one length, got {a.size} and {b.size}")
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    da, db = a - a.mean(), b - b.mean()
    r = float((da @ db) / math.sqrt(float(da @ da) * float(db @ db)))
    return max(-1.0, min(1.0, r))


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (modified
    Lentz), used on the side of ``x`` where the fraction converges fast."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _incomplete_beta(b, a, 1.0 - x)
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * result / a


def t_cdf(t: float, df: float) -> float:
    """``P(T <= t)`` for Student's t with ``df`` degrees of freedom (``df > 0``)."""
    if not df > 0:
        raise ValueError(f"t_cdf needs df > 0, got {df}")
    tail = 0.5 * _incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with ``t_cdf(t, df) == p``, ``0 < p < 1``: bisection (``_bisect``) on
    ``u = t / (1 + t)`` in (0, 1) for the upper half, by symmetry for the lower."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"t_quantile needs 0 < p < 1, got {p}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    u = _bisect(lambda u: t_cdf(u / (1.0 - u), df), p, True)
    return u / (1.0 - u)


POWER = 0.8
"""The power at which ``SeedSummary.min_detectable`` is stated."""


@dataclass(frozen=True)
class SeedSummary:
    """A quantity measured once per seed, summarised: the mean, Student's t interval over the
    seeds, and the smallest effect a test at this size would find.

    ``low``/``high`` are ``mean -/+ t(1 - alpha/2, n - 1) * sd / sqrt(n)``, None with fewer
    than two values. ``min_detectable`` is ``(t(1 - alpha/2, n-1) + t(POWER, n-1)) * sd /
    sqrt(n)``: the smallest true distance from any fixed threshold that a two-sided one-sample
    t-test at level ``1 - confidence`` detects with probability ``POWER``, given the observed
    spread (None with fewer than two values).
    """

    value: float
    low: float | None
    high: float | None
    n: int
    sd: float | None
    min_detectable: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        """All fields, for JSON."""
        return asdict(self)


def seed_summary(values: ArrayLike, confidence: float = 0.95) -> SeedSummary:
    """``SeedSummary`` of per-seed values (finite, at least one)."""
    x = _finite(values)
    if x.size == 0:
        raise ValueError("seed_summary needs at least one value, got none")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    mean = float(x.mean())
    if x.size < 2:
        return SeedSummary(mean, None, None, 1, None, None)
    sd = float(x.std(ddof=1))
    se = sd / math.sqrt(x.size)
    q = t_quantile(0.5 + confidence / 2, x.size - 1)
    return SeedSummary(
        value=mean,
        low=mean - q * se,
        high=mean + q * se,
        n=int(x.size),
        sd=sd,
        min_detectable=(q + t_quantile(POWER, x.size - 1)) * se,
    )
