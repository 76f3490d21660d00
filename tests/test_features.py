"""Feature extraction: parity with librosa, shapes, silence, short clips, batching, devices, dataset statistics."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import librosa

from audiokit.core import FeatureConfig, find_shared_data
from audiokit.features import (FRAME_SCALARS, FeatureError, FeatureExtractor, deltas, log_mel, mfcc, pitch_track, frame_signal,
                               power_spectrogram, spectral_bandwidth, spectral_centroid, spectral_rolloff, zero_crossing_rate, rms)

LOGMEL_TOL_DB = 1e-2   # stated in 06_features
MFCC_TOL = 2e-2
KINDS = ('logmel', 'mfcc', 'frames', 'image', 'waveform')


def _noise_chirp(sr, seconds=1.5, seed=0):
    g = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    return (0.4 * np.sin(2 * np.pi * (150 * t + 600 * t ** 2)) + 0.05 * g.standard_normal(len(t))).astype('float32')


@pytest.mark.parametrize('sr,n_fft,hop,n_mels,f_min,f_max', [
    (22050, 1024, 512, 128, 0.0, None), (16000, 512, 160, 40, 20.0, 7600.0), (4000, 256, 64, 32, 25.0, 1000.0), (44100, 2048, 441, 96, 0.0, None)])
def test_logmel_and_mfcc_match_librosa(sr, n_fft, hop, n_mels, f_min, f_max):
    y = _noise_chirp(sr)
    ours = log_mel(torch.from_numpy(y), sr, n_fft, hop, n_mels, f_min, f_max)[0].numpy()
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmin=f_min, fmax=f_max), top_db=80.0)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < LOGMEL_TOL_DB
    m = mfcc(torch.from_numpy(y), sr, 20, n_fft, hop, n_mels, f_min, f_max)[0].numpy()
    mref = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmin=f_min, fmax=f_max)
    assert np.abs(m - mref).max() < MFCC_TOL
    # the extractor gives the same numbers as the functions
    fx = FeatureExtractor(FeatureConfig(kind='mfcc', n_fft=n_fft, hop_length=hop, n_mels=n_mels, f_min=f_min, f_max=f_max,
                                        n_mfcc=20, normalize='none'), sr)
    out = fx(torch.from_numpy(y)[None])
    assert np.abs(out[0, 0].numpy() - mref).max() < MFCC_TOL
    assert np.abs(out[0, 1].numpy() - librosa.feature.delta(mref))[:, 4:-4].max() < 1e-3


def test_parity_on_esc10_clips():
    root = find_shared_data('esc10')
    if root is None: pytest.skip('ESC-10 not available (../shared/data/esc10)')
    files = sorted(root.glob('*/*.ogg'))[::80]
    for f in files:
        y, sr = librosa.load(f, sr=22050)
        ours = log_mel(torch.from_numpy(y), sr)[0].numpy()
        ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_fft=1024, hop_length=512, n_mels=128), top_db=80.0)
        assert np.abs(ours - ref).max() < LOGMEL_TOL_DB, f
        mref = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=40, n_fft=1024, hop_length=512, n_mels=128)
        assert np.abs(mfcc(torch.from_numpy(y), sr)[0].numpy() - mref).max() < MFCC_TOL, f


def test_spectral_descriptors_match_librosa():
    sr = 16000
    y = _noise_chirp(sr, 1.0)
    mag = power_spectrogram(torch.from_numpy(y)[None], 1024, 256, power=1.0)
    freqs = torch.linspace(0, sr / 2, 513)
    cen = spectral_centroid(mag, freqs)[0].numpy()
    assert np.allclose(cen, librosa.feature.spectral_centroid(y=y, sr=sr, n_fft=1024, hop_length=256)[0], rtol=1e-3, atol=0.5)
    assert np.allclose(spectral_bandwidth(mag, freqs)[0].numpy(), librosa.feature.spectral_bandwidth(y=y, sr=sr, n_fft=1024, hop_length=256)[0], rtol=1e-3, atol=0.5)
    assert np.abs(spectral_rolloff(mag, freqs)[0].numpy() - librosa.feature.spectral_rolloff(y=y, sr=sr, n_fft=1024, hop_length=256)[0]).max() <= sr / 1024 + 1e-3
    fr = frame_signal(torch.from_numpy(y), 1024, 256)
    assert np.allclose(rms(fr)[0].numpy(), librosa.feature.rms(y=y, frame_length=1024, hop_length=256)[0], atol=1e-5)
    zref = librosa.feature.zero_crossing_rate(y, frame_length=1024, hop_length=256, center=True)[0]
    assert np.abs(zero_crossing_rate(fr)[0].numpy() - zref)[4:-4].max() < 2e-3   # edges: librosa pads with edge values


@pytest.mark.parametrize('f0', [110.0, 196.0, 440.0, 880.0])
def test_pitch_of_a_harmonic_tone(f0):
    sr = 16000
    t = torch.arange(sr) / sr
    x = sum(0.5 / h * torch.sin(2 * math.pi * f0 * h * t) for h in (1, 2, 3, 4))
    track = pitch_track(frame_signal(x, 1024, 256), sr)[0]
    assert abs(track[4:-4].median().item() - f0) / f0 < 0.01


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('normalize', ['none', 'example'])
def test_silence_gives_finite_features(kind, normalize):
    fx = FeatureExtractor(FeatureConfig(kind=kind, normalize=normalize, channels=3), 16000)
    out = fx(torch.zeros(3, 8000))
    assert out.shape == (3, *fx.output_shape(8000)) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize('kind', ['logmel', 'mfcc', 'frames', 'image'])
def test_short_clip_padded_or_refused(kind):
    cfg = FeatureConfig(kind=kind, n_fft=1024)
    out = FeatureExtractor(cfg, 16000)(torch.randn(2, 100))
    assert torch.isfinite(out).all() and out.shape[0] == 2
    with pytest.raises(FeatureError, match='shorter than one analysis window of 1024 samples'):
        FeatureExtractor(cfg.replace(short_clip='error'), 16000)(torch.randn(2, 100))
    FeatureExtractor(cfg.replace(short_clip='error'), 16000)(torch.randn(2, 1024))   # exactly one window is fine


def test_input_layouts_and_dtypes():
    fx = FeatureExtractor(FeatureConfig(kind='logmel'), 16000)
    x = torch.randn(16000, dtype=torch.float64)
    a, b, c = fx(x), fx(x[None]), fx(x[None, None].repeat(1, 2, 1))
    assert a.dtype == torch.float32 and a.shape == b.shape == c.shape == (1, 1, 128, 32)
    assert torch.allclose(a, b) and torch.allclose(a, c, atol=1e-4)
    with pytest.raises(FeatureError, match='expected'):
        fx(torch.zeros(1, 1, 1, 100))


def test_nyquist_is_checked():
    from audiokit.core import ConfigError
    with pytest.raises(ConfigError, match='Nyquist'):
        FeatureExtractor(FeatureConfig(f_max=5000.0), 8000)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(200, 30000), batch=st.integers(1, 3), kind=st.sampled_from(['logmel', 'mfcc', 'frames', 'image']),
       scale=st.sampled_from([0.0, 1e-6, 1.0, 30.0]))
def test_shapes_batching_and_finiteness(n, batch, kind, scale):
    fx = FeatureExtractor(FeatureConfig(kind=kind, n_fft=512, hop_length=128, n_mels=40, n_mfcc=13, image_size=(32, 48), channels=1), 16000)
    x = scale * torch.randn(batch, n, generator=torch.Generator().manual_seed(n))
    out = fx(x)
    assert out.shape == (batch, *fx.output_shape(n)) and torch.isfinite(out).all()
    # each example's features do not depend on the others in the batch
    assert torch.allclose(fx(x[-1:]), out[-1:], atol=1e-3, rtol=1e-4)


def test_dataset_stats_stream_and_match_pooled():
    fx = FeatureExtractor(FeatureConfig(kind='frames', n_mfcc=13, normalize='dataset'), 16000)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(2, 16000, generator=g) * (i + 1) for i in range(3)]
    fx.fit_stats(batches)
    raw = torch.cat([fx.raw(b) for b in batches])
    assert fx.stats_mean.shape == (1, raw.shape[-1])
    assert torch.allclose(fx.stats_mean[0], raw.double().mean((0, 1)).float(), rtol=1e-4, atol=1e-3)
    z = fx(torch.cat(batches))
    assert z.shape == raw.shape and z.mean((0, 1)).abs().max() < 1e-2


@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device')
@pytest.mark.parametrize('kind', KINDS)
def test_gpu_matches_cpu(kind):
    x = torch.from_numpy(_noise_chirp(22050))[None].repeat(2, 1)
    cpu = FeatureExtractor(FeatureConfig(kind=kind), 22050)
    gpu = FeatureExtractor(FeatureConfig(kind=kind), 22050).to('cuda')
    a, b = cpu(x), gpu(x.cuda())
    assert b.is_cuda and b.dtype == torch.float32
    assert torch.allclose(a, b.cpu(), atol=2e-2, rtol=1e-3)


def test_forward_is_differentiable_and_trains_inside_a_sequential():
    """FeatureExtractor is an ordinary module: no inference mode inside forward (the old code ran under
    torch.inference_mode, so backward through it failed and a composed model could not train)."""
    torch.manual_seed(0)
    gain = torch.nn.Parameter(torch.tensor(1.0))
    fx = FeatureExtractor(FeatureConfig(kind='logmel', n_fft=256, hop_length=128, n_mels=16, normalize='none'), 8000)
    head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2))
    model = torch.nn.Sequential(fx, head)
    x, y = 0.1 * torch.randn(4, 4000), torch.tensor([0, 1, 0, 1])
    loss = torch.nn.functional.cross_entropy(model(gain * x), y)
    loss.backward()
    assert gain.grad is not None and torch.isfinite(gain.grad) and gain.grad != 0
    model = torch.nn.Sequential(FeatureExtractor(fx.cfg.replace(normalize='example'), 8000), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(10):
        opt.zero_grad(); l = torch.nn.functional.cross_entropy(model(x), y); l.backward(); opt.step(); losses.append(l.item())
    assert losses[-1] < losses[0]
    with torch.inference_mode(): assert fx(x).is_inference()       # the caller chooses inference mode


@pytest.mark.parametrize('kind', ['logmel', 'frames'])
def test_dataset_stats_are_state_dict_buffers(kind):
    cfg = FeatureConfig(kind=kind, n_fft=256, hop_length=128, n_mels=16, n_mfcc=8, normalize='dataset')
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4000, generator=g)
    fx = FeatureExtractor(cfg, 8000).fit_stats([x])
    sd = fx.state_dict()
    assert set(sd) == {'stats_mean', 'stats_std'}
    fresh = FeatureExtractor(cfg, 8000)
    fresh.load_state_dict(sd)                       # the old code refused these keys as unexpected
    assert torch.equal(fresh(x), fx(x))
    wrapped = torch.nn.Sequential(FeatureExtractor(cfg, 8000))
    wrapped.load_state_dict(torch.nn.Sequential(fx).state_dict())
    assert torch.equal(wrapped(x), fx(x))
    with pytest.raises(RuntimeError, match='stats_mean'):
        FeatureExtractor(cfg, 8000).load_state_dict({'stats_mean': sd['stats_mean']})


def test_silence_of_logmel_equals_zero_padded_audio():
    fx = FeatureExtractor(FeatureConfig(kind='logmel', n_fft=256, hop_length=64, n_mels=24, normalize='none'), 8000)
    x = 0.3 * torch.randn(2, 2000, generator=torch.Generator().manual_seed(1))
    padded = fx.raw(torch.nn.functional.pad(x, (0, 2000)))[..., -20:]
    assert torch.allclose(padded, fx.silence(fx.raw(x)).expand_as(padded), atol=1e-4)
    for kind in ('mfcc', 'frames', 'waveform'):
        k = FeatureExtractor(FeatureConfig(kind=kind, n_fft=256, hop_length=64, n_mels=24, n_mfcc=8), 8000)
        r = k.raw(x); s = k.silence(r)
        assert s.shape[k.time_axis] == 1 and torch.cat([r, s], k.time_axis).shape[k.time_axis] == r.shape[k.time_axis] + 1
    fr = FeatureExtractor(FeatureConfig(kind='frames', n_fft=256, hop_length=64, n_mels=24, n_mfcc=8), 8000)
    s = fr.silence(fr.raw(x))[0, 0]
    tail = fr.raw(torch.nn.functional.pad(x, (0, 2000)))[0, -10:]
    scal = slice(len(fr.feature_names) - len(FRAME_SCALARS), None)
    assert torch.allclose(tail[:, scal], s[scal].expand_as(tail[:, scal]), atol=1e-5)   # the frame scalars of silence
    assert torch.allclose(tail[:, 8:24], s[8:24].expand_as(tail[:, 8:24]), atol=1e-4)    # deltas of silence are 0


# ---- feature kinds are registrable (core.FEATURES)

from audiokit.core import FEATURES, ConfigError
from audiokit.features import FeatureKind, power_to_db


@FEATURES.register('test_logspec')
class _TestLogSpec(FeatureKind):
    "A user's kind with only `raw`: log power spectrogram without mel, `(B, 1, n_fft//2+1, T)`."
    def raw(self, fx, wave): return power_to_db(fx.power(wave), fx.cfg.top_db).unsqueeze(1)


@FEATURES.register('test_frames_rows')
class _TestRows(FeatureKind):
    "A user's `(B, T, D)` kind: the log-mel transposed, per-feature example normalisation and its own silence."
    time_axis = 1
    def raw(self, fx, wave): return fx.logmel(fx.power(wave)).transpose(1, 2)
    def example_dims(self, x): return (1,)
    def silence(self, fx, raw): return torch.full_like(raw[:, :1], -100.0)


def test_builtin_kinds_are_registered():
    assert set(KINDS) <= set(FEATURES.names())
    for kind in KINDS:
        assert isinstance(FeatureExtractor(FeatureConfig(kind=kind), 16000).kind, FEATURES[kind])


def test_a_registered_kind_is_used_by_the_extractor():
    y = _noise_chirp(16000, 1.0)
    fx = FeatureExtractor(FeatureConfig(kind='test_logspec', n_fft=512, hop_length=128, normalize='none'), 16000)
    out = fx(torch.from_numpy(y)[None])
    ref = librosa.power_to_db(np.abs(librosa.stft(y, n_fft=512, hop_length=128)) ** 2, top_db=80.0)
    assert out.shape == (1, 1, 257, ref.shape[1]) == (1, *fx.output_shape(len(y)))      # output_shape by default from `raw`
    assert np.abs(out[0, 0].numpy() - ref).max() < LOGMEL_TOL_DB
    x = 0.1 * torch.randn(3, 4000, generator=torch.Generator().manual_seed(0))
    r = fx.raw(x)
    assert fx.time_axis == -1 and torch.equal(fx.silence(r), r.amin(-1, keepdim=True))   # default silence: min over frames
    z = FeatureExtractor(fx.cfg.replace(normalize='example'), 16000)(x)
    assert z.mean((2, 3)).abs().max() < 1e-4 and ((z.std((2, 3), unbiased=False) - 1).abs() < 1e-3).all()
    ds = FeatureExtractor(fx.cfg.replace(normalize='dataset'), 16000).fit_stats([x])
    assert ds.stats_mean.shape == (1, 257, 1) and torch.isfinite(ds(x)).all()


def test_a_kind_with_its_own_layout_and_silence():
    fx = FeatureExtractor(FeatureConfig(kind='test_frames_rows', n_fft=256, hop_length=64, n_mels=24), 8000)
    x = 0.1 * torch.randn(2, 3000, generator=torch.Generator().manual_seed(1))
    out = fx(x)
    assert out.shape == (2, fx.n_frames(3000), 24) == (2, *fx.output_shape(3000))
    assert out.mean(1).abs().max() < 1e-4                                                   # normalised per feature over time
    s = fx.silence(fx.raw(x))
    assert s.shape == (2, 1, 24) and (s == -100).all()


def test_clip_classifier_on_a_registered_kind():
    from audiokit.clipmodel import ClipClassifier, hop_frames_for, window_frames_for
    from audiokit.core import ModelConfig
    from audiokit.models import build_model
    torch.manual_seed(0)
    fx = FeatureExtractor(FeatureConfig(kind='test_logspec', n_fft=256, hop_length=128), 8000)
    w, h = window_frames_for(0.5, fx), hop_frames_for(0.5, 0.5, fx)
    clip = ClipClassifier(fx, build_model(ModelConfig(name='cnn', num_classes=2, width=4), fx.output_shape(4000)), w, h).eval()
    x = 0.1 * torch.randn(2, 9000, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        p, p_short = clip(x), clip(x[:, :1500])                   # the short clip is padded with the kind's silence
        assert torch.allclose(p, clip.forward_features(fx.raw(x)))
    assert p.shape == p_short.shape == (2, 2) and torch.allclose(p.sum(1), torch.ones(2)) and torch.isfinite(p_short).all()


def test_unknown_or_malformed_kinds_are_refused():
    with pytest.raises(ConfigError, match=r"FeatureConfig\.kind: unknown feature kind 'pcen'; registered: .*logmel.*test_logspec"):
        FeatureExtractor(FeatureConfig(kind='pcen'), 16000)
    assert FeatureConfig(kind='pcen').kind == 'pcen'             # the config itself takes any name: kinds register at import time

    @FEATURES.register('test_no_raw')
    class NoRaw(FeatureKind):
        "Forgot `raw`."
    @FEATURES.register('test_not_a_class')
    def not_a_kind(fx, wave): return wave
    for name in ('test_no_raw', 'test_not_a_class'):
        with pytest.raises(ConfigError, match=r"lacks .*'raw'.*FeatureKind"):
            FeatureExtractor(FeatureConfig(kind=name), 16000)


def test_image_has_no_silence_and_a_user_kind_without_time_axis_says_so():
    with pytest.raises(FeatureError, match='no time axis'):
        FeatureExtractor(FeatureConfig(kind='image'), 16000).silence(torch.zeros(1, 1, 128, 128))

    @FEATURES.register('test_summary')
    class Summary(FeatureKind):
        "Mean log-mel over time: no time axis."
        time_axis = None
        def raw(self, fx, wave): return fx.logmel(fx.power(wave)).mean(-1, keepdim=True).unsqueeze(1)
    fx = FeatureExtractor(FeatureConfig(kind='test_summary', n_mels=16), 16000)
    assert fx.output_shape(5000) == (1, 16, 1)
    with pytest.raises(FeatureError, match="'test_summary' has no time axis"):
        fx.silence(fx.raw(torch.randn(1, 5000)))
