"""Patient-grouped folds and the leakage audit: planted leaks, hypothesis property tests, and the CLI as a user runs it."""
import subprocess, sys, json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hypothesis import given, settings, HealthCheck, strategies as st

from audiokit.core import find_shared_data
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_validate

from audiokit.splits import (SplitError, LeakageError, PatientGroupKFold, assign_folds, expand_folds, audit_splits, content_hash,
                             write_splits)

def run(*args, cwd=None):
    return subprocess.run([sys.executable, '-m', 'audiokit.cli', *args], capture_output=True, text=True, cwd=cwd)

def table(n_groups, rows_per_group, classes, seed, subdbs=1, multilabel=False):
    "A random manifest-like table: each group has its own label (or label set) and 1..rows_per_group rows."
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        lab = classes[g % len(classes)] if not multilabel else None
        flags = rng.integers(0, 2, len(classes)) if multilabel else None
        for r in range(int(rng.integers(1, rows_per_group + 1))):
            row = {'path': f'/nonexistent/g{g}_{r}.wav', 'start': np.nan, 'end': np.nan, 'group': f'p{g:03d}',
                   'subdb': f'sd{g % subdbs}', 'fold': -1, 'subset': '', 'synthetic': False}
            if multilabel:
                for c, v in zip(classes, flags): row[f'label_{c}'] = int(v)
                row['label'] = '+'.join(c for c, v in zip(classes, flags) if v) or 'none'
            else: row['label'] = lab
            rows.append(row)
    return pd.DataFrame(rows)

# ---------------------------------------------------------------- property tests
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_groups=st.integers(10, 60), rpg=st.integers(1, 5), n_classes=st.integers(2, 4), k=st.integers(2, 5),
       subdbs=st.integers(1, 2), seed=st.integers(0, 10_000), val=st.sampled_from([0.0, 0.15, 0.3]))
def test_folds_are_group_disjoint_and_cover_every_group(n_groups, rpg, n_classes, k, subdbs, seed, val):
    n_groups = max(n_groups, k * n_classes * subdbs)     # every class has >= k groups in every sub-database
    df = table(n_groups, rpg, [f'c{i}' for i in range(n_classes)], seed, subdbs)
    folds = assign_folds(df, k=k, seed=seed, min_classes=1)
    assert (folds.fold >= 0).all() and folds.groupby('group').fold.nunique().max() == 1
    for sd, part in folds.groupby('subdb'):
        assert sorted(part.fold.unique()) == list(range(k))           # no empty fold
    exp = expand_folds(folds, val_fraction=val, seed=seed)
    # every group is in exactly one test fold of its sub-database, and never in two subsets of one fold
    tests = exp[exp.subset == 'test'].groupby('group').fold.nunique()
    assert set(tests.index) == set(df.group) and (tests == 1).all()
    assert exp.groupby(['subdb', 'fold', 'group']).subset.nunique().max() == 1
    assert len(exp) == k * len(df)
    if val == 0: assert (exp.subset != 'val').all()
    assert audit_splits(exp, check_audio=False).ok and audit_splits(folds, check_audio=False).ok

@settings(max_examples=15, deadline=None)
@given(n_groups=st.integers(40, 100), n_classes=st.integers(2, 4), seed=st.integers(0, 10_000))
def test_class_proportions_are_roughly_kept(n_groups, n_classes, seed):
    df = table(n_groups, 3, [f'c{i}' for i in range(n_classes)], seed)
    folds = assign_folds(df, k=5, seed=seed)
    overall = df.label.value_counts(normalize=True)
    share = pd.crosstab(folds.fold, folds.label, normalize='index')
    assert (share - overall[share.columns]).abs().max().max() < 0.2

@settings(max_examples=15, deadline=None)
@given(n_groups=st.integers(30, 80), seed=st.integers(0, 10_000))
def test_multilabel_folds_group_disjoint_and_balanced(n_groups, seed):
    df = table(n_groups, 4, ['AS', 'AR', 'MR'], seed, multilabel=True)
    folds = assign_folds(df, k=5, seed=seed, min_classes=1)
    assert folds.groupby('group').fold.nunique().max() == 1 and folds.fold.nunique() == 5
    g = folds.drop_duplicates('group')
    overall = g[['label_AS', 'label_AR', 'label_MR']].mean()
    per = g.groupby('fold')[['label_AS', 'label_AR', 'label_MR']].mean()
    # iterative stratification at group level; one group moves a fold's share by 5/n_groups, so allow two of those
    assert (per - overall).abs().max().max() < max(0.3, 2 * 5 / n_groups)
    assert audit_splits(expand_folds(folds, 0.15, seed), check_audio=False).ok

# ---------------------------------------------------------------- the splitter as a scikit-learn cross-validator
def xy(n_groups=40, seed=0, multilabel=False):
    df = table(n_groups, 4, ['a', 'b', 'c'], seed, multilabel=multilabel)
    X = np.random.default_rng(seed).standard_normal((len(df), 3))
    y = df[['label_a', 'label_b', 'label_c']].to_numpy() if multilabel else df['label'].to_numpy()
    return X, y, df['group'].to_numpy()

@settings(max_examples=15, deadline=None)
@given(n_groups=st.integers(20, 80), k=st.integers(2, 6), seed=st.integers(0, 10_000), shuffle=st.booleans())
def test_patient_group_kfold_groups_never_cross(n_groups, k, seed, shuffle):
    X, y, g = xy(n_groups, seed)
    cv = PatientGroupKFold(k, shuffle=shuffle, random_state=seed if shuffle else None)
    parts = list(cv.split(X, y, g))
    assert len(parts) == cv.get_n_splits() == k
    for tr, te in parts:
        assert not set(g[tr]) & set(g[te]) and len(te) > 0
        assert sorted(np.concatenate([tr, te]).tolist()) == list(range(len(X)))
    assert sorted(np.concatenate([te for _, te in parts]).tolist()) == list(range(len(X)))   # each row tested once
    again = list(cv.split(X, y, g))
    assert all((a[1] == b[1]).all() for a, b in zip(parts, again))                            # deterministic

def test_patient_group_kfold_keeps_class_proportions():
    X, y, g = xy(90, seed=3)
    whole = pd.Series(y).value_counts(normalize=True)
    for tr, te in PatientGroupKFold(5, shuffle=True, random_state=0).split(X, y, g):
        share = pd.Series(y[te]).value_counts(normalize=True).reindex(whole.index, fill_value=0)
        assert (share - whole).abs().max() < 0.1

def test_patient_group_kfold_inside_sklearn():
    X, y, g = xy(40, seed=1)
    cv = PatientGroupKFold(4, shuffle=True, random_state=0)
    res = cross_validate(DummyClassifier(strategy='prior'), X, y, groups=g, cv=cv, return_indices=True)
    assert len(res['test_score']) == 4
    for tr, te in zip(res['indices']['train'], res['indices']['test']): assert not set(g[tr]) & set(g[te])
    gs = GridSearchCV(LogisticRegression(max_iter=100), {'C': [0.1, 1.0]}, cv=cv).fit(X, y, groups=g)
    assert gs.n_splits_ == 4 and 'split3_test_score' in gs.cv_results_
    Xm, ym, gm = xy(40, seed=2, multilabel=True)
    res = cross_validate(DummyClassifier(strategy='prior'), Xm, ym, groups=gm, cv=cv)
    assert len(res['test_score']) == 4

def test_patient_group_kfold_multilabel():
    X, y, g = xy(60, seed=5, multilabel=True)
    parts = list(PatientGroupKFold(5, shuffle=True, random_state=1).split(X, y, g))
    per_group = pd.DataFrame(y).groupby(g).max()                  # stratified by group: each group's label set
    whole = per_group.mean()
    for tr, te in parts:
        assert not set(g[tr]) & set(g[te])
        assert (per_group.loc[np.unique(g[te])].mean() - whole).abs().max() < 0.2
    with pytest.raises(SplitError, match='0/1 flags'): next(PatientGroupKFold(5).split(X, y * 2, g))

def test_patient_group_kfold_errors():
    X, y, g = xy(40)
    with pytest.raises(SplitError, match='3 group\\(s\\), fewer than k=5'): next(PatientGroupKFold(5).split(X, y, np.arange(len(X)) % 3))
    rare = y.copy(); rare[g == g[0]] = 'z'
    with pytest.raises(SplitError, match="'z' in 1 group"): next(PatientGroupKFold(5).split(X, rare, g))
    assert len(list(PatientGroupKFold(5, allow_rare=True).split(X, rare, g))) == 5
    with pytest.raises(SplitError, match='needs groups'): next(PatientGroupKFold(5).split(X, y))
    with pytest.raises(SplitError, match='pass y'): next(PatientGroupKFold(5).split(X, None, g))
    with pytest.raises(SplitError, match='n_splits'): PatientGroupKFold(1)
    with pytest.raises(SplitError, match='random_state has no effect'): PatientGroupKFold(3, random_state=0)
    with pytest.raises(ValueError): PatientGroupKFold(0)                    # SplitError is a ValueError, as sklearn users expect

def test_assign_folds_uses_the_splitter():
    df = table(30, 3, ['a', 'b', 'c'], 7)
    folds = assign_folds(df, k=5, seed=4)
    for f, (_, te) in enumerate(PatientGroupKFold(5, shuffle=True, random_state=4).split(df, df['label'], df['group'])):
        assert (folds['fold'].to_numpy()[te] == f).all()

# ---------------------------------------------------------------- errors
def test_clear_errors():
    df = table(3, 2, ['a', 'b'], 0)
    with pytest.raises(SplitError, match='3 group\\(s\\), fewer than k=5'): assign_folds(df, k=5)
    one = table(10, 2, ['a'], 0).assign(label=lambda d: np.where(d.group == 'p000', 'b', 'a'))
    with pytest.raises(SplitError, match="class\\(es\\) 'b' in 1 group\\(s\\): fewer than k=5 folds"): assign_folds(one, k=5)
    with pytest.raises(SplitError, match='holds only class'): assign_folds(one, k=5, allow_rare=True)
    with pytest.raises(SplitError, match='run assign_folds first'): expand_folds(table(10, 2, ['a', 'b'], 0))
    with pytest.raises(SplitError, match="no 'group' column"): audit_splits(pd.DataFrame({'fold': [0]}))

def test_predefined_folds_are_kept():
    df = table(10, 2, ['a', 'b'], 0)
    df['fold'] = df.group.str[1:].astype(int) % 3 + 1
    out = assign_folds(df, k=5)
    assert out.fold.tolist() == df.fold.tolist()
    bad = df.copy(); bad.loc[0, 'fold'] = 3 if bad.loc[0, 'fold'] != 3 else 2
    with pytest.raises(SplitError, match='more than one fold'): assign_folds(bad)

# ---------------------------------------------------------------- planted leaks
@pytest.fixture
def audio_table(tmp_path):
    "Expanded splits over real wav files (one per row), all distinct."
    df = table(20, 2, ['a', 'b'], 1)
    rng = np.random.default_rng(0)
    for i in range(len(df)):
        p = tmp_path / f'clip{i}.wav'; sf.write(p, rng.standard_normal(400).astype('float32') * 0.1, 4000)
        df.loc[i, 'path'] = str(p)
    return expand_folds(assign_folds(df, k=4, seed=0), 0.2, seed=0)

def test_clean_splits_pass(audio_table):
    rep = audit_splits(audio_table)
    assert rep.ok and not rep.warnings and rep.n_folds == 4

def test_group_leak_is_caught(audio_table):
    leaky = audio_table.copy()
    te = leaky[(leaky.fold == 1) & (leaky.subset == 'test')]
    i = te.index[te.group.duplicated(keep=False)][0]      # a test patient with two rows: move one to val
    leaky.loc[i, 'subset'] = 'val'
    rep = audit_splits(leaky)
    assert rep.kinds() == {'group_leak'} and rep.problems[0]['groups'] == [leaky.loc[i, 'group']] and i in rep.problems[0]['rows']
    with pytest.raises(LeakageError, match=leaky.loc[i, 'group']): audit_splits(leaky, raise_on_leak=True)

def test_duplicate_audio_is_caught_even_across_groups(audio_table, tmp_path):
    d = audio_table.copy()
    te = d.index[(d.fold == 0) & (d.subset == 'test')][0]
    tr = d.index[(d.fold == 0) & (d.subset == 'train')][0]
    copy = tmp_path / 'renamed_copy.wav'; copy.write_bytes(Path(d.loc[te, 'path']).read_bytes())
    d.loc[tr, 'path'] = str(copy)
    rep = audit_splits(d)
    assert rep.kinds() == {'duplicate_audio'} and {te, tr} <= set(rep.problems[0]['rows'])

def test_duplicate_segment_is_caught(tmp_path):
    "Segments are hashed by their decoded samples: the same seconds of two byte-different files match."
    rng = np.random.default_rng(0)
    x = rng.standard_normal(8000).astype('float32') * 0.1
    sf.write(tmp_path / 'a.wav', x, 4000, subtype='FLOAT')
    y = x.copy(); y[6000:] = 0
    sf.write(tmp_path / 'b.wav', y, 4000, subtype='FLOAT')
    assert content_hash(tmp_path / 'a.wav') != content_hash(tmp_path / 'b.wav')
    assert content_hash(tmp_path / 'a.wav', 0.0, 1.0) == content_hash(tmp_path / 'b.wav', 0.0, 1.0)
    df = pd.DataFrame({'path': [str(tmp_path / 'a.wav'), str(tmp_path / 'b.wav')], 'start': [0.0, 0.0], 'end': [1.0, 1.0],
                       'group': ['p1', 'p2'], 'fold': [0, 0], 'subset': ['train', 'test']})
    assert audit_splits(df).kinds() == {'duplicate_audio'}
    assert audit_splits(df.assign(end=[1.0, 2.0])).ok

def test_synthetic_in_test_is_caught(audio_table):
    d = audio_table.copy()
    i = d.index[(d.fold == 2) & (d.subset == 'test')][0]
    d.loc[i, 'synthetic'] = True
    rep = audit_splits(d, check_audio=False)
    assert rep.kinds() == {'synthetic_in_eval'} and rep.problems[0]['rows'] == [i]
    j = d.index[(d.fold == 2) & (d.subset == 'train')][0]
    assert audit_splits(audio_table.assign(synthetic=audio_table.index == j), check_audio=False).ok

def test_unreadable_audio_fails_the_audit(audio_table, tmp_path):
    "A split whose files cannot be read cannot be certified leak-free: an error naming the file (it was a warning)."
    gone = audio_table['path'].iloc[0]
    Path(gone).unlink()
    rep = audit_splits(audio_table)
    assert not rep.ok and rep.kinds() == {'unreadable_audio'} and rep.problems[0]['files'] == [gone]
    assert gone in str(rep) and 'not certified' in str(rep) and not rep.leaks
    with pytest.raises(LeakageError, match='could not be read'): audit_splits(audio_table, raise_on_leak=True)
    assert audit_splits(audio_table, check_audio=False).ok
    # a row outside the split (no fold, no subset) is not part of what is certified
    extra = pd.concat([audio_table.assign(path=audio_table['path'].where(audio_table['path'] != gone, str(tmp_path / 'clip1.wav'))),
                       pd.DataFrame({'path': [gone], 'group': ['p999'], 'fold': [-1], 'subset': ['']})], ignore_index=True)
    assert audit_splits(extra).kinds() <= {'duplicate_audio'}
    csv = tmp_path / 'split.csv'; audio_table.to_csv(csv, index=False)
    r = run('audit', str(csv))
    assert r.returncode == 1 and gone in r.stderr and 'UNREADABLE' in r.stderr

# ---------------------------------------------------------------- CLI
def test_cli_audit_hand_made_csv(tmp_path):
    csv = tmp_path / 'my_split.csv'
    csv.write_text('path,group,fold,subset\na.wav,P1,0,train\nb.wav,P2,0,test\nc.wav,P1,1,test\nd.wav,P2,1,train\n')
    r = run('audit', str(csv), '--no-audio')
    assert r.returncode == 0, r.stderr
    assert 'clean' in r.stdout
    csv.write_text('path,group,fold,subset\na.wav,P1,0,train\nb.wav,P2,0,test\nc.wav,P1,0,test\n')
    r = run('audit', str(csv), '--no-audio', '--out', str(tmp_path / 'rep.json'))
    assert r.returncode == 2 and "group 'P1'" in r.stderr and 'rows 2' in r.stderr and 'rows 0' in r.stderr
    assert json.loads((tmp_path / 'rep.json').read_text())['ok'] is False
    r = run('audit', str(csv), '--no-audio', '--out', str(tmp_path / 'rep.json'))
    assert r.returncode == 1 and 'overwrite' in r.stderr
    assert run('audit', str(csv), '--no-audio', '--out', str(tmp_path / 'rep.json'), '--overwrite').returncode == 2
    r = run('audit', str(tmp_path / 'missing.csv'))
    assert r.returncode == 1 and 'file not found' in r.stderr

def test_cli_audit_finds_relative_duplicate_files(tmp_path):
    x = np.random.default_rng(0).standard_normal(400).astype('float32') * 0.1
    sf.write(tmp_path / 'a.wav', x, 4000); sf.write(tmp_path / 'b.wav', x, 4000)
    csv = tmp_path / 's.csv'
    csv.write_text('path,group,fold,subset\na.wav,P1,0,train\nb.wav,P2,0,test\n')
    r = run('audit', str(csv))
    assert r.returncode == 2 and 'identical audio' in r.stderr

def test_cli_splits(tmp_path):
    from audiokit.manifest import write_manifest
    df = table(30, 3, ['a', 'b', 'c'], 3, subdbs=2)
    rng = np.random.default_rng(1)
    for i in range(len(df)):
        p = tmp_path / 'audio' / f'{i}.wav'; p.parent.mkdir(exist_ok=True)
        sf.write(p, rng.standard_normal(200).astype('float32') * 0.1, 4000); df.loc[i, 'path'] = str(p)
    man = write_manifest(df.assign(dataset='toy'), tmp_path / 'manifest.csv')
    out = tmp_path / 'splits'
    r = run('splits', str(man), '--k', '5', '--val-fraction', '0.15', '--seed', '0', '--out', str(out))
    assert r.returncode == 0, r.stderr
    files = sorted(p.name for p in out.iterdir())
    assert {'folds.csv', 'splits_combined.csv', 'audit.json', 'sd0_fold0.csv', 'sd1_fold4.csv'} <= set(files)
    assert len([f for f in files if '_fold' in f]) == 10
    comb = pd.read_csv(out / 'splits_combined.csv')
    assert set(comb.subset) == {'train', 'val', 'test'} and len(comb) == 5 * len(df)
    assert run('audit', str(out / 'splits_combined.csv')).returncode == 0
    r2 = run('splits', str(man), '--out', str(out))
    assert r2.returncode == 1 and 'overwrite' in r2.stderr
    assert run('splits', str(man), '--out', str(out), '--overwrite', '--seed', '1').returncode == 0
    small = write_manifest(df[df.group.isin(['p000', 'p001'])].assign(dataset='toy'), tmp_path / 'small.csv')
    r3 = run('splits', str(small), '--out', str(tmp_path / 's2'))
    assert r3.returncode == 1 and 'fewer than k=5' in r3.stderr

def test_bmdhs_multilabel_patient_folds():
    root = find_shared_data('bmd_hs')
    if root is None: pytest.skip('../shared/data/bmd_hs not present')
    from audiokit.datasets import build_bmdhs
    m = build_bmdhs(root).manifest
    exp = expand_folds(assign_folds(m, k=5, seed=0), 0.15, seed=0)
    assert audit_splits(exp, check_audio=False).ok
    assert exp[exp.subset == 'test'].groupby('group').fold.nunique().max() == 1
