"""Edge cases of audiokit.stats: NaN handling, too few values, mismatched lengths, zero variance, 2-method Friedman."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from audiokit.metrics import t_interval
from audiokit.stats import (StatsError, compare_methods, comparison_table, corrected_t_interval, corrected_ttest,
                            fold_test_train_ratio, friedman_nemenyi, holm, markdown_table, nemenyi_q)


def long_table(scores: dict, metric='acc') -> pd.DataFrame:
    return pd.DataFrame([{'method': m, 'fold': f, 'metric': metric, 'value': v} for m, vs in scores.items() for f, v in enumerate(vs)])


def test_interval_ignores_nan_and_none_and_is_wider_than_plain():
    vals = [0.7, None, 0.8, float('nan'), 0.75, 0.9]
    m, lo, hi = corrected_t_interval(vals, 0.25)
    pm, plo, phi = t_interval(vals)
    assert math.isclose(m, 0.7875) and math.isclose(m, pm)
    assert lo < plo and hi > phi
    x = np.array([0.7, 0.8, 0.75, 0.9])
    h = sps.t.ppf(0.975, 3) * math.sqrt(x.var(ddof=1) * (1 / 4 + 0.25))
    assert np.allclose((lo, hi), (x.mean() - h, x.mean() + h))


@pytest.mark.parametrize('vals', [[], [None], [float('nan')], [0.4], [0.4, None]])
def test_interval_with_too_few_values_has_nan_bounds(vals):
    m, lo, hi = corrected_t_interval(vals, 0.25)
    assert math.isnan(lo) and math.isnan(hi)
    assert math.isnan(m) == (len([v for v in vals if v is not None and v == v]) == 0)


def test_interval_bounds_and_bad_ratio():
    assert corrected_t_interval([0.99, 0.5, 0.98], 0.5, bounds=(0, 1))[2] == 1.0
    for bad in (-0.1, float('nan'), float('inf'), None):
        with pytest.raises(StatsError, match='test_train_ratio'): corrected_t_interval([0.1, 0.2], bad)
    with pytest.raises(StatsError, match='confidence'): corrected_t_interval([0.1, 0.2], 0.2, confidence=95)


def test_ttest_mismatched_lengths_names_the_problem():
    with pytest.raises(StatsError, match='a has 3 fold scores and b has 2'): corrected_ttest([1, 2, 3], [1, 2], 0.25)


def test_ttest_needs_two_finite_pairs():
    with pytest.raises(StatsError, match='1 fold'): corrected_ttest([0.5, np.nan, 0.7], [0.4, 0.3, None], 0.25)
    assert corrected_ttest([0.5, np.nan, 0.7, 0.6], [0.4, 0.3, 0.5, None], 0.25)['n'] == 2


def test_ttest_zero_variance():
    same = corrected_ttest([0.7, 0.8, 0.9], [0.7, 0.8, 0.9], 0.25)
    assert same['p'] == 1.0 and same['t'] == 0.0 and same['mean_diff'] == 0.0 and same['ci_low'] == same['ci_high'] == 0.0
    shift = corrected_ttest([0.75, 0.85, 0.95], [0.7, 0.8, 0.9], 0.25)   # float noise in the difference counts as none
    assert shift['p'] == 0.0 and shift['t'] == math.inf and math.isclose(shift['mean_diff'], 0.05)


def test_ttest_against_hand_computation():
    a, b = np.array([0.81, 0.78, 0.85, 0.80, 0.79]), np.array([0.78, 0.77, 0.80, 0.79, 0.75])
    r = corrected_ttest(a, b, 0.25)
    d = a - b
    se = math.sqrt(d.var(ddof=1) * (1 / 5 + 0.25))
    assert math.isclose(r['t'], d.mean() / se) and r['df'] == 4 and r['n'] == 5
    assert math.isclose(r['p'], 2 * sps.t.sf(d.mean() / se, 4))
    assert math.isclose(r['ci_high'] - r['mean_diff'], sps.t.ppf(0.975, 4) * se)
    assert math.isclose(corrected_ttest(a, b, 0.0)['p'], sps.ttest_rel(a, b).pvalue)


def test_holm():
    assert np.allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    out = holm([0.04, None, 0.01, np.nan])
    assert np.isnan(out[[1, 3]]).all() and np.allclose(out[[0, 2]], [0.04, 0.02])
    assert np.allclose(holm([0.6, 0.7]), [1.0, 1.0])   # 2 x 0.6 capped at 1, then the running maximum


def test_fold_ratio():
    assert math.isclose(fold_test_train_ratio([{'train': 60, 'val': 20, 'test': 20}, {'train': 90, 'val': 0, 'test': 10}]), (0.25 + 1 / 9) / 2)
    with pytest.raises(StatsError, match='no fold sizes'): fold_test_train_ratio([])


def test_compare_methods_uses_common_folds_only_and_counts_the_dropped():
    long = long_table({'a': [0.8, 0.82, 0.79, 0.85], 'b': [0.7, 0.75, np.nan, 0.72], 'c': [0.6, 0.62, 0.61, 0.66]})
    long = long[~((long.method == 'c') & (long.fold == 3))]
    t = compare_methods(long, 'acc', 0.25)
    assert list(t['method']) == ['a', 'b', 'c'] and (t['n'] == 2).all() and (t['n_dropped'] == 2).all()
    assert sorted(t.attrs['dropped_folds']) == [2, 3]
    assert math.isclose(t.set_index('method').loc['a', 'mean'], 0.81)


def test_compare_methods_too_few_common_folds():
    long = long_table({'a': [0.8, 0.9], 'b': [0.7, np.nan]})
    with pytest.raises(StatsError, match='1 fold'): compare_methods(long, 'acc', 0.25)


def test_comparison_table_lower_is_better_and_markdown():
    long = pd.concat([long_table({'a': [0.8, 0.82, 0.79], 'b': [0.7, 0.75, 0.71]}),
                      long_table({'a': [0.2, 0.25, 0.22], 'b': [0.3, 0.31, 0.35]}, 'loss')])
    t = comparison_table(long, ['acc', 'loss'], 0.5, lower_is_better=['loss'])
    assert list(t.index) == ['a', 'b'] and t.attrs['reference'] == 'a'
    md = markdown_table(t, index=True)
    assert md.count('\n') == 4 and md.startswith('| method | acc | acc p_holm | loss | loss p_holm |')


def test_friedman_with_two_methods_says_so():
    r = friedman_nemenyi(long_table({'a': [0.8, 0.9, 0.85], 'b': [0.7, 0.8, 0.6]}), 'acc')
    assert math.isnan(r['p']) and 'needs at least 3 methods' in r['note'] and r['methods'] == ['a', 'b']
    assert math.isclose(r['cd'], nemenyi_q(2) * math.sqrt(2 * 3 / (6 * 3)))


def test_friedman_all_ties_and_cd_values():
    r = friedman_nemenyi(long_table({'a': [0.5] * 4, 'b': [0.5] * 4, 'c': [0.5] * 4}), 'acc')
    assert r['p'] == 1.0 and r['groups'] == [['a', 'b', 'c']]
    assert abs(nemenyi_q(3) - 2.343) < 1e-3 and abs(nemenyi_q(5) - 2.728) < 1e-3
    with pytest.raises(StatsError, match='at least 2 methods'): friedman_nemenyi(long_table({'a': [0.5, 0.6]}), 'acc')
