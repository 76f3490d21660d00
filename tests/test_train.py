"""Training: a process killed mid-epoch resumes from its last checkpoint and ends exactly like an uninterrupted run;
the `audiokit train` CLI on a small simulated data set."""
import json, os, signal, subprocess, sys, textwrap
from pathlib import Path
import pytest

SCRIPT = textwrap.dedent('''
    import json, os, signal, sys, torch, torch.nn as nn
    from torch.utils.data import TensorDataset
    from audiokit.core import TrainConfig
    from audiokit.train import fit
    out, kill_at = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (96,), generator=g)
    x = torch.randn(96, 1, 16, 8, generator=g) + y.view(-1, 1, 1, 1).float()
    ds, val = TensorDataset(x[:64], y[:64]), TensorDataset(x[64:], y[64:])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Dropout(0.3), nn.AdaptiveAvgPool2d((4, 1)), nn.Flatten(), nn.Linear(16, 3))
    def metric(t, p, classes, ml): return {'accuracy': float((p.argmax(1) == t).mean())}
    def on_batch(e, b):
        if kill_at != 'none' and (e, b) == tuple(map(int, kill_at.split(','))): os.kill(os.getpid(), signal.SIGKILL)
    cfg = TrainConfig(epochs=5, batch_size=8, lr=1e-2, early_stopping_metric='accuracy', loss='ce')
    res = fit(model, ds, val, ['a', 'b', 'c'], cfg, out, metric_fn=metric, progress=False, on_batch=on_batch)
    digest = float(sum(v.double().sum() for v in model.state_dict().values() if v.is_floating_point()))
    print(json.dumps({'losses': [h['train_loss'] for h in res['history']], 'acc': [h['val_accuracy'] for h in res['history']], 'digest': digest}))
''')

def run(tmp_path, out, kill_at):
    script = tmp_path / 'fit_script.py'; script.write_text(SCRIPT)
    return subprocess.run([sys.executable, str(script), str(out), kill_at], capture_output=True, text=True, timeout=300)

def test_killed_training_resumes_to_the_same_result(tmp_path):
    full = run(tmp_path, tmp_path / 'full', 'none')
    assert full.returncode == 0, full.stderr
    killed = run(tmp_path, tmp_path / 'killed', '2,3')
    assert killed.returncode == -signal.SIGKILL                      # really killed, mid-epoch 3
    assert (tmp_path / 'killed' / 'checkpoint_last.pt').exists()
    resumed = run(tmp_path, tmp_path / 'killed', 'none')
    assert resumed.returncode == 0, resumed.stderr
    a, b = json.loads(full.stdout.strip().splitlines()[-1]), json.loads(resumed.stdout.strip().splitlines()[-1])
    assert a == b

def test_train_cli_on_simulated_icbhi(tmp_path):
    from audiokit.simulate import SimulatorConfig, simulate_icbhi
    from audiokit.datasets import build_icbhi
    from audiokit.manifest import write_manifest
    from audiokit.splits import assign_folds
    simulate_icbhi(tmp_path / 'sim', SimulatorConfig(n_patients=8, recordings_per_patient=1, recording_duration=10.0, seed=3))
    write_manifest(assign_folds(build_icbhi(tmp_path / 'sim').manifest, k=2, seed=0), tmp_path / 'manifest.csv')
    cmd = [sys.executable, '-m', 'audiokit.cli', 'train', str(tmp_path / 'manifest.csv'), '--out', str(tmp_path / 'run'), '-p', 'eval.n_boot=50',
           '-p', 'epochs=1', '-p', 'sample_rate=4000', '-p', 'duration=2.0', '-p', 'n_fft=256', '-p', 'hop_length=128', '-p', 'n_mels=32', '-p', 'width=8']
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path / 'run' / 'cnn_cv_summary.json').read_text())
    assert s['folds'] == [0, 1] and 'icbhi_score' in s['metrics'] and len(s['metrics']['accuracy']['per_fold']) == 2
    r2 = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r2.returncode == 1 and 'overwrite' in r2.stderr        # results are never silently replaced
    ck = tmp_path / 'run' / 'cnn' / 'fold0' / 'model.ckpt'
    wav = next((tmp_path / 'sim').glob('*.wav'))
    c = subprocess.run([sys.executable, '-m', 'audiokit.cli', 'classify', str(wav), str(tmp_path / 'missing.wav'), '--model', str(ck), '--top-k', '2'],
                       capture_output=True, text=True, timeout=300)
    assert c.returncode == 1 and wav.name in c.stdout and 'missing.wav' in c.stdout and 'file not found' in c.stdout
    e = subprocess.run([sys.executable, '-m', 'audiokit.cli', 'export', '--model', str(ck), '--format', 'onnx', '--out', str(tmp_path / 'm.onnx')],
                       capture_output=True, text=True, timeout=300)
    assert e.returncode == 0, e.stderr[-2000:]
    assert json.loads(e.stdout.strip().splitlines()[-1])['max_abs_diff'] <= 1e-4
