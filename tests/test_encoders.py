"""Pretrained audio encoders as a functionals kind and as methods of a run: loaded offline from a folder (tiny random
models written by `make_tiny_encoder`), cached per clip, configured by `model.model_kwargs`, and refusing what they cannot do."""
import json, math, subprocess, sys

import joblib
import numpy as np
import pandas as pd
import pytest
import torch

import audiokit.encoders as encoders
from audiokit.classical import functionals
from audiokit.core import AudioConfig, ConfigError
from audiokit.encoders import encoder_config, load_encoder, make_tiny_encoder
from audiokit.experiment import fold_data, run_fold
from audiokit.features import FeatureError
from audiokit.spec import load_spec


@pytest.fixture(scope='module')
def speech(speech_rows):
    return speech_rows(speakers=4, per_class=2, classes=('neutral', 'angry'), min_s=0.5, max_s=1.2, sample_rate=16000)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp('encoders')
    return {f: make_tiny_encoder(f, root / f) for f in ('wav2vec2', 'whisper', 'ast')}


def _spec(encoder, method='encoder_svm', **kw):
    return load_spec({'method': method, 'name': method, 'splits': {'k': 2}, 'eval': {'n_boot': 0},
                      'model': {'model_kwargs': {'encoder': str(encoder), 'grid': {'C': [0.1, 10.0]}, 'inner_folds': 2, **kw}}})


def test_the_spec_finds_the_methods_in_a_fresh_process():
    code = "from audiokit.spec import load_spec; print(load_spec(overrides=['method=encoder_svm']).method)"
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == 'encoder_svm', r.stderr[-2000:]


@pytest.mark.parametrize('method', ['encoder_svm', 'encoder_logreg'])
def test_run_fold_from_a_spec(speech, tiny, tmp_path, method):
    spec = _spec(tiny['wav2vec2'], method, pooling='mean_std')
    out = run_fold(spec, 0, tmp_path / 'f0', speech, cache_dir=tmp_path / 'cache', progress=False)
    saved = joblib.load(tmp_path / 'f0' / 'model.joblib')
    assert out['method'] == method and saved['kind'] == 'encoder' and saved['spec']['model']['model_kwargs']['pooling'] == 'mean_std'
    p = pd.read_csv(tmp_path / 'f0' / 'predictions.csv').filter(like='p_').to_numpy()   # the saved pipeline on the cached embeddings gives them
    fd = fold_data(spec, 0, speech)
    opts = {'encoder': str(tiny['wav2vec2']), 'pooling': 'mean_std'}
    X = functionals(fd.test, 'encoder', spec.audio, spec.features, tmp_path / 'cache', options=opts)
    assert X.shape == (len(fd.test), 32) and np.allclose(saved['pipeline'].predict_proba(X), p, atol=1e-6)


def test_cached_clips_never_load_the_model(speech, tiny, tmp_path, monkeypatch):
    opts = {'encoder': str(tiny['wav2vec2']), 'layer': 1}
    X = functionals(speech.iloc[:3], 'encoder', AudioConfig(), cache_dir=tmp_path, options=opts)
    def boom(*a, **k): raise AssertionError('the model was loaded although every clip is cached')
    monkeypatch.setattr(encoders, 'load_encoder', boom)
    assert np.array_equal(functionals(speech.iloc[:3], 'encoder', AudioConfig(), cache_dir=tmp_path, options=opts), X)
    with pytest.raises(AssertionError, match='was loaded'):      # another layer is another key
        functionals(speech.iloc[:3], 'encoder', AudioConfig(), cache_dir=tmp_path, options={**opts, 'layer': 0})


def test_new_weights_in_the_same_folder_are_new_cache_keys(speech, tmp_path):
    folder = make_tiny_encoder('hubert', tmp_path / 'enc', seed=0)
    opts = {'encoder': str(folder)}
    a = functionals(speech.iloc[:2], 'encoder', AudioConfig(), cache_dir=tmp_path / 'cache', options=opts)
    make_tiny_encoder('hubert', folder, seed=1)
    b = functionals(speech.iloc[:2], 'encoder', AudioConfig(), cache_dir=tmp_path / 'cache', options=opts)
    assert not np.allclose(a, b)


def test_whisper_keeps_the_real_length_and_cuts_long_clips(tiny):
    enc = load_encoder(tiny['whisper'])
    assert enc.frames(torch.zeros(16000)).shape == (50, 16)                 # 1 s -> 50 frames of 20 ms, not 1500
    w = torch.randn(31 * 16000, generator=torch.Generator().manual_seed(0)) * 0.1
    n = sum(enc.frames(p).shape[0] for p in w.split(enc._chunk_samples()))
    assert n == math.ceil(30 * 16000 / 320) + math.ceil(16000 / 320) and torch.isfinite(enc(w)).all()


def test_ast_keeps_the_patches_inside_the_clip(tiny):
    enc = load_encoder(tiny['ast'], layer='mean', pooling='mean_std')
    nf, nt = enc.model.embeddings.get_shape(enc.config)
    short = enc.frames(torch.randn(8000, generator=torch.Generator().manual_seed(0)) * 0.1)   # 0.5 s: 48 of 100 fbank frames
    assert short.shape[0] == nf * sum(t * enc.config.time_stride < 48 for t in range(nt)) < nf * nt
    assert enc(torch.randn(40000) * 0.1).shape == (32,)                      # 2.5 s: cut into pieces of max_length frames


def test_errors(speech, tiny, tmp_path):
    with pytest.raises(ConfigError, match=r"needs the option\(s\) \['encoder'\]"):
        run_fold(load_spec({'method': 'encoder_svm', 'splits': {'k': 2}}), 0, tmp_path / 'a', speech, progress=False)
    with pytest.raises(ConfigError, match=r"not \['pool'\]"):
        run_fold(_spec(tiny['wav2vec2'], pool='mean'), 0, tmp_path / 'b', speech, progress=False)
    with pytest.raises(ConfigError, match="'org/not-downloaded'.*not in the local Hugging Face cache"):
        run_fold(_spec('org/not-downloaded'), 0, tmp_path / 'c', speech, progress=False)
    with pytest.raises(ConfigError, match='layer 7 is outside'):
        run_fold(_spec(tiny['wav2vec2'], layer=7), 0, tmp_path / 'd', speech, progress=False)
    with pytest.raises(ConfigError, match='pooling must be one of'):
        functionals(speech.iloc[:1], 'encoder', options={'encoder': str(tiny['ast']), 'pooling': 'max'})
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ConfigError, match='has no config.json'): encoder_config(tmp_path / 'empty')
    with pytest.raises(ConfigError, match='does not exist'): encoder_config(tmp_path / 'missing')
    (tmp_path / 'bert').mkdir()
    (tmp_path / 'bert' / 'config.json').write_text(json.dumps({'model_type': 'bert'}))
    with pytest.raises(ConfigError, match="is a 'bert' model; known encoder types"): encoder_config(tmp_path / 'bert')
    (tmp_path / 'noweights').mkdir()
    (tmp_path / 'noweights' / 'config.json').write_text((tiny['wav2vec2'] / 'config.json').read_text())
    with pytest.raises(ConfigError, match='not in the folder'): load_encoder(tmp_path / 'noweights')
    with pytest.raises(FeatureError, match='too short'): load_encoder(tiny['wav2vec2'])(torch.zeros(100))
    with pytest.raises(ConfigError, match='unknown tiny encoder family'): make_tiny_encoder('bert', tmp_path / 'x')
