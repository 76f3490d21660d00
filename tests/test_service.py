"""ClassifierService: whole clips through sliding windows, the multi-label threshold from the spec, export of the
whole waveform -> probabilities module, and the `audiokit classify` / `audiokit export` commands."""
import json, subprocess, sys

import numpy as np
import pytest
import soundfile as sf
import torch

from audiokit.clipmodel import ClipClassifier, hop_frames_for, save_clip_model, window_frames_for
from audiokit.core import FeatureConfig, ModelConfig
from audiokit.features import FeatureExtractor
from audiokit.labels import LabelSpace
from audiokit.models import build_model
from audiokit.service import ClassifierService, ServiceError

SR = 8000


def _tone_or_noise(n, g):
    t = torch.arange(SR) / SR
    y = torch.arange(n) % 2
    f = 300 + 1200 * torch.rand(n, 1, generator=g)
    return 0.05 * torch.randn(n, SR, generator=g) + 0.3 * y[:, None] * torch.sin(2 * np.pi * f * t), y


@pytest.fixture(scope='module')
def tone_model(tmp_path_factory):
    "A tiny CNN on 1-s windows that tells a tone from noise, max over windows, saved as training saves it."
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    fx = FeatureExtractor(FeatureConfig(kind='logmel', n_fft=256, hop_length=128, n_mels=32), SR)
    W, H = window_frames_for(1.0, fx), hop_frames_for(1.0, 0.5, fx)
    clip = ClipClassifier(fx, build_model(ModelConfig(num_classes=2, width=8), (1, 32, W)), W, H, 'max')
    opt = torch.optim.Adam(clip.parameters(), lr=3e-3)
    for _ in range(30):
        x, y = _tone_or_noise(16, g)
        opt.zero_grad(); torch.nn.functional.nll_loss(clip(x).clamp_min(1e-7).log(), y).backward(); opt.step()
    root = tmp_path_factory.mktemp('svc')
    spec = {'name': 't', 'audio': {'sample_rate': SR, 'duration': 1.0}}      # a fixed duration is NOT applied when classifying
    save_clip_model(root / 'model.ckpt', clip.eval(), spec, LabelSpace(['noise', 'tone']), extra={'fold': 0})
    t = np.arange(6 * SR) / SR
    rec = 0.05 * np.random.default_rng(1).standard_normal(len(t)) + 0.3 * np.sin(2 * np.pi * 800 * t) * (t >= 3)
    sf.write(root / 'late_tone.wav', rec.astype('float32'), SR)
    return root


def test_classify_reads_the_whole_clip(tone_model):
    """The event is only in the second half: the old service looked at the first `duration` seconds and said noise."""
    svc = ClassifierService(tone_model / 'model.ckpt')
    wave, _ = sf.read(tone_model / 'late_tone.wav', dtype='float32')
    whole = svc.classify(tone_model / 'late_tone.wav')
    assert whole['predicted_class'] == 'tone' and whole['windows'] == 11 and abs(whole['duration_s'] - 6) < 1e-3
    assert svc.classify(wave[:SR], SR)['predicted_class'] == 'noise'          # what the first second alone says
    res = svc.classify_batch([wave[:SR], wave, wave[-SR // 2:]], SR, top_k=1)     # clips of several lengths in one call
    assert [r['predicted_class'] for r in res[:2]] == ['noise', 'tone'] and [r['windows'] for r in res] == [1, 11, 1]
    # another sample rate and stereo give the same answer
    up = np.stack([np.interp(np.arange(len(wave) * 2) / 2, np.arange(len(wave)), wave)] * 2)
    assert svc.classify(up, 2 * SR)['predicted_class'] == 'tone'


def test_multilabel_threshold_comes_from_the_spec(tone_model):
    fx = FeatureExtractor(FeatureConfig(kind='logmel', n_fft=256, hop_length=128, n_mels=32), SR)
    W = window_frames_for(1.0, fx)
    clip = ClipClassifier(fx, build_model(ModelConfig(num_classes=2, multi_label=True, width=4), (1, 32, W)), W, W // 2, multi_label=True)
    labels = LabelSpace(['crackle', 'wheeze'], multi_label=True)
    x = 0.1 * np.random.default_rng(0).standard_normal(3 * SR)
    for spec, thr in (({'eval': {'threshold': 0.2}}, 0.2), ({}, 0.5)):
        r = ClassifierService().use(clip, labels, spec).classify(x, SR)
        assert r['threshold'] == thr and r['labels'] == [c for c, p in r['probabilities'].items() if p >= thr]
    with pytest.raises(ServiceError, match='3 classes'): ClassifierService().use(clip, LabelSpace(['a', 'b', 'c'], multi_label=True))


def test_export_is_the_whole_model(tone_model, tmp_path):
    import onnxruntime as ort
    svc = ClassifierService(tone_model / 'model.ckpt')
    info = svc.export(tmp_path / 'm.onnx')
    assert info['max_abs_diff'] <= 1e-4 and len(info['max_abs_diff_per_length']) == 4
    sess = ort.InferenceSession(info['path'], providers=['CPUExecutionProvider'])
    wave = svc.waves([tone_model / 'late_tone.wav'])[0].numpy()            # a waveform is all the exported model needs
    p = sess.run(None, {'wave': wave})[0][0]
    ref = svc.classify(tone_model / 'late_tone.wav')['probabilities']
    assert np.abs(p - np.array([ref['noise'], ref['tone']])).max() <= 1e-4


def _cli(*args):
    return subprocess.run([sys.executable, '-m', 'audiokit.cli', *map(str, args)], capture_output=True, text=True, timeout=300)


def test_cli_classify_and_export(tone_model, tmp_path):
    ck, wav = tone_model / 'model.ckpt', tone_model / 'late_tone.wav'
    r = _cli('classify', wav, '--model', ck, '--json', '--top-k', '1')
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out[0]['predicted_class'] == 'tone' and out[0]['windows'] == 11 and len(out[0]['top_k']) == 1
    r = _cli('classify', wav, tmp_path / 'missing.wav', '--model', ck)
    assert r.returncode == 1 and 'late_tone.wav: tone' in r.stdout and 'missing.wav' in r.stdout and 'not found' in r.stdout
    (tmp_path / 'junk.ckpt').write_bytes(b'not a model')
    r = _cli('classify', wav, '--model', tmp_path / 'junk.ckpt')
    assert r.returncode == 1 and 'junk.ckpt' in r.stderr
    for fmt in ('onnx', 'torchscript'):
        e = _cli('export', '--model', ck, '--format', fmt, '--out', tmp_path / f'm.{fmt}')
        assert e.returncode == 0, e.stderr[-2000:]
        assert json.loads(e.stdout.strip().splitlines()[-1])['max_abs_diff'] <= 1e-4
    e = _cli('export', '--model', ck, '--format', 'onnx', '--out', tmp_path / 'm.onnx')
    assert e.returncode == 1 and 'm.onnx' in e.stderr and 'overwrite' in e.stderr
    assert _cli('export', '--model', ck, '--format', 'onnx', '--out', tmp_path / 'm.onnx', '--overwrite').returncode == 0


def test_service_train_goes_through_train_fold_with_training_statistics(tmp_path):
    # ClassifierService.train used to assemble its own run: validation normalised with its own statistics,
    # balancing and augmentation ignored. Now it is experiment.train_fold on the rows given.
    import numpy as np, pandas as pd, soundfile as sf
    from audiokit.service import ClassifierService
    from audiokit.cache import FeatureDataset
    from audiokit.labels import LabelSpace
    from audiokit.spec import load_spec
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        k = i % 2
        t = np.arange(int(rng.uniform(0.5, 2.0) * 8000)) / 8000
        y = (0.3 * np.sin(2 * np.pi * 600 * t) if k else 0.0) + 0.1 * rng.standard_normal(len(t))
        sf.write(tmp_path / f"c{i}.wav", np.asarray(y, 'float32'), 8000)
        rows.append({'path': str(tmp_path / f"c{i}.wav"), 'label': ['noise', 'tone'][k], 'group': f"g{i % 8}"})
    df = pd.DataFrame(rows)
    tr, va = df[df.group != 'g0'].reset_index(drop=True), df[df.group == 'g0'].reset_index(drop=True)
    over = ['audio.sample_rate=8000', 'features.n_fft=256', 'features.hop_length=128', 'features.n_mels=16', 'model.width=4',
            'train.epochs=2', 'train.batch_size=8', 'features.normalize=dataset', 'augment.gain_p=0.5']
    svc = ClassifierService()
    hist = svc.train(tr, va, overrides=over, out_dir=tmp_path / 'out', cache_dir=tmp_path / 'cache')
    assert len(hist) == 2 and svc.spec['augment']['gain_p'] == 0.5 and (tmp_path / 'out' / 'run.yaml').exists()
    spec = load_spec(svc.spec)
    ds = FeatureDataset(tr, LabelSpace.from_manifest(tr), spec.audio, spec.features)
    ds.extractor.fit_stats((ds[i][0][None] for i in range(len(ds))), features=True)
    assert torch.allclose(svc.model.extractor.stats_mean, ds.extractor.stats_mean, atol=1e-4)   # the training rows' statistics
    r = svc.classify(str(tmp_path / 'c3.wav'))
    assert r['predicted_class'] in ('noise', 'tone') and abs(sum(r['probabilities'].values()) - 1) < 1e-4
