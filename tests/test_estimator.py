"""The pipeline as a scikit-learn estimator, and the command-line path a new user takes on a variable-length speech set
(clips of 1 to 6 s, no duration named anywhere)."""
import json, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_validate

from audiokit import AudioClassifier, PatientGroupKFold
from audiokit.fixtures import make_speech_fixture

TINY = {'audio.sample_rate': 8000, 'features.n_fft': 256, 'features.hop_length': 128, 'features.n_mels': 32, 'model.width': 4,
        'train.epochs': 2, 'train.batch_size': 8, 'eval.n_boot': 0, 'window.max_seconds': 1.5}


@pytest.fixture(scope='module')
def speech(tmp_path_factory):
    csv = make_speech_fixture(tmp_path_factory.mktemp('speech'), speakers=6, per_class=2)
    df = pd.read_csv(csv)
    df['path'] = [str((csv.parent / p).resolve()) for p in df['path']]
    return csv, df


def test_cross_validate_clone_and_onnx_on_paths(speech, tmp_path):
    _, df = speech
    assert df['duration'].min() < 2 and df['duration'].max() > 4           # really of varying length
    X, y, g = df['path'].tolist(), df['label'].to_numpy(), df['speaker'].to_numpy()
    est = AudioClassifier(overrides=TINY)
    cv = cross_validate(est, X, y, groups=g, cv=PatientGroupKFold(3))
    assert len(cv['test_score']) == 3 and np.isfinite(cv['test_score']).all()
    c = clone(est)
    assert c.get_params() == est.get_params() and not hasattr(c, 'model_')
    c.fit(X, y, groups=g)
    rep = c.export(tmp_path / 'm.onnx', format='onnx')
    import onnxruntime as ort
    from audiokit.audio import load_clip
    from audiokit.spec import load_spec
    sess = ort.InferenceSession(str(tmp_path / 'm.onnx'))
    audio = c.spec_.audio
    diffs = []
    for p in X[:4]:
        w = load_clip(p, audio).numpy()                                       # a raw waveform at the model's rate
        diffs.append(np.abs(sess.run(None, {sess.get_inputs()[0].name: w})[0][0] - c.predict_proba([p])[0]).max())
    assert max(diffs) <= 1e-4, diffs
    import pickle
    again = pickle.loads(pickle.dumps(c))                                   # a fitted estimator travels whole
    assert np.allclose(again.predict_proba(X[:3]), c.predict_proba(X[:3]), atol=1e-6)


def test_analyze_splits_train_with_no_duration(speech, tmp_path):
    csv, _ = speech
    ak = [sys.executable, '-m', 'audiokit.cli']
    run = lambda *a: subprocess.run(ak + list(a), capture_output=True, text=True, timeout=900, cwd=tmp_path)
    r = run('analyze', str(csv), '--format', 'csv', '--group-col', 'speaker', '--out', 'an')
    assert r.returncode == 0, r.stderr[-2000:]
    r = run('splits', 'an/manifest.csv', '--k', '3', '--out', 'sp')
    assert r.returncode == 0, r.stderr[-2000:]
    r = run('train', 'sp/splits_combined.csv', '--out', 'run', *sum((['-p', f"{k}={v}"] for k, v in TINY.items()), []))
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path / 'run' / 'cnn_cv_summary.json').read_text())
    assert s['folds'] == [0, 1, 2] and s['spec']['audio']['duration'] is None
    m = json.loads((tmp_path / 'run' / 'cnn' / 'fold0' / 'metrics.json').read_text())
    assert m['window']['seconds'] == 1.5 and len(pd.read_csv(tmp_path / 'run' / 'cnn' / 'fold0' / 'predictions.csv')) == m['n']['test']


def test_predictors_pickle_as_library_classes():
    "nbdev_test runs several notebooks in one process: a predictor class a notebook defined lives in __main__ and must still pickle."
    import pickle, subprocess, sys, textwrap
    code = textwrap.dedent("""
        import pickle, inspect, torch
        import audiokit.classical, audiokit.ensemble, audiokit.experiment
        for mod, name in ((audiokit.experiment, 'ClipPredictor'), (audiokit.classical, 'FunctionalsPredictor'), (audiokit.ensemble, 'FusedPredictor')):
            ns = {**mod.__dict__, '__name__': '__main__'}
            exec(inspect.getsource(getattr(mod, name)), ns)      # the class again, defined in __main__ as a notebook cell does
            globals()[name] = ns[name]
            assert ns[name].__module__ == '__main__'
        a = ClipPredictor(torch.nn.Linear(2, 2))
        b = FusedPredictor({'x': a}, {'x': 1.0})
        c = FunctionalsPredictor({'kind': 'mfcc'}, None)
        for o in (a, b, c): assert type(pickle.loads(pickle.dumps(o))).__module__.startswith('audiokit.'), o
    """)
    subprocess.run([sys.executable, '-c', code], check=True)

