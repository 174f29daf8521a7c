"""The 95 % intervals of the evaluation: over seeds, and over the folds of repeated cross-validation."""

from __future__ import annotations

import math

import pytest

from model import intervals


def test_three_seeds_give_the_student_t_interval_of_their_mean() -> None:
    # mean 2, sample std 1, t(0.975, 2 df) = 4.3027: half-width 4.3027 / sqrt(3) = 2.4842
    interval = intervals.over_seeds([1.0, 2.0, 3.0])

    assert interval.mean == pytest.approx(2.0)
    assert interval.low == pytest.approx(2.0 - 2.4842, abs=1e-4)
    assert interval.high == pytest.approx(2.0 + 2.4842, abs=1e-4)
    assert interval.n == 3


def test_one_seed_has_a_mean_but_no_interval() -> None:
    interval = intervals.over_seeds([0.7])

    assert interval.mean == 0.7
    assert math.isnan(interval.low)
    assert math.isnan(interval.high)
    assert "no interval" in interval.text()
    assert interval.as_dict()["low"] is None  # JSON has no NaN


def test_no_values_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        intervals.over_seeds([])


def test_repeated_folds_widen_the_interval_for_the_rows_the_folds_share() -> None:
    # 2 x 2-fold scores 0.1, 0.2, 0.3, 0.4: sample variance 0.016667
    # corrected variance (1/4 + 1/1) * 0.016667 = 0.020833, t(0.975, 3 df) = 3.1824 -> half 0.45934
    interval = intervals.over_repeated_folds([0.1, 0.2, 0.3, 0.4], folds=2)

    assert interval.mean == pytest.approx(0.25)
    assert interval.high - interval.mean == pytest.approx(0.45934, abs=1e-4)
    naive = intervals.over_seeds([0.1, 0.2, 0.3, 0.4])
    assert interval.high - interval.low > 2 * (naive.high - naive.low)


def test_the_text_names_the_interval() -> None:
    assert intervals.over_seeds([1.0, 2.0, 3.0]).text(".2f") == "2.00 (95 % interval -0.48 to 4.48, n=3)"


# scipy.stats.t.ppf(0.975, df), SciPy 1.17.1: the t values behind the 95 % intervals (seeds: n - 1 df;
# repeated 5 x 5-fold cross-validation: 24 df).
SCIPY_T_975 = {
    1: 12.706204736174694,
    2: 4.302652729749462,
    3: 3.1824463052837078,
    4: 2.7764451051977934,
    5: 2.5705818356363146,
    6: 2.4469118511449786,
    7: 2.364624251592784,
    9: 2.262157162798205,
    10: 2.228138851986274,
    24: 2.0638985616280245,
    49: 2.0095752371292392,
    99: 1.9842169515864174,
    299: 1.9679296690656698,
    1000: 1.9623390808264083,
}


@pytest.mark.parametrize("degrees_of_freedom", sorted(SCIPY_T_975))
def test_the_t_value_is_scipys(degrees_of_freedom: int) -> None:
    assert intervals._t(degrees_of_freedom) == pytest.approx(SCIPY_T_975[degrees_of_freedom], abs=1e-10, rel=0)


def test_three_seeds_interval_uses_the_t_value_of_two_degrees_of_freedom() -> None:
    interval = intervals.over_seeds([1.0, 2.0, 3.0])

    assert interval.high - interval.mean == pytest.approx(SCIPY_T_975[2] / math.sqrt(3), abs=1e-12, rel=0)
