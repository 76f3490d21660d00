"""Manifest validation (fault injection), adapters on generated fixtures, the ICBHI round trip (property test), real data when present."""
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings, strategies as st

from audiokit.core import ResultExistsError, find_shared_data
from audiokit.datasets import (IMBALMED_COMBINED, IMBALMED_SPLITS, IMBALMED_SURVEY, MANIFEST_COLUMNS, BuildResult, IcbhiRecording,
                               ManifestError, build_bmdhs, build_csv, build_esc10, build_esc50, build_folder, build_icbhi,
                               build_imbalmed, classes_of, is_multilabel, label_matrix, load_dataset, make_bmdhs_fixture,
                               make_esc50_fixture, make_icbhi_fixture, make_imbalmed_fixture, read_manifest, validate_manifest,
                               write_icbhi, write_manifest)


@pytest.fixture
def wav(tmp_path):
    p = tmp_path / 'a.wav'
    sf.write(p, np.zeros(8000, np.float32), 8000)   # 1.0 s
    return p


def _good(wav):
    return pd.DataFrame({'path': [str(wav)] * 3, 'label': ['x', 'y', 'x'], 'start': [0.0, 0.2, 0.5], 'end': [0.2, 0.5, 1.0],
                         'group': ['p1', 'p1', 'p2'], 'fold': [0, 1, 1], 'subset': ['', '', '']})


def test_valid_manifest_round_trips_csv_and_parquet(tmp_path, wav):
    m = validate_manifest(_good(wav), check_files=True, check_lengths=True)
    assert list(m.columns) == list(MANIFEST_COLUMNS)
    for name in ('m.csv', 'm.parquet'):
        p = write_manifest(m, tmp_path / name)
        pd.testing.assert_frame_equal(read_manifest(p, check_files=True), m)
        with pytest.raises(ResultExistsError): write_manifest(m, p)


@pytest.mark.parametrize('change, match', [
    (lambda d: d.drop(columns=['label']), "missing required column(s) ['label']"),
    (lambda d: d.assign(end=[0.2, 0.1, 1.0]), 'row 1: end 0.1 s is not after start 0.2 s'),
    (lambda d: d.assign(end=[0.2, 0.5, 1.5]), "row 2: cycle [0.5, 1.5) s ends beyond the file's length 1.000 s"),
    (lambda d: d.assign(label=['x', 'y', 'z']), "row 2: unknown label 'z'"),
    (lambda d: d.assign(path=['a.wav', 'gone.wav', 'a.wav']), 'row 1: audio file not found'),
    (lambda d: d.assign(start=['0', 'soon', '0.5']), "row 1: 'start' is 'soon', not a number of seconds"),
    (lambda d: d.assign(subset=['train', 'dev', '']), "row 1: subset 'dev' is not one of"),
    (lambda d: d.assign(fold=[0, -3, 1]), 'row 1: fold -3 is negative'),
    (lambda d: d.assign(label=['x', '', 'x']), "row 1: empty 'label'"),
])
def test_bad_manifests_name_file_and_row(wav, change, match):
    bad = change(_good(wav))
    with pytest.raises(ManifestError) as e:
        validate_manifest(bad, source='my.csv', classes=['x', 'y'], root=wav.parent, check_files=True, check_lengths=True)
    assert match in str(e.value) and str(e.value).startswith('my.csv')


def test_read_manifest_resolves_relative_paths_and_reports_line(tmp_path, wav):
    (tmp_path / 'm.csv').write_text('path,label,end\na.wav,x,0.5\na.wav,y,-1\n')
    with pytest.raises(ManifestError, match=r'm.csv row 1: end -1.0 s is not after start 0.0 s'):
        read_manifest(tmp_path / 'm.csv')
    (tmp_path / 'm.csv').write_text('path,label\na.wav,x\n')
    assert read_manifest(tmp_path / 'm.csv', check_files=True)['path'].tolist() == [str(wav.resolve())]


def test_multilabel_helpers():
    d = pd.DataFrame({'path': ['a', 'b', 'c'], 'label': ['AS+MR', 'none', 'N'], 'label_MR': [1, 0, 0], 'label_AS': [1, 0, 0], 'label_N': [0, 0, 1]})
    v = validate_manifest(d)
    assert is_multilabel(v) and classes_of(v) == ['AS', 'MR', 'N']
    assert label_matrix(v).tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 1]]
    with pytest.raises(ManifestError, match="row 2: label 'MR' disagrees"):
        validate_manifest(d.assign(label=['AS+MR', 'none', 'MR']))


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
    with pytest.raises(ManifestError, match="unknown format 'nope'"):
        load_dataset(tmp_path, 'nope')


def test_build_result_save(tmp_path):
    r = build_esc50(make_esc50_fixture(tmp_path / 'd'))
    paths = r.save(tmp_path / 'out')
    assert read_manifest(paths['manifest']).shape == r.manifest.shape
    with pytest.raises(ResultExistsError): r.save(tmp_path / 'out')


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
