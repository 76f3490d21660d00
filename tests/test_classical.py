"""Classical baselines as methods of a run: they come from the run spec, run through `run_fold`, choose their
hyperparameters from the training groups only, and refuse settings they cannot honour."""
import dataclasses, json, subprocess, sys

import joblib
import numpy as np
import pandas as pd
import pytest

import audiokit.classical as classical
from audiokit.classical import fit_classical, functionals, run_classical
from audiokit.core import METHODS, AudioConfig, ConfigError
from audiokit.experiment import fold_data, run_fold
from audiokit.manifest import multilabel_string
from audiokit.spec import load_spec

FAST = ['splits.k=3', 'eval.n_boot=0', 'audio.sample_rate=8000', 'features.n_fft=256', 'features.hop_length=128',
        'features.n_mels=32', 'features.n_mfcc=13', 'model.model_kwargs={grid: {C: [0.1, 10.0]}, inner_folds: 3}']


@pytest.fixture(scope='module')
def speech(speech_rows):
    return speech_rows(speakers=6, per_class=2, classes=('neutral', 'sad', 'angry'), min_s=0.5, max_s=1.5, sample_rate=8000)


def test_methods_are_registered_and_the_spec_finds_them():
    assert {'egemaps_svm', 'compare_svm', 'mfcc_svm', 'logmel_svm', 'egemaps_logreg', 'egemaps_gb'} <= set(METHODS.names())
    # a fresh process that only loads a spec must find them (the spec imports the module that registers them)
    code = "from audiokit.spec import load_spec; print(load_spec(overrides=['method=egemaps_svm']).method)"
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == 'egemaps_svm', r.stderr[-2000:]


@pytest.mark.parametrize('method', ['egemaps_svm', 'mfcc_logreg'])
def test_run_fold(speech, tmp_path, method):
    spec = load_spec(overrides=FAST + [f'method={method}', f'name={method}'])
    out = run_fold(spec, 0, tmp_path / 'f0', speech, cache_dir=tmp_path / 'cache', progress=False)
    assert out['method'] == method and 0 <= out['metrics']['accuracy'] <= 1
    preds = pd.read_csv(tmp_path / 'f0' / 'predictions.csv')
    p = preds.filter(like='p_').to_numpy()
    assert np.allclose(p.sum(1), 1, atol=1e-5) and len(preds) == out['n']['test']
    saved = joblib.load(tmp_path / 'f0' / 'model.joblib')
    chosen = json.loads((tmp_path / 'f0' / 'chosen.json').read_text())
    assert saved['chosen'] == chosen and chosen['C'] in (0.1, 10.0) and chosen['inner_folds'] == 3
    kind = method.split('_')[0]
    fd = fold_data(spec, 0, speech)
    X = functionals(fd.test, kind, spec.audio, spec.features, tmp_path / 'cache')
    assert np.allclose(saved['pipeline'].predict_proba(X), p, atol=1e-6)


def test_test_rows_do_not_influence_the_choice(speech, tmp_path):
    spec = load_spec(overrides=FAST + ['method=egemaps_svm'])
    fd = fold_data(spec, 1, speech)
    shuffled = fd.test.assign(label=np.random.default_rng(0).permutation(fd.test['label'].to_numpy())[::-1])
    assert (shuffled['label'] != fd.test['label']).any()
    a = run_classical(fd, tmp_path / 'a', 'egemaps', 'svm', tmp_path / 'cache', progress=False)
    b = run_classical(dataclasses.replace(fd, test=shuffled), tmp_path / 'b', 'egemaps', 'svm', tmp_path / 'cache', progress=False)
    assert a['chosen'] == b['chosen'] and np.array_equal(a['y_prob'], b['y_prob'])
    assert a['n_train'] == len(fd.train) + len(fd.val)     # validation groups are training rows here


def test_inner_folds_are_grouped(monkeypatch):
    seen = []
    class Recording(classical.GridSearchCV):
        def fit(self, X, y=None, **kw):
            seen.extend(self.cv)
            return super().fit(X, y, **kw)
    monkeypatch.setattr(classical, 'GridSearchCV', Recording)
    rng = np.random.default_rng(0)
    y = np.tile([0, 1, 2], 20)
    X = rng.standard_normal((60, 4)) + y[:, None] * 2.0
    groups = np.repeat([f"g{i}" for i in range(6)], 10)
    pipe, chosen = fit_classical(X, y, groups, 'logreg', inner_folds=3)
    assert len(seen) == chosen['inner_folds'] == 3 and chosen['inner_balanced_accuracy'] > 0.8
    for tr, te in seen: assert not set(groups[tr]) & set(groups[te])     # no group on both sides of an inner split
    assert sorted(np.concatenate([te for _, te in seen]).tolist()) == list(range(60))


def test_cached_functionals_are_not_recomputed(speech, tmp_path, monkeypatch):
    audio = AudioConfig(sample_rate=8000)
    a = functionals(speech.iloc[:3], 'egemaps', audio, cache_dir=tmp_path)
    monkeypatch.setattr(classical, 'load_clip', lambda *a, **k: (_ for _ in ()).throw(AssertionError('read again')))
    assert np.array_equal(functionals(speech.iloc[:3], 'egemaps', audio, cache_dir=tmp_path), a)
    with pytest.raises(AssertionError, match='read again'):
        functionals(speech.iloc[:3], 'egemaps', AudioConfig(sample_rate=16000), cache_dir=tmp_path)   # other settings, other key


@pytest.mark.parametrize('over, match', [
    (['balance.method=oversample'], 'balance.method=none'),
    (['balance.loss_weights=effective'], "'inverse' (balanced class weights) or 'none'"),
    (['augment.gain_p=0.5'], 'does not augment'),
    (['model.model_kwargs={kernel: linear}'], "not ['kernel']"),
    (['model.model_kwargs={k_best: 1000}'], 'k_best=1000 is outside 1..88'),
    (['model.model_kwargs={grid: {alpha: [1]}}'], "svm has no parameter(s) ['alpha']"),
])
def test_clear_errors(speech, tmp_path, over, match):
    spec = load_spec(overrides=FAST + ['method=egemaps_svm'] + over)
    with pytest.raises(ConfigError, match=None) as e:
        run_fold(spec, 0, tmp_path / 'f0', speech, cache_dir=tmp_path / 'cache', progress=False)
    assert match in str(e.value)


def test_multi_label_one_pipeline_per_label(speech, tmp_path):
    from audiokit.classical import classical_proba, functionals
    from audiokit.experiment import fold_data
    flags = pd.DataFrame({'label_voice': 1, 'label_sad': (speech['label'] == 'sad').astype(int)})
    df = speech.assign(label=multilabel_string(flags, ['voice', 'sad']), **flags)
    spec = load_spec(overrides=FAST + ['method=mfcc_logreg'])
    res = run_fold(spec, 0, tmp_path / 'f0', df, cache_dir=tmp_path / 'cache', progress=False)
    assert res['chosen']['voice'] == {'constant': 1.0} and 'C' in res['chosen']['sad']
    saved = joblib.load(tmp_path / 'f0' / 'model.joblib')
    fd = fold_data(spec, 0, df)
    p = classical_proba(saved, functionals(fd.test, 'mfcc', spec.audio, spec.features, tmp_path / 'cache'))
    recorded = pd.read_csv(tmp_path / 'f0' / 'predictions.csv')[['p_sad', 'p_voice']].to_numpy()
    assert np.allclose(p[:, [saved['labels']['classes'].index('sad'), saved['labels']['classes'].index('voice')]], recorded, atol=1e-6)
