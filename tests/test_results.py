"""Training on real-data-shaped manifests without the shared data: `train_model` on a run spec with spectrogram
augmentation reports patient-level metrics when every patient has one label set (BMD-HS-like, multi-label),
normalises val/test with the training statistics (`features.normalize='dataset'`), and learns a separable task."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from audiokit.experiment import train_model

SR = 4000

def _tone_manifest(root: Path, n_patients: int = 12, per_patient: int = 3, multi: bool = True, seed: int = 0) -> pd.DataFrame:
    "Patients with 1-2 'diseases' (a tone each: 300 Hz for A, 900 Hz for B) in noise; each patient's recordings share labels."
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        a, b = [(1, 0), (0, 1), (1, 1)][p % 3]
        for r in range(per_patient):
            t = np.arange(SR) / SR
            x = 0.05 * rng.standard_normal(SR) + 0.3 * a * np.sin(2 * np.pi * 300 * t) + 0.3 * b * np.sin(2 * np.pi * 900 * t)
            path = root / f"p{p}_{r}.wav"; sf.write(path, x.astype(np.float32), SR)
            row = {'path': str(path), 'start': np.nan, 'end': np.nan, 'group': f"p{p}", 'subdb': 'all', 'fold': (p // 3) % 3, 'subset': ''}
            if multi: row.update(label='+'.join(c for c, v in (('A', a), ('B', b)) if v), label_A=a, label_B=b)
            else: row.update(label='AB'[b] if a + b == 1 else 'both')
            rows.append(row)
    return pd.DataFrame(rows)

SPEC = {'name': 'cnn', 'audio': {'sample_rate': SR, 'duration': 1.0}, 'features': {'n_fft': 256, 'hop_length': 128, 'n_mels': 16},
        'model': {'width': 8}, 'train': {'epochs': 12, 'batch_size': 4, 'lr': 3e-3, 'early_stopping_metric': 'f1_macro', 'seed': 0},
        'eval': {'n_boot': 50}}

def test_multilabel_cv_reports_patient_level_and_learns(tmp_path):
    torch.set_num_threads(1)
    man = _tone_manifest(tmp_path)
    aug = {'freq_mask_p': 0.5, 'freq_mask_width': 2, 'time_mask_p': 0.5, 'time_mask_width': 4, 'shift_p': 0.5, 'mix': 'mixup', 'mix_p': 0.5}
    s = train_model(man, spec={**SPEC, 'augment': aug}, out_dir=tmp_path / 'run', cache_dir=tmp_path / 'cache', progress=False)
    m = s['metrics']
    assert s['multi_label'] and s['folds'] == [0, 1, 2]
    assert 'group_auroc' in m and len(m['group_auroc']['per_fold']) == 3     # patient-level metrics in the summary
    assert m['auroc']['mean'] > 0.9, m['auroc']                               # two tones are easy: the CNN must learn them
    fold = json.loads((tmp_path / 'run' / 'cnn' / 'fold0' / 'metrics.json').read_text())
    assert fold['group_level']['n'] == 6
    assert fold['metrics_group']['auroc'] == fold['group_level']['metrics']['auroc']['value']

def test_dataset_normalisation_uses_training_statistics(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    man = _tone_manifest(tmp_path, n_patients=6, per_patient=2, multi=False)
    seen = []
    import audiokit.cache as C
    orig = C.FeatureDataset.__init__
    def spy(self, *a, **k):
        orig(self, *a, **k); seen.append((k.get('stats') is not None, self.stats))
    monkeypatch.setattr(C.FeatureDataset, '__init__', spy)
    spec = {**SPEC, 'train': {**SPEC['train'], 'epochs': 1, 'early_stopping_metric': 'balanced_accuracy'},
            'features': {**SPEC['features'], 'normalize': 'dataset'}, 'eval': {'n_boot': 0}}
    train_model(man, fold=0, spec=spec, out_dir=tmp_path / 'run', cache_dir=tmp_path / 'cache', progress=False)
    (tr_given, tr_stats), (va_given, va_stats), (te_given, te_stats) = seen[-3:]      # the training set, then val and test
    assert not tr_given and va_given and te_given                              # val/test receive the training statistics
    assert all(torch.equal(a, b) for a, b in zip(tr_stats, va_stats)) and all(torch.equal(a, b) for a, b in zip(tr_stats, te_stats))
