"""audiokit.audio: fault injection for audio I/O and property tests (hypothesis) for the shaping functions."""
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from audiokit.audio import (AUDIO_FORMATS, AudioLoadError, audio_info, ffmpeg_exe, fix_length, load_audio, load_many,
                            peak_normalize, resample, save_audio)
from audiokit.core import AudioKitError, ConfigError, ResultExistsError, find_shared_data, make_generator

SR = 8000
HSET = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def tone(seconds=0.5, sr=SR, freq=440.0, channels=1, amp=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return np.stack([amp * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)], 1).astype('float32')


@pytest.fixture
def good_wav(tmp_path):
    p = tmp_path / 'good.wav'
    sf.write(p, tone(), SR, subtype='FLOAT')
    return p


def assert_load_error(path, match):
    "load_audio raises AudioLoadError (an AudioKitError) whose message names the file and the problem."
    with pytest.raises(AudioLoadError) as ei:
        load_audio(path)
    msg = str(ei.value)
    assert str(path) in msg, msg
    assert match in msg, msg
    assert isinstance(ei.value, AudioKitError) and ei.value.path == str(path)
    return ei.value


# ------------------------------------------------------------------ fault injection
def test_missing_file(tmp_path):
    assert_load_error(tmp_path / 'nope.wav', 'not found')


def test_empty_file(tmp_path):
    p = tmp_path / 'empty.wav'; p.write_bytes(b'')
    assert_load_error(p, 'empty')


@pytest.mark.parametrize('ext', ['.wav', '.flac', '.ogg', '.mp3'])
def test_random_bytes(tmp_path, ext):
    p = tmp_path / f'noise{ext}'
    p.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert_load_error(p, 'cannot decode')


@pytest.mark.parametrize('fmt,subtype', [('WAV', 'PCM_16'), ('FLAC', 'PCM_16'), ('OGG', 'VORBIS')])
def test_truncated_real_file(tmp_path, fmt, subtype):
    "A real file cut short: either an AudioLoadError naming it, or (formats that stream) the samples that survive."
    full = tmp_path / f'full.{fmt.lower()}'
    sf.write(full, tone(2.0), SR, format=fmt, subtype=subtype)
    data = full.read_bytes()
    for cut in (12, 44, len(data) // 3):
        p = tmp_path / f'cut{cut}.{fmt.lower()}'
        p.write_bytes(data[:cut])
        try: w, sr = load_audio(p)
        except AudioLoadError as e:
            assert str(p) in str(e)
            continue
        # decoders that recover what precedes the cut must return finite audio, no longer than the original
        assert sr == SR and w.dtype == torch.float32 and 0 < w.shape[1] <= int(2.0 * SR) and torch.isfinite(w).all()
    # a header-only cut (12 bytes) can never be decoded
    assert_load_error(tmp_path / f'cut12.{fmt.lower()}', '')


def test_zero_length(tmp_path):
    p = tmp_path / 'zero.wav'
    sf.write(p, np.zeros((0, 1), dtype='float32'), SR)
    assert p.stat().st_size > 0  # a valid header, no frames
    assert_load_error(p, 'zero length')


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_nan_inf(tmp_path, bad):
    x = tone(); x[100, 0] = bad
    p = tmp_path / 'bad.wav'
    sf.write(p, x, SR, subtype='FLOAT')
    assert_load_error(p, 'NaN or infinite')
    w, _ = load_audio(p, check_finite=False)  # the check can be turned off on purpose
    assert not torch.isfinite(w).all()


@pytest.mark.parametrize('name', ['clip.txt', 'clip.xyz', 'clip'])
def test_unsupported_format(tmp_path, name):
    p = tmp_path / name; p.write_bytes(b'RIFF' + bytes(100))
    assert_load_error(p, 'unsupported format')


def test_directory(tmp_path):
    d = tmp_path / 'folder.wav'; d.mkdir()
    assert_load_error(d, 'directory')


def test_bad_segment(good_wav):
    with pytest.raises(AudioLoadError, match='negative'): load_audio(good_wav, start=-1)
    with pytest.raises(AudioLoadError, match='not after start'): load_audio(good_wav, start=0.3, end=0.2)
    with pytest.raises(AudioLoadError, match='beyond the end'): load_audio(good_wav, start=5.0)


def test_audio_info_errors(tmp_path, good_wav):
    info = audio_info(good_wav)
    assert info['sample_rate'] == SR and info['frames'] == int(0.5 * SR)
    p = tmp_path / 'junk.flac'; p.write_bytes(b'not a flac file at all' * 10)
    with pytest.raises(AudioLoadError) as ei: audio_info(p)
    assert str(p) in str(ei.value)


def test_load_many_collects_bad_files(tmp_path, good_wav):
    bad = tmp_path / 'bad.wav'; bad.write_bytes(b'garbage' * 50)
    missing = tmp_path / 'missing.ogg'
    paths = [good_wav, bad, good_wav, missing]
    waves, errors = load_many(paths, sample_rate=SR, workers=2, errors='collect')
    assert len(waves) == 4 and waves[1] is None and waves[3] is None
    assert waves[0] is not None and torch.equal(waves[0], waves[2])
    assert sorted(e.path for e in errors) == sorted([str(bad), str(missing)])
    assert all(isinstance(e, AudioLoadError) for e in errors)
    with pytest.raises(AudioLoadError, match='bad.wav'):
        load_many(paths, errors='raise', workers=1)


def test_save_refuses_bad_input(tmp_path):
    with pytest.raises(AudioLoadError, match='zero-length'): save_audio(tmp_path / 'a.wav', torch.zeros(1, 0), SR)
    with pytest.raises(AudioLoadError, match='NaN'): save_audio(tmp_path / 'a.wav', torch.tensor([[0.0, float('nan')]]), SR)
    with pytest.raises(AudioLoadError, match='cannot write'): save_audio(tmp_path / 'a.m4a', torch.zeros(1, 10), SR)
    save_audio(tmp_path / 'a.wav', torch.zeros(1, 10), SR)
    with pytest.raises(ResultExistsError): save_audio(tmp_path / 'a.wav', torch.zeros(1, 10), SR)
    save_audio(tmp_path / 'a.wav', torch.ones(1, 10) * 0.5, SR, overwrite=True)
    assert np.allclose(load_audio(tmp_path / 'a.wav')[0].numpy(), 0.5, atol=1e-4)
    assert [p.name for p in tmp_path.iterdir()] == ['a.wav']  # no temp files left behind


# ------------------------------------------------------------------ m4a through FFmpeg
@pytest.fixture(scope='module')
def m4a(tmp_path_factory):
    exe = ffmpeg_exe()
    assert exe is not None, 'no ffmpeg: imageio-ffmpeg (a requirement) ships one'
    d = tmp_path_factory.mktemp('m4a')
    sf.write(d / 'src.wav', tone(1.0, sr=16000, freq=500), 16000)
    r = subprocess.run([exe, '-nostdin', '-v', 'error', '-i', str(d / 'src.wav'), '-c:a', 'aac', '-b:a', '96k', str(d / 'clip.m4a')],
                       capture_output=True, text=True)
    if r.returncode != 0: pytest.skip(f'this ffmpeg cannot encode AAC: {r.stderr[-200:]}')
    return d / 'clip.m4a'


def test_m4a_decode(m4a):
    w, sr = load_audio(m4a)
    assert sr == 16000 and w.dtype == torch.float32 and w.shape[0] == 1
    assert abs(w.shape[1] - 16000) < 2048  # AAC priming/padding frames
    spec = np.abs(np.fft.rfft(w[0].numpy()))
    assert abs(np.argmax(spec) * sr / w.shape[1] - 500) < 5
    ws, srs = load_audio(m4a, sample_rate=8000, start=0.25, end=0.75)
    assert srs == 8000 and abs(ws.shape[1] - 4000) <= 2


def test_m4a_corrupt(tmp_path):
    assert ffmpeg_exe() is not None, 'no ffmpeg: imageio-ffmpeg (a requirement) ships one'
    p = tmp_path / 'broken.m4a'; p.write_bytes(os.urandom(3000))
    assert_load_error(p, 'cannot decode')


# ------------------------------------------------------------------ property tests
waves = st.builds(lambda ch, n, seed: torch.from_numpy(np.random.default_rng(seed).standard_normal((ch, n)).astype('float32')),
                  st.integers(1, 3), st.integers(1, 3000), st.integers(0, 2**31))
POLICIES = ['pad', 'repeat', 'center_crop', 'random_crop']


@HSET
@given(w=waves, n=st.integers(1, 5000), policy=st.sampled_from(POLICIES), seed=st.integers(0, 2**31))
def test_fix_length_exact(w, n, policy, seed):
    out = fix_length(w, n, policy, make_generator(seed))
    assert out.shape == (w.shape[0], n) and out.dtype == w.dtype
    cur = w.shape[-1]
    if cur >= n:  # a crop: a contiguous window of the input
        if policy in ('pad', 'repeat'): assert torch.equal(out, w[..., :n])
        if policy == 'center_crop': off = (cur - n) // 2; assert torch.equal(out, w[..., off:off + n])
    else:
        assert torch.equal(out[..., :cur], w)
        if policy == 'repeat': assert torch.equal(out[..., cur:], w.repeat(1, math.ceil(n / cur))[..., cur:n])
        else: assert (out[..., cur:] == 0).all()


@HSET
@given(w=waves, n=st.integers(1, 2999), seed=st.integers(0, 2**31))
def test_random_crop_deterministic(w, n, seed):
    a = fix_length(w, n, 'random_crop', make_generator(seed))
    b = fix_length(w, n, 'random_crop', make_generator(seed))
    assert torch.equal(a, b)
    if w.shape[-1] > n:  # the crop is a window of the input
        starts = [i for i in range(w.shape[-1] - n + 1) if torch.equal(w[..., i:i + n], a)]
        assert starts


def test_random_crop_uses_the_generator():
    w = torch.arange(1000.0).unsqueeze(0)
    offs = {int(fix_length(w, 10, 'random_crop', make_generator(s))[0, 0]) for s in range(20)}
    assert len(offs) > 10  # different seeds, different windows


def test_fix_length_refuses():
    with pytest.raises(ConfigError): fix_length(torch.zeros(1, 10), 0)
    with pytest.raises(ConfigError): fix_length(torch.zeros(1, 0), 5)
    with pytest.raises(ConfigError, match='unknown length policy'): fix_length(torch.zeros(1, 10), 5, 'stretch')
    assert fix_length(torch.zeros(1, 10), 5, 'none').shape == (1, 10)


RATES = [8000, 11025, 16000, 22050, 32000, 44100, 48000]


@HSET
@given(old=st.sampled_from(RATES), new=st.sampled_from(RATES), n=st.integers(200, 6000))
def test_resample_length(old, new, n):
    w = torch.from_numpy(np.random.default_rng(n).standard_normal((1, n)).astype('float32'))
    out = resample(w, old, new)
    assert out.dtype == torch.float32 and out.shape[0] == 1
    assert abs(out.shape[-1] - n * new / old) <= 1


@settings(max_examples=15, deadline=None)
@given(old=st.sampled_from(RATES), new=st.sampled_from(RATES), frac=st.floats(0.05, 0.4))
def test_resample_keeps_frequency(old, new, frac):
    freq = frac * min(old, new)  # below both Nyquist limits (with margin for the filter's roll-off)
    t = np.arange(old) / old  # one second
    w = torch.from_numpy(np.sin(2 * np.pi * freq * t).astype('float32')).unsqueeze(0)
    out = resample(w, old, new)[0].numpy()
    spec = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    peak_hz = np.argmax(spec) * new / len(out)
    assert abs(peak_hz - freq) <= 2.0, (peak_hz, freq)


def test_resample_refuses_bad_rates():
    with pytest.raises(ConfigError): resample(torch.zeros(1, 10), 0, 16000)
    with pytest.raises(ConfigError): resample(torch.zeros(1, 10), 16000, -1)


@HSET
@given(w=waves, target=st.floats(0.01, 1.0), scale=st.floats(1e-6, 1e3))
def test_peak_normalize(w, target, scale):
    out = peak_normalize(w * scale, target)
    assert math.isclose(out.abs().max().item(), target, rel_tol=1e-4)
    # a pure gain: shape of the signal unchanged
    k = (out.abs().max() / (w * scale).abs().max()).item()
    assert torch.allclose(out, w * scale * k, rtol=1e-4, atol=1e-6)


def test_peak_normalize_silence():
    z = torch.zeros(2, 100)
    assert torch.equal(peak_normalize(z), z)


FORMATS = [('.wav', 'FLOAT', 1e-7), ('.wav', 'PCM_16', 2e-4), ('.flac', 'PCM_24', 1e-6), ('.flac', 'PCM_16', 2e-4)]


@settings(max_examples=25, deadline=None)
@given(ch=st.integers(1, 2), n=st.integers(1, 4000), sr=st.sampled_from(RATES), fmt=st.sampled_from(FORMATS), seed=st.integers(0, 1000))
def test_save_load_round_trip(tmp_path_factory, ch, n, sr, fmt, seed):
    ext, subtype, tol = fmt
    w = torch.from_numpy(np.random.default_rng(seed).uniform(-0.9, 0.9, (ch, n)).astype('float32'))
    p = tmp_path_factory.mktemp('rt') / f'x{ext}'
    save_audio(p, w, sr, subtype=subtype)
    back, sr2 = load_audio(p)
    assert sr2 == sr and back.shape == w.shape and back.dtype == torch.float32
    assert (back - w).abs().max().item() <= tol


def test_round_trip_lossy_formats(tmp_path):
    w = torch.from_numpy(tone(1.0, sr=16000, freq=300, channels=2).T.copy())
    for ext in ('.ogg', '.mp3'):
        p = save_audio(tmp_path / f'x{ext}', w, 16000)
        back, sr = load_audio(p)
        assert sr == 16000 and back.shape[0] == 2
        n = min(back.shape[1], w.shape[1])
        assert abs(back.shape[1] - w.shape[1]) < 2048
        corr = np.corrcoef(back[0, :n].numpy(), w[0, :n].numpy())[0, 1]
        assert corr > 0.9 or ext == '.mp3'  # mp3 adds an encoder delay; check its spectrum instead
        spec = np.abs(np.fft.rfft(back[0].numpy()))
        assert abs(np.argmax(spec) * sr / back.shape[1] - 300) < 3


def test_real_esc10_clip_if_present():
    root = find_shared_data('esc10')
    if root is None: pytest.skip('shared data not present')
    files = sorted(Path(root).glob('*/*.ogg'))[:3]
    if not files: pytest.skip('no ESC-10 clips')
    waves, errors = load_many(files, sample_rate=16000, workers=2, errors='collect')
    assert not errors
    for f, w in zip(files, waves):  # 5-s Ogg clips at 44.1 kHz -> 16 kHz, length follows the file's frames
        assert w.shape[0] == 1 and abs(w.shape[1] - audio_info(f)['frames'] * 16000 / 44100) <= 1
