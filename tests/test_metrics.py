"""Metrics: hand-computed cases, scikit-learn cross-checks of the vectorised bootstrap engine, property tests (hypothesis)."""
import json
import math
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sklearn import metrics as skm

from audiokit.metrics import (MetricsError, WeightedEngine, aggregate_by_group, bootstrap_weights, evaluate, icbhi_scores,
                              metric_values, point_metrics, sensitivity_at_specificity)

CLASSES4 = ['normal', 'crackle', 'wheeze', 'both']


def _close(a, b, tol=1e-9):
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _data(seed, n=200, k=4, signal=1.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    return y, _softmax(rng.normal(size=(n, k)) + signal * np.eye(k)[y])


# ---------- hand-computed cases ----------
def test_icbhi_official_definitions():
    yt = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3]
    yp = [0, 0, 0, 1, 1, 2, 2, 0, 3, 1]
    s = icbhi_scores(yt, yp)
    assert s['icbhi_specificity'] == 0.75 and s['icbhi_sensitivity'] == 0.5 and s['icbhi_score'] == 0.625
    assert math.isclose(s['icbhi_2class_sensitivity'], 5 / 6)
    # perfect abnormal detection but every abnormal class confused: 2-class Se 1, 4-class Se 0
    s = icbhi_scores([0, 1, 2, 3], [0, 2, 3, 1])
    assert s['icbhi_sensitivity'] == 0 and s['icbhi_2class_sensitivity'] == 1 and s['icbhi_specificity'] == 1
    # normal need not be class 0
    s = icbhi_scores([1, 1, 0, 2], [1, 0, 0, 1], normal=1)
    assert s['icbhi_specificity'] == 0.5 and s['icbhi_sensitivity'] == 0.5 and s['icbhi_2class_sensitivity'] == 0.5   # the wheeze called normal is missed either way


def test_hand_computed_binary():
    y = np.array([0, 0, 0, 1, 1])
    p1 = np.array([0.1, 0.6, 0.3, 0.8, 0.4])
    m, _ = point_metrics(y, p1, ['neg', 'pos'])
    # predictions: 0 1 0 1 0 -> TP 1, FP 1, FN 1, TN 2
    assert m['accuracy'] == 3 / 5 and m['balanced_accuracy'] == (2 / 3 + 1 / 2) / 2
    assert m['precision[pos]'] == 0.5 and m['recall[pos]'] == 0.5 and m['recall[neg]'] == 2 / 3
    # AUROC: pairs (pos, neg) ordered: 0.8 beats all 3, 0.4 beats 0.1 and 0.3 -> 5/6
    assert math.isclose(m['auroc'], 5 / 6)
    # AP: ranks 0.8(+) 0.6(-) 0.4(+) -> 0.5*1 + 0.5*(2/3)
    assert math.isclose(m['auprc'], 0.5 + 1 / 3)
    assert sensitivity_at_specificity(y, p1, 2 / 3) == 1.0 and sensitivity_at_specificity(y, p1, 1.0) == 0.5


def test_balanced_accuracy_and_f1_hand():
    y = [0, 0, 0, 0, 1, 2]
    p = np.eye(3)[[0, 0, 0, 1, 1, 1]]
    m, _ = point_metrics(y, p)
    assert math.isclose(m['balanced_accuracy'], (3 / 4 + 1 + 0) / 3)
    # F1 per class: c0 2*3/(2*3+0+1)=6/7, c1 2/(2+2+0)=0.5, c2 0
    assert math.isclose(m['f1_macro'], (6 / 7 + 0.5 + 0) / 3) and math.isclose(m['f1_micro'], 4 / 6)


# ---------- scikit-learn cross-checks ----------
@pytest.mark.parametrize('seed,k', [(0, 2), (1, 3), (2, 4), (3, 5)])
def test_point_metrics_match_sklearn(seed, k):
    y, p = _data(seed, k=k)
    m, _ = point_metrics(y, p)
    assert _close(m['accuracy'], skm.accuracy_score(y, p.argmax(1)))
    assert _close(m['balanced_accuracy'], skm.balanced_accuracy_score(y, p.argmax(1)))
    assert _close(m['f1_macro'], skm.f1_score(y, p.argmax(1), average='macro'))
    if k == 2:
        assert _close(m['auroc'], skm.roc_auc_score(y, p[:, 1])) and _close(m['auprc'], skm.average_precision_score(y, p[:, 1]))
    else:
        assert _close(m['auroc'], skm.roc_auc_score(y, p, multi_class='ovr'))
        assert _close(m['auprc'], skm.average_precision_score(np.eye(k)[y], p, average='macro'))


@pytest.mark.parametrize('seed,k,ml', [(0, 2, False), (1, 4, False), (2, 3, True), (3, 2, True)])
def test_engine_equals_sklearn_with_weights(seed, k, ml):
    rng = np.random.default_rng(seed)
    n = 150
    if ml:
        y = rng.integers(0, 2, (n, k)); p = np.clip(0.5 * y + rng.random((n, k)) * 0.6, 0, 1)
        classes = ['crackle', 'wheeze', 'x'][:k]
    else:
        y, p = _data(seed, n, k); classes = (CLASSES4 if k == 4 else None)
    p = np.round(p, 2)     # ties in scores exercise the tie handling
    eng = WeightedEngine(y, p, classes=classes, multi_label=ml)
    ref, _ = point_metrics(y, p, classes=classes, multi_label=ml)
    ones = eng(np.ones((1, n)))
    assert set(ones) == set(ref)
    for name in ref: assert _close(float(ones[name][0]), ref[name]), name
    W = rng.integers(0, 4, (3, n)).astype(float)
    got = eng(W)
    for b in range(3):
        rep = np.repeat(np.arange(n), W[b].astype(int))
        exp, _ = point_metrics(y[rep], p[rep], classes=classes, multi_label=ml)
        for name in exp: assert _close(float(got[name][b]), exp[name]), (name, b)


@pytest.mark.parametrize('ml', [False, True])
def test_group_engine_equals_row_engine(ml):
    rng = np.random.default_rng(9)
    n = 120
    y = rng.integers(0, 2, (n, 2)) if ml else rng.integers(0, 3, n)
    p = np.round(rng.random((n, 2)), 1) if ml else _softmax(np.round(rng.normal(size=(n, 3)), 1))
    g = rng.choice(['p%02d' % i for i in range(25)], n)
    inv = np.unique(g, return_inverse=True)[1]
    counts = rng.integers(0, 3, (4, 25)).astype(float)
    a = WeightedEngine(y, p, multi_label=ml, groups=g)(counts)
    b = WeightedEngine(y, p, multi_label=ml)(counts[:, inv])
    for name in b: assert np.allclose(a[name], b[name], equal_nan=True), name


def test_weighted_auc_matches_sklearn_sample_weight():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300); s = np.round(rng.random(300) + 0.3 * y, 1); w = rng.integers(0, 5, 300).astype(float)
    m = WeightedEngine(y, s)(w[None])
    assert _close(float(m['auroc'][0]), skm.roc_auc_score(y, s, sample_weight=w))
    assert _close(float(m['auprc'][0]), skm.average_precision_score(y, s, sample_weight=w))
    assert _close(float(m['sensitivity_at_specificity'][0]), sensitivity_at_specificity(y, s, 0.9, sample_weight=w))


# ---------- evaluate ----------
def test_evaluate_is_json_and_complete():
    y, p = _data(0, 120)
    groups = np.repeat(np.arange(30), 4)
    r = evaluate(y, p, CLASSES4, groups=groups, n_boot=200)
    json.dumps(r, allow_nan=False)
    for name in ['accuracy', 'balanced_accuracy', 'f1_macro', 'f1_micro', 'auroc', 'auprc', 'icbhi_score', 'icbhi_2class_score',
                 'sensitivity_at_specificity', 'precision[wheeze]', 'recall[both]', 'auroc[crackle]', 'auprc[normal]']:
        m = r['metrics'][name]
        assert m['value'] is not None and m['ci_low'] <= m['value'] <= m['ci_high'] and m['n_boot_valid'] == 200
    assert np.array(r['confusion_matrix']).sum() == 120 and r['n_groups'] == 30


def test_evaluate_seeded_and_group_bootstrap():
    y, p = _data(1, 100)
    g = np.repeat(np.arange(20), 5)
    a = evaluate(y, p, groups=g, n_boot=300, seed=7)
    b = evaluate(y, p, groups=g, n_boot=300, seed=7)
    c = evaluate(y, p, groups=g, n_boot=300, seed=8)
    assert a == b and a['metrics']['auroc']['ci_low'] != c['metrics']['auroc']['ci_low']
    W = bootstrap_weights(g, 50, seed=0)
    assert all(len(set(W[i, g == j])) == 1 for i in range(50) for j in range(20))   # a group's rows move together
    assert (W.sum(1) == 100).all()   # equal-size groups: every resample has 100 rows


def test_group_bootstrap_is_wider_with_correlated_groups():
    rng = np.random.default_rng(3)
    pid = np.repeat(np.arange(40), 10)
    y = rng.integers(0, 2, 40)[pid]
    p1 = np.clip(0.5 + 0.3 * (2 * y - 1) * rng.choice([1, -1], 40, p=[.75, .25])[pid] + 0.05 * rng.normal(size=400), 0, 1)
    grp = evaluate(y, p1, groups=pid, n_boot=500)['metrics']['accuracy']
    row = evaluate(y, p1, n_boot=500)['metrics']['accuracy']
    assert (grp['ci_high'] - grp['ci_low']) > 1.5 * (row['ci_high'] - row['ci_low'])


def test_patient_level_aggregation():
    y = [0, 0, 1, 1, 1]
    p = [[.9, .1], [.4, .6], [.3, .7], [.2, .8], [.6, .4]]
    g = ['a', 'a', 'b', 'b', 'b']
    r = evaluate(y, p, groups=g, aggregate='mean', n_boot=0)
    assert r['n'] == 2 and r['metrics']['accuracy']['value'] == 1.0
    v = aggregate_by_group(y, p, g, method='vote')
    assert np.allclose(v['y_prob'], [[.5, .5], [1 / 3, 2 / 3]])
    with pytest.raises(MetricsError, match='aggregate needs groups'): evaluate(y, p, aggregate='mean')
    with pytest.raises(MetricsError, match='unknown aggregation'): aggregate_by_group(y, p, g, method='median')


def test_degenerate_inputs():
    r = evaluate([0, 0, 0], [[.9, .1], [.8, .2], [.4, .6]], ['neg', 'pos'], n_boot=100)
    assert r['metrics']['auroc']['value'] is None and any('AUROC' in s for s in r['notes'])
    assert r['metrics']['accuracy']['value'] == 2 / 3
    json.dumps(r, allow_nan=False)
    with pytest.raises(MetricsError, match='NaN'): evaluate([0, 1], [[np.nan, 1], [0, 1]])
    with pytest.raises(MetricsError, match='class indices'): evaluate([0, 2], [[.5, .5], [.5, .5]])
    with pytest.raises(MetricsError, match='group ids'): evaluate([0, 1], [[.5, .5], [.5, .5]], groups=[1])


def test_bootstrap_speed_is_reasonable():
    y, p = _data(2, 2000)
    t0 = time.perf_counter()
    r = evaluate(y, p, CLASSES4, groups=np.arange(2000) // 5, n_boot=1000)
    assert r['metrics']['auroc']['n_boot_valid'] == 1000
    print(f"evaluate 2000 rows x 1000 resamples: {time.perf_counter() - t0:.2f} s")   # reported, never asserted


# ---------- property tests ----------
@st.composite
def problems(draw, multi_label=False):
    n = draw(st.integers(4, 40))
    k = draw(st.integers(2, 4))
    seed = draw(st.integers(0, 10**6))
    rng = np.random.default_rng(seed)
    if multi_label:
        y = rng.integers(0, 2, (n, k))
        p = np.round(rng.random((n, k)), draw(st.integers(1, 3)))
    else:
        y = rng.integers(0, k, n)
        p = _softmax(np.round(rng.normal(size=(n, k)) * 2, draw(st.integers(0, 2))))
    g = rng.integers(0, max(2, n // draw(st.integers(1, 4))), n)
    return y, p, g


FAST = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(problems(), st.booleans())
def test_metrics_in_unit_interval(prob, ml_flag):
    y, p, g = prob
    if ml_flag:
        rng = np.random.default_rng(len(y)); y = rng.integers(0, 2, p.shape)
    m, _ = point_metrics(y, p, multi_label=ml_flag)
    for name, v in m.items():
        assert math.isnan(v) or -1e-12 <= v <= 1 + 1e-12, (name, v)


@FAST
@given(problems())
def test_invariant_to_row_order(prob):
    y, p, g = prob
    perm = np.random.default_rng(0).permutation(len(y))
    a = evaluate(y, p, groups=g, n_boot=50, seed=3)
    b = evaluate(y[perm], p[perm], groups=g[perm], n_boot=50, seed=3)
    for name, m in a['metrics'].items():
        for key in ('value', 'ci_low', 'ci_high'):
            u, v = m[key], b['metrics'][name][key]
            assert (u is None and v is None) or math.isclose(u, v, abs_tol=1e-9), (name, key, u, v)


@FAST
@given(problems(), st.booleans())
def test_perfect_predictions_score_one(prob, ml):
    y, p, g = prob
    k = p.shape[1]
    if ml:
        y = np.random.default_rng(1).integers(0, 2, p.shape); p = y * 0.9 + 0.05
    else:
        p = np.eye(k)[y] * 0.9 + 0.1 / k
    m, _ = point_metrics(y, p, multi_label=ml)
    for name in ('accuracy', 'balanced_accuracy', 'f1_micro'):
        assert m[name] == 1.0, name
    for name in ('f1_macro', 'auroc', 'auprc'):
        assert math.isnan(m[name]) or math.isclose(m[name], 1.0), name


@FAST
@given(problems())
def test_ci_contains_point_estimate(prob):
    y, p, g = prob
    r = evaluate(y, p, groups=g, n_boot=300, seed=0)
    for name in ('accuracy', 'f1_micro'):
        m = r['metrics'][name]
        assert m['ci_low'] - 1e-9 <= m['value'] <= m['ci_high'] + 1e-9, (name, m)


@FAST
@given(problems(multi_label=True))
def test_multilabel_matches_sklearn(prob):
    y, p, g = prob
    m, _ = point_metrics(y, p, multi_label=True)
    pred = (p >= 0.5).astype(int)
    assert _close(m['accuracy'], skm.accuracy_score(y, pred))
    assert _close(m['f1_micro'], skm.f1_score(y, pred, average='micro', zero_division=np.nan))
    ok = [i for i in range(y.shape[1]) if 0 < y[:, i].sum() < len(y)]
    if ok: assert _close(m['auroc'], float(np.mean([skm.roc_auc_score(y[:, i], p[:, i]) for i in ok])))
