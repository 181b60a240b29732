"""The hand-written statistics against reference implementations (scipy and statsmodels, in
the ``dev`` extra) on the same inputs: Clopper-Pearson, Student's t, the incomplete beta,
Fisher's exact test, Holm's correction, pass@k, Pearson's r, the percentile bootstrap and the
expected calibration error. The change-point p-value has no library counterpart; its own
tests are in ``tests/test_stats.py``."""

from __future__ import annotations

import math

import numpy as np
import pytest

scipy_stats = pytest.importorskip("scipy.stats")
special = pytest.importorskip("scipy.special")
multitest = pytest.importorskip("statsmodels.stats.multitest")

from selfplay.analysis import stats  # noqa: E402
from selfplay.analysis.calibration import ece  # noqa: E402
from selfplay.compare import fisher_exact, holm  # noqa: E402


@pytest.mark.parametrize("trials", [1, 2, 7, 16, 64, 500])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_clopper_pearson_matches_scipy(trials, confidence):
    for successes in sorted({0, 1, trials // 3, trials // 2, trials - 1, trials}):
        want = scipy_stats.binomtest(successes, trials).proportion_ci(
            confidence_level=confidence, method="exact"
        )
        low, high = stats.clopper_pearson(successes, trials, confidence)
        assert low == pytest.approx(want.low, abs=1e-7), (successes, trials)
        assert high == pytest.approx(want.high, abs=1e-7), (successes, trials)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 9, 30, 200])
def test_student_t_matches_scipy(df):
    for p in (0.5, 0.8, 0.9, 0.95, 0.975, 0.995):
        assert stats.t_quantile(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-6)
    for t in (-6.0, -2.0, -0.3, 0.0, 0.7, 2.5, 12.0):
        assert stats.t_cdf(t, df) == pytest.approx(scipy_stats.t.cdf(t, df), abs=1e-9)


def test_incomplete_beta_matches_scipy():
    for a, b in ((0.5, 0.5), (1.0, 3.0), (2.5, 7.0), (40.0, 3.0), (150.0, 150.0)):
        for x in (0.0, 1e-6, 0.1, 0.37, 0.5, 0.9, 0.999999, 1.0):
            got = stats._incomplete_beta(a, b, x)
            assert got == pytest.approx(special.betainc(a, b, x), abs=1e-10), (a, b, x)


def test_fisher_exact_matches_scipy():
    rng = np.random.default_rng(0)
    cases = [(0, 10, 0, 10), (10, 10, 0, 10), (3, 16, 9, 16), (1, 1, 0, 1), (7, 64, 7, 64)]
    for _ in range(60):
        n_a, n_b = (int(v) for v in rng.integers(1, 80, size=2))
        cases.append((int(rng.integers(0, n_a + 1)), n_a, int(rng.integers(0, n_b + 1)), n_b))
    for hits_a, n_a, hits_b, n_b in cases:
        table = [[hits_a, n_a - hits_a], [hits_b, n_b - hits_b]]
        want = scipy_stats.fisher_exact(table, alternative="two-sided").pvalue
        got = fisher_exact(hits_a, n_a, hits_b, n_b)
        assert got == pytest.approx(want, rel=1e-6, abs=1e-12), (hits_a, n_a, hits_b, n_b)


def test_holm_matches_statsmodels():
    rng = np.random.default_rng(1)
    samples = [[0.01], [0.04, 0.01, 0.03], [0.5, 0.5, 0.5, 0.001], rng.uniform(size=20)]
    samples.append(np.concatenate([rng.uniform(0, 0.01, 5), rng.uniform(size=10)]))
    for p in samples:
        want = multitest.multipletests(p, alpha=0.05, method="holm")[1]
        np.testing.assert_allclose(holm(p), want, rtol=1e-12)


def test_pass_at_k_is_the_hypergeometric_complement():
    for n in (1, 5, 16, 256):
        for c in sorted({0, 1, n // 4, n // 2, n - 1, n}):
            for k in sorted({1, 2, n // 2, n}):
                if k < 1 or k > n:
                    continue
                want = 1.0 - special.comb(n - c, k, exact=True) / special.comb(n, k, exact=True)
                assert stats.pass_at_k(n, c, k) == pytest.approx(want, abs=1e-12), (n, c, k)


def test_pearson_matches_scipy():
    rng = np.random.default_rng(2)
    for size in (3, 10, 200):
        x = rng.normal(size=size)
        y = 0.6 * x + rng.normal(size=size)
        assert stats.pearson(x, y) == pytest.approx(scipy_stats.pearsonr(x, y)[0], abs=1e-12)


def test_percentile_bootstrap_agrees_with_scipy():
    """Two resamplers draw differently, so the intervals agree to the Monte Carlo error of
    20,000 resamples, not exactly: a 2.5% quantile of 20,000 draws has a standard error of
    about 0.02 standard errors of the mean, a difference of two about 0.027, so 0.1 is
    about 3.7 of them (continuous data: a 0/1 sample's bootstrap means move in steps)."""
    rng = np.random.default_rng(3)
    for values in (rng.uniform(size=40), rng.normal(size=120), rng.exponential(size=60)):
        ours = stats.bootstrap_mean(values, resamples=20_000, seed=4)
        theirs = scipy_stats.bootstrap(
            (values,),
            np.mean,
            n_resamples=20_000,
            confidence_level=0.95,
            method="percentile",
            rng=np.random.default_rng(5),
        ).confidence_interval
        spread = values.std() / math.sqrt(values.size)
        assert ours.low == pytest.approx(theirs.low, abs=0.1 * spread)
        assert ours.high == pytest.approx(theirs.high, abs=0.1 * spread)
        assert ours.value == pytest.approx(values.mean())


def test_ece_matches_scipy_binned_statistics():
    rng = np.random.default_rng(6)
    p = np.concatenate([rng.uniform(size=300), [0.0, 0.1, 0.5, 0.9, 1.0]])  # edges included
    y = (rng.uniform(size=p.size) < p**1.5).astype(float)
    edges = np.linspace(0.0, 1.0, 11)  # scipy's last bin holds 1.0, as ours does
    sums = scipy_stats.binned_statistic(p, y - p, statistic="sum", bins=edges).statistic
    assert ece(p, y) == pytest.approx(np.abs(sums).sum() / p.size, abs=1e-12)
