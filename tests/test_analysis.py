"""`audiokit analyze` run as a user runs it (subprocess), on generated fixtures and on ESC-10 when present; samples_needed properties."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import audiokit.analysis as analysis
from audiokit.analysis import class_table, summarize
from audiokit.balance import plan_balance, samples_needed
from audiokit.labels import LabelSpace
from audiokit.core import find_shared_data
from audiokit.datasets import IMBALMED_COMBINED
from audiokit.fixtures import make_bmdhs_fixture, make_esc50_fixture, make_icbhi_fixture, make_imbalmed_fixture


def run(*args, cwd=None):
    return subprocess.run([sys.executable, '-m', 'audiokit.cli', *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_analyze_esc50_writes_files_and_refuses_overwrite(tmp_path):
    root = make_esc50_fixture(tmp_path / 'esc50', per_class=5)
    out = tmp_path / 'out'
    r = run('analyze', root, '--format', 'esc50', '--out', out)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s['overall']['counts'] == {'cat': 5, 'dog': 5, 'rain': 5, 'rooster': 5} and s['overall']['imbalance_ratio'] == 1.0
    for f in ('analysis.json', 'class_bars.png', 'fold_heatmap.png', 'manifest.csv', 'dropped.csv', 'build_report.json'):
        assert (out / f).stat().st_size > 0
    assert json.loads((out / 'analysis.json').read_text())['overall'] == s['overall']
    r2 = run('analyze', root, '--format', 'esc50', '--out', out)
    assert r2.returncode == 1 and 'overwrite' in r2.stderr
    assert run('analyze', root, '--format', 'esc10', '--out', out, '--overwrite').returncode == 0
    assert json.loads((out / 'analysis.json').read_text())['rows'] == 10


def test_analyze_icbhi_and_bmdhs(tmp_path):
    make_icbhi_fixture(tmp_path / 'icbhi', patients=4, recordings=2, cycles=5)
    r = run('analyze', tmp_path / 'icbhi', '--format', 'icbhi', '--target-ratio', '0.5')
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    c = s['overall']['counts']
    assert sum(c.values()) == 40 and s['samples_needed']['target_ratio'] == 0.5
    assert s['samples_needed']['needed'] == {k: max(0, -(-max(c.values()) // 2) - v) for k, v in c.items()}
    r = run('analyze', make_bmdhs_fixture(tmp_path / 'bmd'), '--format', 'bmdhs')
    s = json.loads(r.stdout)
    assert r.returncode == 0 and s['multilabel'] and s['build']['dropped'] == 10 and len(s['build']['unlabelled_files']) == 9


def test_analyze_imbalmed_overwrite_rebuilds(tmp_path):
    make_imbalmed_fixture(tmp_path / 'mp', patients=20, n_subdbs=2, folds=3)
    out = tmp_path / 'out'
    r = run('analyze', tmp_path / 'mp', '--format', 'imbalmed', '--out', out)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s['fold_form'] == 'expanded' and set(s['per_subdb']) == {'subdb1', 'subdb2'}
    assert sorted(p.name for p in (out / 'combined').iterdir()) == ['audio_imbalmed_subdb1_combined.csv', 'audio_imbalmed_subdb2_combined.csv']
    assert run('analyze', tmp_path / 'mp', '--format', 'imbalmed', '--out', out).returncode == 1
    assert run('analyze', tmp_path / 'mp', '--format', 'imbalmed', '--out', out, '--overwrite').returncode == 0
    # without --out: the combined CSVs go to their place in the IMBALMED tree
    assert run('analyze', tmp_path / 'mp', '--format', 'imbalmed').returncode == 0
    assert (tmp_path / 'mp' / IMBALMED_COMBINED / 'audio_imbalmed_subdb1_combined.csv').exists()


def test_analyze_csv_and_errors(tmp_path):
    make_esc50_fixture(tmp_path, per_class=4)
    meta = pd.read_csv(tmp_path / 'meta' / 'esc50.csv')
    meta.assign(file='audio/' + meta['filename']).to_csv(tmp_path / 'list.csv', index=False)
    r = run('analyze', tmp_path / 'list.csv', '--format', 'csv', '--path-col', 'file', '--label-col', 'category', '--group-col', 'src_file')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)['overall']['counts'] == {'cat': 4, 'dog': 4, 'rain': 4, 'rooster': 4}
    r = run('analyze', tmp_path / 'list.csv', '--format', 'csv', '--path-col', 'nofile')
    assert r.returncode == 1 and "missing column(s) ['nofile', 'label']" in r.stderr and 'list.csv' in r.stderr
    r = run('analyze', tmp_path / 'missing', '--format', 'folder')
    assert r.returncode == 1 and 'not found' in r.stderr


@pytest.mark.needs_shared_data
def test_analyze_real_esc10(tmp_path):
    root = find_shared_data('esc10')
    if root is None: pytest.skip('../shared/data/esc10 is missing')
    r = run('analyze', root, '--format', 'esc10', '--out', tmp_path / 'o')
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s['overall']['examples'] == 400 and set(s['overall']['counts'].values()) == {40}
    assert [b['examples'] for b in s['per_fold']] == [80] * 5


@settings(max_examples=50, deadline=None)
@given(counts=st.lists(st.integers(0, 60), min_size=2, max_size=6).filter(lambda c: max(c) > 0), ratio=st.floats(0.05, 1.0))
def test_samples_needed_is_one_calculation(counts, ratio):
    "analyze's advice, balance.plan_balance and balance.samples_needed on LabelSpace.counts are the same numbers."
    labels = [f'c{i}' for i, n in enumerate(counts) for _ in range(n)]
    df = pd.DataFrame({'path': [f'{i}.wav' for i in range(len(labels))], 'label': labels})
    df = df.assign(group=df['path'])
    have = LabelSpace.from_manifest(df).counts(df)
    need = samples_needed(have, ratio)
    assert summarize(df, ratio)['samples_needed']['needed'] == need
    assert plan_balance(df, ratio)['needed'].to_dict() == need
    top = int(have.max())
    for c, n in need.items():
        assert n >= 0 and have[c] + n >= ratio * top - 1e-9
        assert n == 0 or have[c] + n - 1 < ratio * top      # and not one example more than needed


def test_one_class_count():
    "analysis has no count of its own: its table is LabelSpace.counts, single- and multi-label."
    assert not hasattr(analysis, 'samples_needed') and not hasattr(analysis, 'class_counts')
    ml = pd.DataFrame({'path': list('abcd'), 'label': ['AS+MR', 'none', 'AS', 'MR'], 'label_AS': [1, 0, 1, 0], 'label_MR': [1, 0, 0, 1],
                       'group': list('pqrs'), 'fold': [0, 0, 1, 1]})
    space = LabelSpace.from_manifest(ml)
    t = class_table(ml, ['fold'], space)
    for f, part in ml.groupby('fold'):
        assert t[t.fold == f].set_index('class')['count'].to_dict() == space.counts(part).to_dict()
    assert t.groupby('fold')['proportion'].sum().round(9).eq(1).all()


def test_summary_counts_examples_once_in_expanded_form():
    base = pd.DataFrame({'path': ['a', 'b', 'c', 'd'], 'label': ['x', 'x', 'y', 'x'], 'group': ['p', 'p', 'q', 'r']})
    exp = pd.concat([base.assign(fold=f, subset=s) for f, s in [(0, 'train'), (0, 'test'), (1, 'train'), (1, 'test')]], ignore_index=True)
    s = summarize(exp)
    assert s['fold_form'] == 'expanded' and s['overall']['counts'] == {'x': 3, 'y': 1} and len(s['per_fold']) == 4
