"""The waveform -> probabilities clip model: windows, equality of the waveform and cached-feature paths, training,
saving/loading, and ONNX/TorchScript export checked on several clip lengths."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from audiokit.clipmodel import (ClipClassifier, ClipModelError, ExportMismatchError, export_clip_model, frame_windows,
                                hop_frames_for, load_clip_model, resolve_window, save_clip_model, window_frames_for)
from audiokit.core import ConfigError, FeatureConfig, ModelConfig, ResultExistsError, WindowConfig
from audiokit.features import FeatureExtractor
from audiokit.labels import LabelSpace
from audiokit.models import CheckpointError, SmallCNN, build_model, save_checkpoint

SR = 8000
SMALL = dict(n_fft=256, hop_length=128, n_mels=24, n_mfcc=8)


def make_clip(kind='logmel', normalize='example', aggregate='mean', multi_label=False, seconds=0.5, seed=0):
    torch.manual_seed(seed)
    fx = FeatureExtractor(FeatureConfig(kind=kind, normalize=normalize, **SMALL), SR)
    if normalize == 'dataset': fx.fit_stats([0.1 * torch.randn(3, 2 * SR, generator=torch.Generator().manual_seed(seed))])
    w, h = window_frames_for(seconds, fx), hop_frames_for(seconds, 0.5, fx)
    shape = {'logmel': (1, 24, w), 'mfcc': (3, 8, w), 'frames': (w, 8 * 3 + 7), 'waveform': (1, w)}[kind]
    name = 'cnn' if kind in ('logmel', 'mfcc') else 'lstm_attention'
    net = build_model(ModelConfig(name=name, num_classes=3, multi_label=multi_label, width=4, in_channels=3 if kind == 'mfcc' else 1), shape)
    return ClipClassifier(fx, net, w, h, aggregate, multi_label).eval()


@settings(max_examples=40, deadline=None)
@given(T=st.integers(1, 60), window=st.integers(1, 20), hop=st.integers(1, 20))
def test_frame_windows_cover_the_clip(T, window, hop):
    x = torch.arange(T, dtype=torch.float32).view(1, 1, T).repeat(2, 3, 1)
    w, valid = frame_windows(x, window, hop, -1, pad=-1.0)
    assert w.shape == (2, T // hop + 1, 3, window) and valid.shape == (T // hop + 1,)
    n_valid = 1 if T < window else (T - window) // hop + 1
    assert int(valid.sum()) == n_valid and bool(valid[0]) and valid[:n_valid].all()
    for k in range(n_valid):
        seg = torch.arange(k * hop, k * hop + window, dtype=torch.float32)
        assert torch.equal(w[0, k, 1], torch.where(seg < T, seg, torch.tensor(-1.0)))


def test_frame_windows_on_a_middle_time_axis():
    x = torch.randn(2, 50, 7)                         # frames layout (B, T, D)
    w, valid = frame_windows(x, 10, 5, time_axis=1)
    assert w.shape == (2, 11, 10, 7) and torch.equal(w[:, 3], x[:, 15:25]) and int(valid.sum()) == 9


def test_window_length_from_config():
    assert resolve_window(WindowConfig(seconds=1.5), []) == 1.5
    assert resolve_window(WindowConfig(min_seconds=1, max_seconds=3), [0.1, 0.2, 0.3]) == 1
    assert resolve_window(WindowConfig(), [1.0, 2.0, 4.0, float('nan')]) == 2.0
    with pytest.raises(ConfigError, match='no training clip durations'): resolve_window(WindowConfig(), [])
    fx = FeatureExtractor(FeatureConfig(**SMALL), SR)
    assert window_frames_for(1.0, fx) == fx.n_frames(SR) == fx.raw(torch.zeros(1, SR)).shape[-1]


@pytest.mark.parametrize('kind', ['logmel', 'mfcc', 'frames', 'waveform'])
@pytest.mark.parametrize('normalize', ['example', 'dataset'])
def test_forward_equals_forward_features_and_manual_windows(kind, normalize):
    clip = make_clip(kind, normalize, aggregate='max', multi_label=kind == 'mfcc')
    g = torch.Generator().manual_seed(1)
    for seconds in (0.1, 0.5, 1.37):
        x = 0.1 * torch.randn(2, int(seconds * SR), generator=g)
        with torch.no_grad():
            raw = clip.extractor.raw(x)
            p, pf = clip(x), clip.forward_features(raw)
        assert p.shape == (2, 3) and torch.equal(p, pf) and torch.isfinite(p).all()
    # by hand on the longest clip: every whole window cut from the raw features, normalised, classified, max
    ax = clip.extractor.time_axis % raw.dim()
    T, W, H = raw.shape[ax], clip.window_frames, clip.hop_frames
    with torch.no_grad():
        ps = [clip.net(clip.extractor.normalize(raw.narrow(ax, k * H, W))) for k in range((T - W) // H + 1)]
        ps = [torch.sigmoid(q) if clip.multi_label else torch.softmax(q, -1) for q in ps]
    assert torch.allclose(p, torch.stack(ps, 1).amax(1), atol=1e-6)


def test_image_kind_and_bad_settings_are_refused():
    net = SmallCNN(2)
    with pytest.raises(ConfigError, match='no time axis'): ClipClassifier(FeatureExtractor(FeatureConfig(kind='image')), net, 10, 5)
    with pytest.raises(ConfigError, match='aggregate'): ClipClassifier(FeatureExtractor(FeatureConfig()), net, 10, 5, 'median')
    with pytest.raises(ConfigError, match='window_frames'): ClipClassifier(FeatureExtractor(FeatureConfig()), net, 0, 5)


def test_the_whole_module_trains():
    clip = make_clip().train()
    x = 0.1 * torch.randn(4, SR)
    y = torch.tensor([0, 1, 2, 0])
    opt = torch.optim.Adam(clip.parameters(), lr=1e-2)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = torch.nn.functional.nll_loss(clip(x).clamp_min(1e-7).log(), y)
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in clip.parameters())
        opt.step(); losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_save_and_load_round_trip(tmp_path):
    clip = make_clip(normalize='dataset', aggregate='max')
    labels = LabelSpace(['a', 'b', 'c'])
    spec = {'name': 'x', 'eval': {'threshold': 0.4}, 'window': {'seconds': 0.5}}
    p = save_clip_model(tmp_path / 'model.ckpt', clip, spec, labels, extra={'fold': 1, 'best_epoch': 4})
    back, meta = load_clip_model(p)
    x = 0.1 * torch.randn(2, 9000)
    with torch.no_grad(): assert torch.equal(back(x), clip(x))
    assert meta['spec'] == spec and meta['labels'] == labels and meta['extra'] == {'fold': 1, 'best_epoch': 4}
    assert back.aggregate == 'max' and torch.equal(back.extractor.stats_std, clip.extractor.stats_std)
    with pytest.raises(ResultExistsError): save_clip_model(p, clip, spec, labels)
    with pytest.raises(ClipModelError, match='3 outputs'): save_clip_model(tmp_path / 'b.ckpt', clip, spec, LabelSpace(['a', 'b']))
    with pytest.raises(ClipModelError, match='multi-label'):
        save_clip_model(tmp_path / 'b.ckpt', clip, spec, LabelSpace(['a', 'b', 'c'], multi_label=True))
    save_checkpoint(tmp_path / 'net.ckpt', clip.net, ModelConfig(num_classes=3, width=4), ['a', 'b', 'c'])
    with pytest.raises(CheckpointError, match='without its features and windows'): load_clip_model(tmp_path / 'net.ckpt')


@pytest.mark.parametrize('fmt', ['onnx', 'torchscript'])
@pytest.mark.parametrize('kind', ['logmel', 'frames'])
def test_export_matches_eager_on_several_lengths(tmp_path, fmt, kind):
    clip = make_clip(kind, 'dataset' if kind == 'logmel' else 'example')
    r = export_clip_model(clip, tmp_path / f'm.{fmt}', fmt)
    assert len(r['max_abs_diff_per_length']) == 4 and r['max_abs_diff'] <= 1e-4 and (tmp_path / f'm.{fmt}').exists()
    print(fmt, kind, r['max_abs_diff_per_length'])
    with pytest.raises(ResultExistsError): export_clip_model(clip, tmp_path / f'm.{fmt}', fmt)
    assert not clip.training


def test_export_mismatch_raises_and_writes_nothing(tmp_path):
    class Scaled(torch.nn.Module):
        def __init__(self, net): super().__init__(); self.net = net
        def forward(self, x): return self.net(x) * float(x.shape[0]) / 10     # frozen at the example's length by tracing
    clip = make_clip()
    bad = ClipClassifier(clip.extractor, Scaled(clip.net), clip.window_frames, clip.hop_frames).eval()
    with pytest.raises(ExportMismatchError, match='differs from eager'): export_clip_model(bad, tmp_path / 'bad.pt', 'torchscript')
    assert not list(tmp_path.iterdir())
    with pytest.raises(ClipModelError, match='shorter than n_fft'): export_clip_model(clip, tmp_path / 'm.onnx', lengths_s=[0.001])
    with pytest.raises(ClipModelError, match='8000 Hz'): export_clip_model(clip, tmp_path / 'm.onnx', sample_rate=16000)
