"""audiokit.balance: property tests (weights positive and finite, targets reached, train-only, deterministic), and the CLI."""
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from audiokit.balance import (BalanceConfig, BalanceError, add_train_rows, apply_balance, class_weights, loss_weights, make_sampler,
                              mix_synthetic, oversample, plan_balance, pos_weights, sample_weights, sampler_weights, samples_needed)
from audiokit.core import ConfigError
from audiokit.labels import LabelSpace, classes_of
from audiokit.manifest import multilabel_string, read_manifest, validate_manifest, write_manifest


def class_counts(df, labels=None):
    "The one class count, LabelSpace.counts."
    return (labels or LabelSpace.from_manifest(df)).counts(df)

CLASSES = ['a', 'b', 'c', 'd']


def single(counts, groups=5, seed=0):
    rng = np.random.default_rng(seed)
    labels = [c for c, n in zip(CLASSES, counts) for _ in range(n)]
    return validate_manifest(pd.DataFrame({'path': [f'/x/{i}.wav' for i in range(len(labels))], 'label': labels,
                                           'group': [f'g{k}' for k in rng.integers(0, groups, len(labels))]}))


def multi(flags, groups=5):
    flags = np.asarray(flags, dtype=int)
    cl = CLASSES[:flags.shape[1]]
    return validate_manifest(pd.DataFrame({'path': [f'/x/{i}.wav' for i in range(len(flags))],
                                           'label': multilabel_string(flags, cl), 'group': [f'g{i % groups}' for i in range(len(flags))],
                                           **{f'label_{c}': flags[:, j] for j, c in enumerate(cl)}}))


def expand(df, folds=2):
    gs = sorted(df['group'].unique())
    parts = []
    for f in range(folds):
        test = df['group'].isin(gs[f::folds])
        parts.append(df.assign(fold=f, subset=np.where(test, 'test', 'train')))
    return pd.concat(parts, ignore_index=True)


counts_st = st.lists(st.integers(0, 60), min_size=2, max_size=4).filter(lambda c: sum(1 for v in c if v > 0) >= 2)


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(0, 10_000), min_size=1, max_size=12), method=st.sampled_from(['inverse', 'sqrt_inverse', 'effective', 'none']),
       beta=st.floats(0.0, 0.99999))
def test_weights_positive_finite(counts, method, beta):
    w = class_weights(counts, method, beta=beta)
    assert w.shape == (len(counts),) and w.dtype == torch.float32
    assert torch.isfinite(w).all() and (w > 0).all()
    assert math.isclose(float(w.mean()), 1.0, rel_tol=1e-4)
    n = np.maximum(np.asarray(counts), 1)
    if method in ('inverse', 'sqrt_inverse'):                         # rarer class never weighs less
        order = np.argsort(n, kind='stable')
        assert (np.diff(w.numpy()[order]) <= 1e-6).all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counts=counts_st, ratio=st.sampled_from([0.25, 0.5, 0.8, 1.0]), seed=st.integers(0, 1000))
def test_oversample_reaches_target_train_only_deterministic(counts, ratio, seed):
    df = expand(single(counts, groups=6))
    out = oversample(df, ratio, seed=seed)
    for f in (0, 1):
        before = df[(df.fold == f) & (df.subset == 'train')]
        tr = out[(out.fold == f) & (out.subset == 'train')]
        if len(before) == 0: continue
        space = LabelSpace.from_manifest(df)
        plan = plan_balance(before, ratio, space)
        got = class_counts(tr, space)
        for c in plan.index:
            if plan.loc[c, 'count'] > 0: assert got[c] == plan.loc[c, 'target']      # exactly reached (single-label)
            else: assert got[c] == 0                                               # nothing to duplicate
        # added rows are copies of this fold's train rows: same groups, never a test group
        added = tr[tr.balance_source == 'oversample']
        assert set(added['path']) <= set(before['path'])
        assert not set(added['group']) & set(df[(df.fold == f) & (df.subset == 'test')]['group'])
    assert out[out.subset == 'test'].drop(columns='balance_source').reset_index(drop=True).equals(df[df.subset == 'test'].reset_index(drop=True))
    assert out.equals(oversample(df, ratio, seed=seed))


@settings(max_examples=30, deadline=None)
@given(flags=st.lists(st.lists(st.integers(0, 1), min_size=3, max_size=3), min_size=6, max_size=40), ratio=st.sampled_from([0.5, 1.0]),
       seed=st.integers(0, 100))
def test_oversample_multilabel_reaches_target(flags, ratio, seed):
    df = multi(flags)
    out = oversample(df, ratio, seed=seed, train_only=False)
    plan = plan_balance(df, ratio)
    got = class_counts(out)
    for c in plan.index:
        if plan.loc[c, 'count'] > 0: assert got[c] >= plan.loc[c, 'target']
    assert np.isfinite(sample_weights(out)).all() and (sample_weights(out) > 0).all()
    assert (pos_weights(out) > 0).all()


@settings(max_examples=25, deadline=None)
@given(counts=counts_st, ratio=st.sampled_from([0, 0.25, 0.5, 1.0]), seed=st.integers(0, 1000))
def test_mix_synthetic_by_ratio(counts, ratio, seed):
    df = expand(single(counts, groups=6))
    syn = validate_manifest(pd.DataFrame({'path': [f'/gen/{c}{i}.wav' for c in CLASSES for i in range(80)],
                                          'label': [c for c in CLASSES for _ in range(80)],
                                          'group': [f'gen{i % 7}' for _ in CLASSES for i in range(80)], 'synthetic': True}))
    syn = syn[syn.label.isin(classes_of(df))]
    out = mix_synthetic(df, syn, ratio, seed=seed)
    classes, space = classes_of(df), LabelSpace.from_manifest(df)
    for f in (0, 1):
        tr = out[(out.fold == f) & (out.subset == 'train')]
        real = class_counts(tr[~tr.synthetic], space)
        fake = class_counts(tr[tr.synthetic], space)
        for c in classes:
            minority = 0 < real[c] < real.max()
            assert fake[c] == (math.floor(ratio * real[c] + 0.5) if minority else 0)
    assert not out[out.subset != 'train'].synthetic.any()
    assert out.equals(mix_synthetic(df, syn, ratio, seed=seed))


def test_train_only_is_enforced():
    df = single([30, 5, 2, 0])
    with pytest.raises(BalanceError, match="subset='train'"): oversample(df, 1.0)
    with pytest.raises(BalanceError, match="subset='train'"): oversample(df.assign(subset='test', fold=0), 1.0)
    syn = df.assign(synthetic=True, group='gen')
    with pytest.raises(BalanceError, match="refusing subset='val'"): mix_synthetic(expand(df), syn, 0.5, subset='val')
    with pytest.raises(BalanceError, match='leak'): mix_synthetic(expand(df), df.assign(synthetic=True), 0.5)
    with pytest.raises(BalanceError, match='training rows'): make_sampler(expand(df))
    with pytest.raises(ConfigError, match='ratio'): mix_synthetic(expand(df), syn, -1)


def test_subdbs_are_balanced_separately():
    a = expand(single([30, 6, 0, 0], groups=6, seed=0)).assign(subdb='A')
    b = expand(single([4, 20, 0, 0], groups=6, seed=1)).assign(subdb='B', path=lambda d: d['path'].str.replace('/x/', '/y/'))
    out = oversample(pd.concat([a, b], ignore_index=True), 1.0, seed=0)
    for sd, part in out[out.subset == 'train'].groupby(['subdb', 'fold']):
        assert class_counts(part, LabelSpace(classes=('a', 'b'))).nunique() == 1, sd
    dup = out[out.balance_source == 'oversample']
    assert dup[dup.subdb == 'A']['path'].str.startswith('/x/').all() and dup[dup.subdb == 'B']['path'].str.startswith('/y/').all()


def test_sampler_balances_and_is_seeded():
    df = single([200, 20, 5, 0])
    s = make_sampler(df, seed=3, num_samples=6000)
    idx = list(s)
    drawn = df['label'].iloc[idx].value_counts()
    assert all(1700 < drawn[c] < 2300 for c in 'abc')
    assert idx == list(make_sampler(df, seed=3, num_samples=6000))
    assert idx != list(make_sampler(df, seed=4, num_samples=6000))
    torch.manual_seed(0); a = list(make_sampler(df, seed=3, num_samples=100))
    torch.manual_seed(1); b = list(make_sampler(df, seed=3, num_samples=100))
    assert a == b                                                        # the global RNG does not matter


def test_group_round_robin():
    df = validate_manifest(pd.DataFrame({'path': [f'/x/{i}.wav' for i in range(13)], 'label': ['a'] * 10 + ['b'] * 3,
                                         'group': ['g0'] * 8 + ['g1'] * 2 + ['h0', 'h1', 'h2']}))
    new = add_train_rows(df, df, {'b': 7}, seed=0)
    assert new['group'].value_counts().to_dict() in ({'h0': 3, 'h1': 2, 'h2': 2}, {'h0': 2, 'h1': 3, 'h2': 2}, {'h0': 2, 'h1': 2, 'h2': 3})
    new_a = add_train_rows(df, df, {'a': 4}, seed=0)
    assert new_a['group'].value_counts().to_dict() == {'g0': 2, 'g1': 2}   # the small patient is not swamped by the big one


# ---------------------------------------------------------------- one target-count calculation
def test_samples_needed_one_answer_with_ceil():
    "The input on which analysis.samples_needed said 7 and balance.plan_balance said 6: 0.55 x 100 is 55, so 6."
    from audiokit.analysis import summarize
    counts = pd.Series({'a': 100, 'b': 49})
    assert samples_needed(counts, 0.55) == {'a': 0, 'b': 6}
    df = single([100, 49, 0, 0])
    assert plan_balance(df, 0.55).loc['b', 'needed'] == 6
    assert summarize(df, 0.55)['samples_needed']['needed']['b'] == 6                 # was 7
    assert samples_needed({'a': 10, 'b': 3}, 0.65) == {'a': 0, 'b': 4}                 # ceil(6.5) = 7: the target is reached
    assert samples_needed({'a': 5, 'b': 5}) == {'a': 0, 'b': 0} and samples_needed({}) == {}
    with pytest.raises(ConfigError, match='target_ratio'): samples_needed(counts, 1.2)
    with pytest.raises(BalanceError, match='not a manifest'): samples_needed(df)
    with pytest.raises(BalanceError, match='whole numbers'): samples_needed({'a': -1, 'b': 2})


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(0, 500), min_size=1, max_size=6), ratio=st.floats(0.0, 1.0))
def test_samples_needed_reaches_and_not_beyond(counts, ratio):
    c = pd.Series(counts, index=[f'c{i}' for i in range(len(counts))])
    need = samples_needed(c, ratio)
    top = max(counts)
    for k, n in need.items():
        assert n >= 0 and c[k] + n >= ratio * top - 1e-6                 # reached
        assert n == 0 or c[k] + n - 1 < ratio * top                        # not one more than needed
    assert need[c.idxmax()] == 0


# ---------------------------------------------------------------- BalanceConfig: every option acts
@pytest.fixture
def fold():
    df = expand(single([40, 10, 4, 0], groups=6))
    tr = df[(df.fold == 0) & (df.subset == 'train')]
    held = df.loc[(df.fold == 0) & (df.subset != 'train'), 'group'].unique()
    syn = validate_manifest(pd.DataFrame({'path': [f'/gen/{i}.wav' for i in range(30)], 'label': ['b'] * 15 + ['c'] * 15,
                                          'group': 'gen', 'synthetic': True}))
    return df, tr, held, syn, LabelSpace.from_manifest(df)


def test_method_none_changes_nothing(fold):
    df, tr, held, syn, space = fold
    cfg = BalanceConfig(loss_weights='none')
    assert apply_balance(tr, cfg, space).equals(tr) and sampler_weights(tr, cfg, space) is None and loss_weights(tr, cfg, space) is None
    assert apply_balance(tr, BalanceConfig(), space).equals(tr)               # the default weights the loss only


def test_method_oversample_and_target_ratio(fold):
    df, tr, held, syn, space = fold
    before = space.counts(tr)
    full = apply_balance(tr, BalanceConfig(method='oversample'), space, seed=1)
    half = apply_balance(tr, BalanceConfig(method='oversample', target_ratio=0.5), space, seed=1)
    present = before[before > 0].index
    assert space.counts(full)[present].nunique() == 1 and space.classes == ('a', 'b', 'c')
    assert (space.counts(half) - before)[present].to_dict() == samples_needed(before[present], 0.5)
    assert not half.equals(full) and full.equals(apply_balance(tr, BalanceConfig(method='oversample'), space, seed=1))
    assert not full.equals(apply_balance(tr, BalanceConfig(method='oversample'), space, seed=2))
    assert set(full.loc[full.balance_source == 'oversample', 'path']) <= set(tr['path'])
    with pytest.raises(BalanceError, match='val/test rows'): apply_balance(df, BalanceConfig(method='oversample'), space)


def test_synthetic_ratio(fold):
    df, tr, held, syn, space = fold
    out = apply_balance(tr, BalanceConfig(synthetic_ratio=0.5), space, syn, seed=0, held_out_groups=held)
    before = space.counts(tr)
    expect = {'a': 0, 'b': math.floor(0.5 * before['b'] + 0.5), 'c': math.floor(0.5 * before['c'] + 0.5)}
    assert space.counts(out[out.synthetic]).to_dict() == expect
    both = apply_balance(tr, BalanceConfig(method='oversample', synthetic_ratio=0.5), space, syn, seed=0)
    assert both.synthetic.sum() > 0 and (both.balance_source == 'oversample').sum() > 0
    assert not both[both.balance_source == 'oversample'].synthetic.any()          # oversampling copies real rows
    with pytest.raises(BalanceError, match='needs a synthetic manifest'): apply_balance(tr, BalanceConfig(synthetic_ratio=0.5), space)
    # synthetic rows made from a held-out (val/test) patient are never drawn for this fold
    leaky = syn.assign(group=held[0])
    with pytest.raises(BalanceError, match='pool has none'):
        apply_balance(tr, BalanceConfig(synthetic_ratio=0.5), space, leaky, held_out_groups=held)


def test_weighted_sampler_and_its_scheme(fold):
    df, tr, held, syn, space = fold
    w = sampler_weights(tr, BalanceConfig(method='weighted_sampler'), space)
    assert w.dtype == torch.float64 and w.shape == (len(tr),)
    per_class = pd.Series(w.numpy()).groupby(tr['label'].to_numpy()).sum()
    assert per_class.max() / per_class.min() < 1 + 1e-6                          # inverse: every class the same total weight
    ws = sampler_weights(tr, BalanceConfig(method='weighted_sampler', sampler_weights='sqrt_inverse'), space)
    we = sampler_weights(tr, BalanceConfig(method='weighted_sampler', sampler_weights='effective', beta=0.9), space)
    assert not torch.allclose(w, ws) and not torch.allclose(w, we)
    assert sampler_weights(tr, BalanceConfig(method='oversample'), space) is None
    with pytest.raises(BalanceError, match='val/test rows'): sampler_weights(df, BalanceConfig(method='weighted_sampler'), space)


def test_loss_weights_and_pos_weight(fold):
    df, tr, held, syn, space = fold
    counts = space.counts(tr)
    for m in ('inverse', 'sqrt_inverse', 'effective'):
        assert torch.equal(loss_weights(tr, BalanceConfig(loss_weights=m), space), class_weights(counts, m))
    assert torch.equal(loss_weights(tr, BalanceConfig(), space), class_weights(counts, 'inverse'))           # the default
    assert not torch.allclose(loss_weights(tr, BalanceConfig(loss_weights='effective', beta=0.9), space),
                              loss_weights(tr, BalanceConfig(loss_weights='effective'), space))
    with pytest.raises(BalanceError, match='val/test rows'): loss_weights(df, BalanceConfig(), space)
    ml = multi([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 1], [0, 0, 0]])
    mls = LabelSpace.from_manifest(ml)
    pw = loss_weights(ml, BalanceConfig(), mls)
    assert torch.allclose(pw, torch.tensor([2 / 3, 4 / 1, 4 / 1])) and torch.equal(pw, pos_weights(ml, mls))   # negatives / positives
    assert torch.allclose(loss_weights(ml, BalanceConfig(loss_weights='sqrt_inverse'), mls), pw.sqrt())
    with pytest.raises(BalanceError, match='single-label'): loss_weights(ml, BalanceConfig(loss_weights='effective'), mls)


def test_config_refuses_settings_that_would_not_act():
    with pytest.raises(ConfigError, match="only acts with method='oversample'"): BalanceConfig(target_ratio=0.5)
    with pytest.raises(ConfigError, match="only acts with method='weighted_sampler'"): BalanceConfig(sampler_weights='sqrt_inverse')
    with pytest.raises(ConfigError, match="'effective' scheme"): BalanceConfig(beta=0.9)
    with pytest.raises(ConfigError, match="'effective' scheme"): BalanceConfig(method='weighted_sampler', beta=0.9)
    with pytest.raises(ConfigError, match='is not one of'): BalanceConfig(method='class_weights')
    with pytest.raises(ConfigError, match='unknown setting'): BalanceConfig.from_dict({'ratio': 1})
    cfg = BalanceConfig(method='weighted_sampler', sampler_weights='effective', beta=0.99, loss_weights='sqrt_inverse', synthetic_ratio=0.5)
    assert BalanceConfig.from_dict(cfg.to_dict()) == cfg


def test_cli_plan_oversample_mix(tmp_path, capsys):
    from audiokit.cli import main
    df = expand(single([40, 10, 4, 0], groups=6))
    man = write_manifest(df, tmp_path / 'm.csv')
    syn = validate_manifest(pd.DataFrame({'path': [f'/gen/{i}.wav' for i in range(30)], 'label': ['b'] * 15 + ['c'] * 15,
                                          'group': 'gen', 'synthetic': True}))
    synp = write_manifest(syn, tmp_path / 's.csv')
    out = tmp_path / 'o.csv'
    # one run as a user runs it (subprocess of the installed command), the rest in-process (the machine is shared)
    r = subprocess.run([sys.executable, '-m', 'audiokit.cli', 'balance', 'oversample', str(man), '--out', str(out), '--seed', '1'],
                       capture_output=True, text=True)
    assert r.returncode == 0 and 'wrote' in r.stdout, r.stderr
    back = read_manifest(out)
    tr = back[(back.fold == 0) & (back.subset == 'train')]
    assert class_counts(tr).loc[['a', 'b', 'c']].nunique() == 1
    assert main(['balance', 'plan', str(man), '--target-ratio', '0.5']) == 0
    assert 'fold 0' in capsys.readouterr().out
    assert main(['balance', 'oversample', str(man), '--out', str(out)]) == 1
    assert 'overwrite' in capsys.readouterr().err
    assert main(['balance', 'mix', str(man), '--synthetic', str(synp), '--ratio', '0.5', '--out', str(tmp_path / 'mx.csv')]) == 0
    assert read_manifest(tmp_path / 'mx.csv').synthetic.sum() > 0
    flat = write_manifest(single([5, 2, 0, 0]), tmp_path / 'flat.csv')
    assert main(['balance', 'oversample', str(flat), '--out', str(tmp_path / 'f.csv')]) == 1
    assert "subset='train'" in capsys.readouterr().err
