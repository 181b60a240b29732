"""The statistics behind the report: pass@k against enumeration, bootstrap and exact intervals
against known values, change points on series with a known step."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from selfplay.analysis.stats import (
    ChangePoint,
    Estimate,
    bootstrap_mean,
    change_point,
    clopper_pearson,
    jump_share,
    ks_up_to,
    paired_difference,
    pass_at_k,
    pass_at_k_estimate,
    pearson,
)

# pass@k


def _brute_pass_at_k(n: int, c: int, k: int) -> float:
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(samples, k))
    return sum(any(s) for s in subsets) / len(subsets)


def test_pass_at_k_matches_enumeration():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(_brute_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_is_exactly_one_when_too_few_wrong():
    assert pass_at_k(10, 8, 3) == 1.0
    assert pass_at_k(4096, 4000, 100) == 1.0


def test_pass_at_k_scalar_returns_float():
    assert isinstance(pass_at_k(8, 3, 2), float)
    assert isinstance(pass_at_k(np.int64(8), np.int64(3), 2), float)


def test_pass_at_k_vectorised_equals_scalar():
    rng = np.random.default_rng(1)
    n = rng.integers(4, 20, size=50)
    c = rng.integers(0, 4, size=50)
    got = pass_at_k(n, c, 3)
    assert got.dtype == np.float64 and got.shape == (50,)
    assert got.tolist() == [pass_at_k(int(a), int(b), 3) for a, b in zip(n, c, strict=True)]
    counts = np.arange(17)
    assert pass_at_k(16, counts, 4).tolist() == [pass_at_k(16, int(b), 4) for b in counts]
    grid = pass_at_k(np.array([[8], [16]]), np.array([0, 2, 8]), 2)
    assert grid.shape == (2, 3)
    assert grid[1, 2] == pass_at_k(16, 8, 2)


@pytest.mark.parametrize(
    ("n", "c", "k", "match"),
    [
        (8, 2, 0, "k >= 1"),
        (8, 2, 9, "k <= n"),
        (8, -1, 2, "0 <= c <= n"),
        (8, 9, 2, "0 <= c <= n"),
        (np.array([8, 4]), np.array([1, 5]), 2, r"c=5 and n=4 at position \(1,\)"),
        (8.0, 2, 2, "integers"),
    ],
)
def test_pass_at_k_rejects_bad_input(n, c, k, match):
    with pytest.raises(ValueError, match=match):
        pass_at_k(n, c, k)


def test_pass_at_k_large_n_is_finite_bounded_and_monotone_in_k():
    for c in (0, 1, 7, 500, 4000, 4096):
        values = np.array([pass_at_k(4096, c, k) for k in ks_up_to(4096)])
        assert np.isfinite(values).all()
        assert ((values >= 0) & (values <= 1)).all()
        assert (np.diff(values) >= 0).all()
    assert pass_at_k(4096, 1, 1) == pytest.approx(1 / 4096, rel=1e-12)


def test_pass_at_k_over_a_million_tasks_matches_the_scalar_form():
    # Speed is measured in benchmarks/analysis_speed.py; here the table lookup must agree.
    counts = np.random.default_rng(0).integers(0, 257, size=1_000_000)
    values = pass_at_k(256, counts, 8)
    assert values.shape == (1_000_000,)
    for i in (0, 17, 999_999):
        assert values[i] == pytest.approx(pass_at_k(256, int(counts[i]), 8), abs=1e-12)


@pytest.mark.parametrize(
    ("n", "ks"),
    [
        (1, [1]),
        (2, [1, 2]),
        (8, [1, 2, 4, 8]),
        (10, [1, 2, 4, 8, 10]),
        (256, [1, 2, 4, 8, 16, 32, 64, 128, 256]),
    ],
)
def test_ks_up_to(n, ks):
    assert ks_up_to(n) == ks


def test_ks_up_to_rejects_zero():
    with pytest.raises(ValueError, match="n >= 1"):
        ks_up_to(0)


def test_pass_at_k_estimate_averages_tasks():
    estimate = pass_at_k_estimate([0, 4, 2], 4, 1)
    assert estimate.value == pytest.approx(0.5)
    assert estimate.low <= estimate.value <= estimate.high


# bootstrap


def test_estimate_formats_and_serialises():
    estimate = Estimate(0.4123, 0.35, 0.47)
    assert str(estimate) == "0.412 [0.350, 0.470]"
    assert estimate.to_dict() == {"value": 0.4123, "low": 0.35, "high": 0.47}


def test_bootstrap_interval_contains_the_true_mean():
    values = np.random.default_rng(3).normal(0.5, 1.0, size=2000)
    estimate = bootstrap_mean(values)
    assert estimate.low < 0.5 < estimate.high
    assert estimate.low < estimate.value < estimate.high


def test_bootstrap_degenerate_cases():
    assert bootstrap_mean([0.3] * 50) == Estimate(0.3, 0.3, 0.3)
    assert bootstrap_mean([0.7]) == Estimate(0.7, 0.7, 0.7)
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_mean([])
    with pytest.raises(ValueError, match=r"values\[1\] is nan"):
        bootstrap_mean([0.1, float("nan")])


def test_bootstrap_is_deterministic_for_a_seed():
    values = np.random.default_rng(4).random(100)
    assert bootstrap_mean(values, seed=7) == bootstrap_mean(values, seed=7)
    assert bootstrap_mean(values, seed=7) != bootstrap_mean(values, seed=8)


def test_bootstrap_interval_shrinks_with_more_data():
    rng = np.random.default_rng(5)
    small = bootstrap_mean(rng.random(50))
    large = bootstrap_mean(rng.random(5000))
    assert large.high - large.low < (small.high - small.low) / 3


def test_paired_difference():
    rng = np.random.default_rng(6)
    a = rng.random(400)
    assert paired_difference(a, a) == Estimate(0.0, 0.0, 0.0)
    shifted = paired_difference(a, a + 0.3 + rng.normal(0, 0.05, size=400))
    assert shifted.value == pytest.approx(0.3, abs=0.01)
    assert shifted.low < 0.3 < shifted.high
    assert shifted.high - shifted.low < 0.02
    with pytest.raises(ValueError, match="got 400 and 399"):
        paired_difference(a, a[:-1])


# Clopper-Pearson


def test_clopper_pearson_known_values():
    assert clopper_pearson(0, 10) == (0.0, pytest.approx(1 - 0.025 ** (1 / 10), abs=1e-9))
    assert clopper_pearson(10, 10) == (pytest.approx(0.025 ** (1 / 10), abs=1e-9), 1.0)
    low, high = clopper_pearson(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.1871, 0.8129)
    assert clopper_pearson(0, 10)[1] == pytest.approx(0.3085, abs=1e-4)
    low, high = clopper_pearson(0, 10, confidence=0.99)
    assert high == pytest.approx(1 - 0.005 ** (1 / 10), abs=1e-9)


def test_clopper_pearson_is_monotone():
    bounds = [clopper_pearson(s, 40) for s in range(41)]
    lows, highs = np.array(bounds).T
    assert (np.diff(lows) > 0).all()
    assert (np.diff(highs) > 0).all()
    assert all(low < s / 40 < high for s, (low, high) in enumerate(bounds) if 0 < s < 40)
    assert clopper_pearson(20, 40, 0.99)[0] < clopper_pearson(20, 40, 0.9)[0]


@pytest.mark.parametrize(
    ("s", "n", "conf"), [(-1, 10, 0.95), (11, 10, 0.95), (0, 0, 0.95), (1, 2, 1.0)]
)
def test_clopper_pearson_rejects_bad_input(s, n, conf):
    with pytest.raises(ValueError):
        clopper_pearson(s, n, conf)


# change points


def _step_series(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.r_[np.full(30, 0.1), np.full(30, 0.6)] + rng.normal(0, 0.05, size=60)


def test_change_point_finds_a_known_step():
    found = change_point(_step_series())
    assert isinstance(found, ChangePoint)
    assert abs(found.index - 30) <= 1
    assert found.p_value < 0.01
    assert found.before == pytest.approx(0.1, abs=0.03)
    assert found.after == pytest.approx(0.6, abs=0.03)
    assert set(found.to_dict()) == {"index", "step", "before", "after", "p_value"}


def test_change_point_reports_the_step_value():
    found = change_point(_step_series(), steps=np.arange(60) * 10)
    assert found.step == 10.0 * found.index


def test_change_point_on_pure_noise_is_not_significant():
    noise = np.random.default_rng(11).normal(0.5, 0.05, size=60)
    found = change_point(noise)
    assert found is not None
    assert found.p_value > 0.05


def test_change_point_declines_constant_and_short_series():
    assert change_point([0.4] * 20) is None
    assert change_point([0.1, 0.9, 0.5]) is None
    assert change_point([0.1, 0.9, 0.5, 0.7, 0.2], min_size=3) is None


def test_change_point_rejects_nan_and_mismatched_steps():
    with pytest.raises(ValueError, match=r"values\[2\] is nan"):
        change_point([0.1, 0.2, float("nan"), 0.4])
    with pytest.raises(ValueError, match="steps"):
        change_point([0.1, 0.2, 0.3, 0.4], steps=[0, 1, 2])


def test_change_point_on_a_long_series_finds_a_late_step():
    rng = np.random.default_rng(12)
    series = np.concatenate([rng.normal(0, 1, 900), rng.normal(3, 1, 100)])
    found = change_point(series, permutations=999)
    assert found is not None and abs(found.index - 900) <= 3 and found.p_value < 0.01


def test_jump_share():
    step = [0.1] * 10 + [0.6] * 10
    assert jump_share(step, 10) == pytest.approx(1.0)
    assert jump_share(step, 5) == 0.0
    assert jump_share(np.linspace(0.0, 1.0, 11), 4) == pytest.approx(0.1)
    assert jump_share([0.2, 0.5, 0.2], 1) == pytest.approx(0.5)  # half the movement
    assert jump_share([0.2, 0.5, 0.2], 2, direction=1) == pytest.approx(-0.5)  # it fell
    assert jump_share([0.0, 0.1, 0.0, 0.1, 1.0], 4) == pytest.approx(0.9 / 1.2)
    assert jump_share([0.3] * 4, 2) == 0.0
    with pytest.raises(ValueError, match="index"):
        jump_share(step, 0)


def test_pearson():
    x = np.arange(10.0)
    assert pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert pearson(x, -x) == pytest.approx(-1.0)
    assert pearson(x, np.ones(10)) is None
    assert pearson([1.0, 2.0], [2.0, 1.0]) is None
    with pytest.raises(ValueError, match="got 10 and 9"):
        pearson(x, x[:-1])
