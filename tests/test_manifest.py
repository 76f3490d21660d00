"""The manifest schema: validation (fault injection), CSV/Parquet round trips, paths relative to the manifest's folder
whatever the working directory (the `make demo` bug), build results."""
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audiokit.core import ResultExistsError
from audiokit.labels import LabelSpace, classes_of, is_multilabel
from audiokit.manifest import (MANIFEST_COLUMNS, ManifestError, dropped_rows, finish_build, read_manifest, resolve_paths,
                               validate_manifest, write_manifest)


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


def test_multilabel_rows_and_the_label_space():
    d = pd.DataFrame({'path': ['a', 'b', 'c'], 'label': ['AS+MR', 'none', 'N'], 'label_MR': [1, 0, 0], 'label_AS': [1, 0, 0], 'label_N': [0, 0, 1]})
    v = validate_manifest(d)
    assert is_multilabel(v) and classes_of(v) == ['AS', 'MR', 'N']
    assert LabelSpace.from_manifest(v).matrix(v).tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 1]]
    with pytest.raises(ManifestError, match="row 2: label 'MR' disagrees"):
        validate_manifest(d.assign(label=['AS+MR', 'none', 'MR']))


def _tree(base: Path) -> Path:
    audio = base / 'work' / 'outputs' / 'demo_data' / 'icbhi_sim' / '101_1b1_Al_sc_Meditron.wav'
    audio.parent.mkdir(parents=True)
    sf.write(audio, np.zeros(800, np.float32), 8000)
    return audio


@pytest.mark.parametrize('suffix', ['.csv', '.parquet'])
def test_manifest_written_from_one_directory_is_read_from_another(tmp_path, monkeypatch, suffix):
    # the `make demo` failure: paths relative to the working directory were written as they were and read back relative
    # to the manifest's folder (outputs/demo_data/outputs/demo_data/icbhi_sim/...wav: cannot read the file)
    audio = _tree(tmp_path)
    monkeypatch.chdir(tmp_path / 'work')
    rel = pd.DataFrame({'path': ['outputs/demo_data/icbhi_sim/101_1b1_Al_sc_Meditron.wav'], 'label': ['normal']})
    written = write_manifest(rel, Path('outputs/demo_data') / f'manifest{suffix}')
    for cwd in (tmp_path, tmp_path / 'work' / 'outputs', Path('/')):
        monkeypatch.chdir(cwd)
        back = read_manifest(tmp_path / 'work' / written, check_files=True)
        assert back['path'].tolist() == [str(audio)]
    stored = pd.read_parquet(tmp_path / 'work' / written) if suffix == '.parquet' else pd.read_csv(tmp_path / 'work' / written)
    assert stored['path'].tolist() == ['icbhi_sim/101_1b1_Al_sc_Meditron.wav']      # relative to the manifest's own folder


def test_paths_outside_the_manifest_folder_and_absolute_mode(tmp_path, monkeypatch):
    audio = _tree(tmp_path)
    monkeypatch.chdir(tmp_path / 'work' / 'outputs')
    df = pd.DataFrame({'path': ['demo_data/icbhi_sim/101_1b1_Al_sc_Meditron.wav'], 'label': ['x']})
    other = write_manifest(df, tmp_path / 'elsewhere' / 'runs' / 'm.csv')            # outside: written with ../
    assert pd.read_csv(other)['path'].iloc[0].startswith('../')
    absolute = write_manifest(df, tmp_path / 'elsewhere' / 'abs.csv', relative=False)
    assert pd.read_csv(absolute)['path'].tolist() == [str(audio)]
    monkeypatch.chdir(tmp_path)
    for p in (other, absolute): assert read_manifest(p, check_files=True)['path'].tolist() == [str(audio)]


def test_resolve_paths_folds_dots_only_of_relative_paths():
    got = resolve_paths(pd.Series(['a.wav', '../b.wav', './c.wav', '/x/../y.wav', 'd/../../e.wav']), '/data/set')
    assert got.tolist() == ['/data/set/a.wav', '/data/b.wav', '/data/set/c.wav', '/x/../y.wav', '/data/e.wav']


def test_demo_data_manifest_reads_back_from_another_directory(tmp_path, monkeypatch):
    from audiokit.demo import demo_data
    monkeypatch.chdir(tmp_path)
    manifest = demo_data(Path('outputs') / 'demo_data')        # the demo's own settings
    assert not Path(manifest).is_absolute()
    monkeypatch.chdir(tmp_path / 'outputs')
    m = read_manifest(tmp_path / manifest, check_files=True)
    assert len(m) and m['path'].map(os.path.isfile).all()
    assert m['path'].str.startswith(str(tmp_path / 'outputs' / 'demo_data' / 'icbhi_sim') + os.sep).all()


def test_build_results_report_and_refuse_to_overwrite(tmp_path):
    rows = pd.DataFrame({'path': ['a.wav', 'b.wav'], 'label': ['dog', 'rain']})
    r = finish_build('toy', rows, [dropped_rows(['c.txt'], 'not an audio file', 'list.csv', 3)], labels=LabelSpace(classes=('rain', 'dog')))
    rep = r.report()
    assert rep['classes'] == ['rain', 'dog'] and rep['dropped_by_reason'] == {'not an audio file': 1} and rep['rows'] == 2
    assert r.dropped['line'].tolist() == [3] and (r.manifest['dataset'] == 'toy').all()
    with pytest.raises(ManifestError, match="unknown label 'rain'"):
        finish_build('toy', rows, labels=LabelSpace(classes=('dog',)))
    r.save(tmp_path / 'out')
    with pytest.raises(ResultExistsError): r.save(tmp_path / 'out')
