"""The run spec and the one fold runner: each bug the review found in the old hand-assembled runs has a test here
(they failed on the code before the run spec existed)."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from audiokit.core import ConfigError, parse_overrides
from audiokit.experiment import fold_data, run_fold, train_model
from audiokit.labels import LabelSpace
from audiokit.spec import load_spec

TINY = ['audio.sample_rate=8000', 'features.n_fft=256', 'features.hop_length=128', 'features.n_mels=32', 'model.width=4',
        'train.epochs=2', 'train.batch_size=8', 'eval.n_boot=0', 'window.max_seconds=1.0']


def tone_manifest(root: Path, n: int = 36, seed: int = 0, lengths=(0.3, 3.0), multi_label: bool = False) -> pd.DataFrame:
    "Clips of varying length: tones whose pitch says the class, 9 groups, 3 classes."
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        k, g = i % 3, i % 9
        t = np.arange(int(rng.uniform(*lengths) * 8000)) / 8000
        y = 0.3 * np.sin(2 * np.pi * (300, 800, 2000)[k] * t) + 0.05 * rng.standard_normal(len(t))
        p = root / f"c{i:03d}.wav"; sf.write(p, y.astype('float32'), 8000)
        rows.append({'path': str(p), 'label': 'abc'[k], 'group': f"g{g}"})
    df = pd.DataFrame(rows)
    if multi_label:   # label a is frequent, c rare
        df['label_a'] = 1; df['label_b'] = (np.arange(n) % 3 == 1).astype(int); df['label_c'] = (np.arange(n) % 9 == 2).astype(int)
    return df


def test_one_override_grammar():
    # the sweep and train used to parse `none` and `yes` differently
    assert parse_overrides(['a=none', 'b=yes', 'c=3e-4', 'd=true']) == {'a': None, 'b': 'yes', 'c': 3e-4, 'd': True}
    s = load_spec(overrides=['train.lr=3e-4', 'audio.duration=none'])
    assert s.train.lr == 3e-4 and s.audio.duration is None


def test_unknown_settings_are_refused_with_the_valid_names():
    with pytest.raises(ConfigError, match="unknown setting 'epoch'"):
        load_spec(overrides=['epoch=3'])
    with pytest.raises(ConfigError, match='unknown setting'):
        load_spec({'train': {'epochs': 3, 'balance': 'oversample'}})   # the old TrainConfig.balance validated and did nothing


def test_variable_length_clips_train_and_evaluate_per_clip(tmp_path):
    # clips of 0.3 to 3 s used to stop in the collate function (torch.stack of unequal sizes)
    df = tone_manifest(tmp_path / 'wav')
    s = train_model(df, spec=load_spec(overrides=TINY + ['splits.k=3']), out_dir=tmp_path / 'run', progress=False)
    assert s['folds'] == [0, 1, 2]
    m = json.loads((tmp_path / 'run' / 'cnn' / 'fold0' / 'metrics.json').read_text())
    preds = pd.read_csv(tmp_path / 'run' / 'cnn' / 'fold0' / 'predictions.csv')
    assert len(preds) == m['n']['test'] and m['window']['seconds'] == 1.0   # one row per clip, windows of 1 s


def test_multilabel_pos_weight_is_never_zero(tmp_path):
    # multi-label weighted loss set pos_weight = (max_count - count) / count: the most frequent label weighed 0
    from audiokit.balance import loss_weights
    df = tone_manifest(tmp_path / 'wav', multi_label=True)
    labels = LabelSpace.from_manifest(df)
    w = loss_weights(df, load_spec().balance, labels)
    assert labels.multi_label and w is not None and (w > 0).all() and w[labels.index('c')] > w[labels.index('b')]


def test_oversampling_changes_the_training_rows(tmp_path):
    df = tone_manifest(tmp_path / 'wav')
    df = df[~((df.label != 'a') & (np.arange(len(df)) % 2 == 0))].reset_index(drop=True)   # make 'a' the majority
    spec = load_spec(overrides=TINY + ['splits.k=3', 'balance.method=oversample'])
    plain = load_spec(overrides=TINY + ['splits.k=3'])
    a = run_fold(spec, 0, tmp_path / 'over', df, progress=False)
    b = run_fold(plain, 0, tmp_path / 'plain', df, progress=False)
    assert a['n']['train'] > b['n']['train'] and a['n']['test'] == b['n']['test']


def test_validation_and_test_use_training_statistics(tmp_path):
    # the service normalised validation data with its own statistics
    from audiokit.clipmodel import load_clip_model
    from audiokit.cache import FeatureDataset
    df = tone_manifest(tmp_path / 'wav')
    spec = load_spec(overrides=TINY + ['splits.k=3', 'features.normalize=dataset'])
    run_fold(spec, 1, tmp_path / 'f1', df, progress=False)
    clip, meta = load_clip_model(tmp_path / 'f1' / 'model.ckpt')
    fd = fold_data(spec, 1, df)
    ds = FeatureDataset(fd.train, fd.labels, spec.audio, spec.features, window=None)
    ds.extractor.fit_stats((ds[i][0][None] for i in range(len(ds))), features=True)
    assert torch.allclose(clip.extractor.stats_mean, ds.extractor.stats_mean, atol=1e-4)
