"""Dataset adapters on generated fixtures (fault injection), the ICBHI round trip (property test), the adapter registry
(a user's own layout, the CLI's formats), real data when present."""
import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings, strategies as st

from audiokit.core import ADAPTERS, ResultExistsError, find_shared_data, import_plugins
from audiokit.datasets import (BMDHS, IMBALMED_COMBINED, IMBALMED_SPLITS, IMBALMED_SURVEY, IcbhiRecording, build_bmdhs, build_csv,
                               build_esc10, build_esc50, build_folder, build_icbhi, build_imbalmed, load_dataset, write_icbhi)
from audiokit.fixtures import make_bmdhs_fixture, make_esc50_fixture, make_icbhi_fixture, make_imbalmed_fixture
from audiokit.labels import ICBHI, classes_of, is_multilabel
from audiokit.manifest import ManifestError, read_manifest


cycles = st.lists(st.tuples(st.floats(0, 3, allow_nan=False), st.floats(0.001, 1.5, allow_nan=False), st.integers(0, 1), st.integers(0, 1)),
                  min_size=1, max_size=6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cyc=cycles, patient=st.integers(100, 999))
def test_icbhi_write_read_round_trip_is_exact(tmp_path_factory, cyc, patient):
    root = tmp_path_factory.mktemp('icbhi')
    a = np.array([(s, s + d, c, w) for s, d, c, w in cyc])
    wave = np.zeros(int((a[:, 1].max() + 0.1) * 2000), np.float32)
    rec = IcbhiRecording(str(patient), '1b1', 'Tc', 'mc', 'AKGC417L', wave, 2000, a)
    write_icbhi(root, [rec], split={str(patient): 'test'}, diagnosis={str(patient): 'COPD'})
    m = build_icbhi(root).manifest.sort_values('cycle')
    assert (m['start'].to_numpy() == a[:, 0]).all() and (m['end'].to_numpy() == a[:, 1]).all()
    assert (m[['crackles', 'wheezes']].to_numpy() == a[:, 2:]).all()
    assert set(m['subset']) == {'test'} and set(m['diagnosis']) == {'COPD'} and set(m['group']) == {str(patient)}
    assert (m['label'].to_numpy() == ICBHI.decode(ICBHI.encode(m['label']))).all()


def test_icbhi_faults_are_reported_not_dropped_silently(tmp_path):
    make_icbhi_fixture(tmp_path, patients=1, recordings=2, cycles=3)
    stems = sorted(p.stem for p in tmp_path.glob('*.wav'))
    (tmp_path / f'{stems[0]}.txt').write_text('0.1\t0.5\t0\t0\nnot a line\n0.5\t0.4\t1\t1\n')
    res = build_icbhi(tmp_path)
    assert len(res.manifest) + len(res.dropped) == 3 + 3 - 0 and len(res.dropped) == 2
    assert sorted(res.dropped['line']) == [1, 2]
    with pytest.raises(ManifestError, match='must be non-empty without'):
        write_icbhi(tmp_path, [IcbhiRecording('1_0', 'r', 'Tc', 'sc', 'Meditron', np.zeros(100), 1000, [])])
    with pytest.raises(ResultExistsError):
        make_icbhi_fixture(tmp_path, patients=1, recordings=2, cycles=3)


def test_esc50_fixture_and_esc10_view(tmp_path):
    root = make_esc50_fixture(tmp_path, per_class=10)
    r = build_esc50(root)
    assert len(r.manifest) == 40 and set(r.manifest['fold']) == {1, 2, 3, 4, 5}
    assert (r.manifest.groupby('group')['fold'].nunique() == 1).all()
    assert len(build_esc10(root).manifest) == 20
    os.remove(root / 'audio' / r.manifest['path'].iloc[0].split(os.sep)[-1])
    r2 = build_esc50(root)
    assert len(r2.manifest) == 39 and r2.dropped['reason'].tolist() == ['audio file not found']


def test_bmdhs_fixture_reports_quirks(tmp_path):
    r = build_bmdhs(make_bmdhs_fixture(tmp_path, patients=3))
    assert len(r.manifest) == 3 * 8 - 1 and r.manifest['group'].nunique() == 3
    assert len(r.report()['unlabelled_files']) == 9 and len(r.report()['listed_without_file']) == 1
    assert set(r.manifest['position']) == {'sit', 'sup'} and is_multilabel(r.manifest)
    assert r.labels is BMDHS and r.report()['classes'] == list(BMDHS.classes)


def test_imbalmed_expansion_matches_the_seed(tmp_path):
    planted = make_imbalmed_fixture(tmp_path, patients=25, n_subdbs=3, folds=4, seed=3)
    res = build_imbalmed(tmp_path)
    out = tmp_path / IMBALMED_COMBINED
    assert sorted(p.name for p in out.iterdir()) == [f'audio_imbalmed_subdb{k}_combined.csv' for k in (1, 2, 3)]
    common = pd.read_csv(tmp_path / IMBALMED_SPLITS / 'common_val_test_all_subdbs.csv', dtype=str)
    for k in (1, 2, 3):
        c = pd.read_csv(out / f'audio_imbalmed_subdb{k}_combined.csv', dtype={'healthCode': str, 'label': str})
        assert (c['healthCode'] == c['health_code']).all() and (c['subdb'] == f'subdb{k}').all()
        assert c['image_rel_path'].str.startswith('data/melSpec/').all()
        assert (c['image_rel_path'].map(lambda p: (tmp_path / p).exists())).all()
        tr = pd.read_csv(next((tmp_path / IMBALMED_SPLITS).glob(f'subdb{k}_train_*.csv')), dtype=str)
        want = pd.concat([tr, common]).assign(n=lambda d: d['healthCode'].map(planted['images']))
        assert len(c) == want['n'].sum()
        got = c.groupby(['fold', 'healthCode', 'subset']).size()
        for f, h, s, n in want[['fold_iteration', 'healthCode', 'subset', 'n']].itertuples(index=False):
            assert got[(int(f), h, s)] == n
        assert (c['label'].astype(int) == c['healthCode'].map(planted['diagnosis'])).all()
    bad = set(planted['blank']) | {planted['no_survey']}
    assert not res.manifest['healthCode'].isin(bad).any()
    assert set(res.dropped['reason']) >= {'blank professional-diagnosis', 'patient has no row in Demographics_Survey.csv'}
    with pytest.raises(ResultExistsError, match='overwrite=True'):
        build_imbalmed(tmp_path)
    assert len(build_imbalmed(tmp_path, overwrite=True).manifest) == len(res.manifest)


def test_imbalmed_bad_split_file_names_row(tmp_path):
    make_imbalmed_fixture(tmp_path, patients=12, n_subdbs=1, folds=2)
    p = tmp_path / IMBALMED_SPLITS / 'common_val_test_all_subdbs.csv'
    d = pd.read_csv(p, dtype=str)
    d.loc[2, 'subset'] = 'holdout'
    d.to_csv(p, index=False)
    with pytest.raises(ManifestError, match="common_val_test_all_subdbs.csv row 2: subset 'holdout'"):
        build_imbalmed(tmp_path, write=False)
    s = tmp_path / IMBALMED_SURVEY
    s.write_text(s.read_text() + 'abc,maybe\n')
    with pytest.raises(ManifestError, match="professional-diagnosis 'maybe'"):
        build_imbalmed(tmp_path, write=False)


def test_folder_and_csv_adapters(tmp_path):
    for c in ('a', 'b'):
        (tmp_path / c / 'deep').mkdir(parents=True)
        for i in range(3): sf.write(tmp_path / c / 'deep' / f's{i}_{c}.wav', np.zeros(100, np.float32), 1000)
    r = build_folder(tmp_path, group_regex=r'^(s\d)_')
    assert len(r.manifest) == 6 and r.manifest['group'].nunique() == 3 and len(r.dropped) == 0
    d = pd.DataFrame({'f': [f'a/deep/s{i}_a.wav' for i in range(3)], 'AS': [1, 0, 1], 'MR': [0, 0, 1], 'who': ['x', 'y', 'z']})
    d.to_csv(tmp_path / 'l.csv', index=False)
    m = build_csv(tmp_path / 'l.csv', path_col='f', label_col=None, label_cols=['AS', 'MR'], group_col='who').manifest
    assert m['label'].tolist() == ['AS', 'none', 'AS+MR'] and classes_of(m) == ['AS', 'MR']
    with pytest.raises(ManifestError, match="unknown format 'nope'; registered adapters: "):
        load_dataset(tmp_path, 'nope')


def test_build_result_save(tmp_path):
    r = build_esc50(make_esc50_fixture(tmp_path / 'd'))
    paths = r.save(tmp_path / 'out')
    assert read_manifest(paths['manifest']).shape == r.manifest.shape
    assert load_dataset(paths['manifest'], 'manifest').manifest.equals(read_manifest(paths['manifest']))
    with pytest.raises(ResultExistsError): r.save(tmp_path / 'out')


def test_icbhi_uses_the_icbhi_label_space(tmp_path):
    make_icbhi_fixture(tmp_path, patients=3, recordings=2, cycles=6, seed=4)
    r = build_icbhi(tmp_path)
    assert r.labels is ICBHI and r.report()['classes'] == ['normal', 'crackle', 'wheeze', 'both']
    want = np.asarray(ICBHI.classes, dtype=object)[r.manifest['crackles'] + 2 * r.manifest['wheezes']]
    assert (r.manifest['label'].to_numpy() == want).all()


PLUGIN = """
import os
from pathlib import Path
import pandas as pd
from audiokit.core import ADAPTERS
from audiokit.manifest import dropped_rows, finish_build

@ADAPTERS.register('test_takes')
def build_takes(root, name='takes'):
    s = pd.Series(sorted(str(p) for p in Path(root).glob('*.wav')), dtype=object)
    parts = s.str.rsplit(os.sep, n=1).str[-1].str.extract(r'^(?P<speaker>\\w+)-(?P<label>\\w+)-\\d+\\.wav$')
    ok = parts['label'].notna()
    rows = pd.DataFrame({'path': s[ok], 'label': parts.loc[ok, 'label'], 'group': parts.loc[ok, 'speaker']})
    return finish_build(name, rows, [dropped_rows(s[~ok], 'bad name')])
"""


@pytest.fixture
def user_plugin(tmp_path, monkeypatch):
    (tmp_path / 'plug').mkdir()
    (tmp_path / 'plug' / 'my_takes_adapter.py').write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path / 'plug'))
    yield 'my_takes_adapter'
    ADAPTERS._items.pop('test_takes', None)
    sys.modules.pop('my_takes_adapter', None)


def test_a_users_adapter_registered_in_their_module_is_loaded_by_name(tmp_path, user_plugin):
    assert 'test_takes' not in ADAPTERS
    import_plugins([user_plugin])
    for n in ('ann-yes-1', 'ann-no-1', 'bob-yes-2', 'untitled'):
        sf.write(tmp_path / f'{n}.wav', np.zeros(100, np.float32), 1000)
    r = load_dataset(tmp_path, 'test_takes')
    assert len(r.manifest) == 3 and set(r.manifest['group']) == {'ann', 'bob'} and r.dropped['reason'].tolist() == ['bad name']
    assert 'test_takes' in ADAPTERS.names()


def test_analyze_cli_offers_the_registered_formats():
    from audiokit.cli import build_parser
    p = build_parser('analyze')
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    fmt = next(a for a in sub.choices['analyze']._actions if a.dest == 'format')
    assert set(fmt.choices) == set(ADAPTERS.names())
    assert {'icbhi', 'esc50', 'esc10', 'bmdhs', 'imbalmed', 'folder', 'csv', 'manifest'} <= set(fmt.choices)


@pytest.mark.needs_shared_data
def test_real_esc10():
    root = find_shared_data('esc10')
    if root is None: pytest.skip('../shared/data/esc10 is missing')
    m = load_dataset(root, 'esc10').manifest
    assert len(m) == 400 and (m['label'].value_counts() == 40).all() and m['label'].nunique() == 10
    assert (m['fold'].value_counts().sort_index() == 80).all() and sorted(m['fold'].unique()) == [1, 2, 3, 4, 5]


@pytest.mark.needs_shared_data
def test_real_bmdhs():
    root = find_shared_data('bmd_hs')
    if root is None: pytest.skip('../shared/data/bmd_hs is missing')
    r = load_dataset(root, 'bmdhs')
    assert r.manifest['group'].nunique() == 108 and is_multilabel(r.manifest)
    unl = r.report()['unlabelled_files']
    assert 'MD_085_sit_Tri6_06' in unl and sum(u.startswith('MD_022_') for u in unl) == 8
