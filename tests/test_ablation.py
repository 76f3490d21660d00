"""The synthetic-data ablation end to end: `nbs/experiments/ablation_synthetic.ipynb` run by papermill with tiny
parameters (metrics per ratio written, the audit clean, synthetic rows only in train and made from training
patients only), and the same ablation through `train_eval.ipynb`'s run spec (`data.synthetic` + `balance.synthetic_ratio`)."""
import json
import math
from pathlib import Path

import pandas as pd
import papermill as pm
import pytest

from audiokit.splits import audit_splits

ROOT = Path(__file__).resolve().parents[1]
ABLATION = ROOT / 'nbs' / 'experiments' / 'ablation_synthetic.ipynb'
TRAIN_EVAL = ROOT / 'nbs' / 'experiments' / 'train_eval.ipynb'
SPEC = {'audio': {'sample_rate': 4000, 'duration': 2.5}, 'features': {'n_fft': 256, 'hop_length': 64, 'n_mels': 32}, 'model': {'width': 8},
        'splits': {'k': 2, 'val_fraction': 0.2, 'seed': 1}, 'train': {'epochs': 1, 'batch_size': 32, 'seed': 1}, 'eval': {'n_boot': 20}}
TINY = dict(n_patients=12, recordings_per_patient=2, recording_duration=10.0, ratios=[0, 0.5], seed=1, spec=SPEC)


def _run(nb: Path, out: Path, **params):
    pm.execute_notebook(str(nb), str(out.parent / f"{nb.stem}.out.ipynb"), parameters={'out_dir': str(out), **params},
                        kernel_name='python3', language='python', progress_bar=False, cwd=str(ROOT / 'nbs' / 'experiments'))


@pytest.fixture(scope='module')
def ablation(tmp_path_factory):
    out = tmp_path_factory.mktemp('ablation') / 'run'
    _run(ABLATION, out, **TINY)
    return out


def test_metrics_per_ratio(ablation):
    res = pd.read_csv(ablation / 'results.csv')
    assert sorted(res['ratio'].unique()) == [0.0, 0.5]
    assert len(res) == 2 * res['fold'].nunique() and res['fold'].nunique() == 2
    assert res['icbhi_score'].between(0, 1).all()
    assert (res.loc[res['ratio'] == 0, 'n_synthetic'] == 0).all() and (res.loc[res['ratio'] == 0.5, 'n_synthetic'] > 0).all()
    summ = pd.read_csv(ablation / 'summary.csv')
    for r in (0.0, 0.5):
        got = set(summ.loc[summ['ratio'] == r, 'metric'])
        assert 'icbhi_score' in got and any(m.startswith('recall[') for m in got)
    metrics = json.loads((ablation / 'metrics.json').read_text())
    assert {'icbhi_score@0', 'icbhi_score@0.5'} <= set(metrics)
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    abl = json.loads((ablation / 'ablation.json').read_text())
    assert list(abl['verdicts']) == ['0.5'] and all(v.startswith(('helps', 'does not help', 'inconclusive')) for v in abl['verdicts'].values())
    assert (ablation / 'ablation_synthetic.png').stat().st_size > 1000
    # each (fold, ratio) is one run_fold: its run spec says the ratio and the fold's own pool
    for f in res['fold'].unique():
        run = (ablation / 'runs' / 'ratio0.5' / f"fold{f}" / 'run.yaml').read_text()
        assert 'synthetic_ratio: 0.5' in run and f"synthetic/fold{f}/synthetic.csv" in run


def test_audit_clean_and_synthetic_only_in_train(ablation):
    audit = json.loads((ablation / 'audit.json').read_text())
    assert audit['all_ok'] and all(r['ok'] for r in audit['runs'])
    assert all(p['from_train_only'] and p['n_sources'] > 0 for p in audit['provenance'])
    files = sorted((ablation / 'manifests').glob('fold*_ratio*.csv'))
    assert len(files) == 4
    for f in files:
        df = pd.read_csv(f)
        syn = df[df['synthetic'].astype(str).str.lower() == 'true']
        assert set(syn['subset']) <= {'train'}, f
        assert (len(syn) > 0) == (not f.stem.endswith('_ratio0')), f     # ratio 0 has none, ratio 0.5 has some
        assert not set(syn['group']) & set(df.loc[df['subset'].isin(['val', 'test']), 'group'])
        assert audit_splits(df, check_audio=False).ok


def test_synthetic_made_from_training_patients_only(ablation):
    for f in sorted((ablation / 'manifests').glob('fold*_ratio0.5.csv')):
        fold = f.name.split('_')[0]
        df = pd.read_csv(f)
        summary = json.loads((ablation / 'synthetic' / fold / 'generation_summary.json').read_text())
        sources = {str(Path(r['source'].rsplit('[', 1)[0]).resolve()) for r in summary['files']}
        assert summary['backend'] == 'inject' and sources
        train = {str(Path(p).resolve()) for p in df.loc[(df['subset'] == 'train') & (df['synthetic'].astype(str).str.lower() != 'true'), 'path']}
        held = {str(Path(p).resolve()) for p in df.loc[df['subset'].isin(['val', 'test']), 'path']}
        assert sources <= train and not sources & held


def test_train_eval_synthetic_ratio_through_the_spec(ablation, tmp_path):
    "The sweep's way: train_eval with data.synthetic and balance.synthetic_ratio as overrides."
    pool = ablation / 'synthetic' / 'fold0' / 'synthetic.csv'
    manifest = ablation / 'manifests' / 'fold0_ratio0.csv'      # fold 0 of the ablation, expanded (train/val/test)
    out = tmp_path / 'run'
    _run(TRAIN_EVAL, out, subdb='all', fold=0, data=str(manifest), spec=SPEC,
         overrides={'data': {'synthetic': str(pool)}, 'balance': {'synthetic_ratio': 0.5}})
    m = json.loads((out / 'metrics.json').read_text())
    assert 'icbhi_score' in m['metrics'] and m['n']['train'] > len(pd.read_csv(manifest).query("subset == 'train'"))
    assert 'synthetic_ratio: 0.5' in (out / 'run.yaml').read_text()
