"""audiokit.augment: reproducibility per seed, exact SNR, identity at p=0 / train=False, shapes and dtypes, silent input."""
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings, strategies as st

from audiokit.augment import (AddNoise, AugmentConfig, AugmentError, BackgroundMix, BandPass, BCMix, Compose, FreqMask, Gain,
                              Mixup, PatchMix, PitchShift, TimeMask, TimeShift, TimeStretch, build_augment, example_generator,
                              snr_db, soft_targets)
from audiokit.core import ConfigError, make_generator

SR = 8000


def waves(b=3, c=1, n=4000, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / SR
    x = 0.3 * torch.sin(2 * math.pi * 300 * t) + 0.05 * torch.randn(b, c, n, generator=g)
    return x.float()


@pytest.fixture(scope='module')
def bg_files(tmp_path_factory):
    d = tmp_path_factory.mktemp('bg')
    rng = np.random.default_rng(1)
    paths = []
    for i in range(3):
        p = d / f'bg{i}.wav'
        sf.write(p, (0.2 * rng.standard_normal(SR // 2 * (i + 1))).astype('float32'), SR)
        paths.append(str(p))
    return paths


def wave_transforms(bg):
    return [Gain(1.0), TimeShift(1.0, 0.3), TimeShift(1.0, 0.3, rollover=False), AddNoise(1.0), BackgroundMix(bg, 1.0, sample_rate=SR),
            PitchShift(1.0), TimeStretch(1.0), BandPass(1.0, sample_rate=SR, max_center_hz=2000, max_bandwidth=1.0)]


SPEC = [FreqMask(1.0, 8, 2), TimeMask(1.0, 10, 2), TimeMask(1.0, 10, 2, value='zero')]


def test_wave_transforms_reproducible_shape_dtype(bg_files):
    x = waves()
    for tr in wave_transforms(bg_files):
        a = tr(x, train=True, generator=make_generator(5))
        b = tr(x, train=True, generator=make_generator(5))
        c = tr(x, train=True, generator=make_generator(6))
        assert torch.equal(a, b), tr
        assert not torch.equal(a, c), tr
        assert not torch.equal(a, x), tr
        assert a.shape == x.shape and a.dtype == torch.float32 and torch.isfinite(a).all(), tr
        one = tr(x[0], train=True, generator=make_generator(5))              # (C, T) in, (C, T) out
        assert one.shape == x[0].shape


def test_global_rng_is_not_used(bg_files):
    x = waves()
    for tr in wave_transforms(bg_files) + SPEC:
        inp = x if tr.example_dims == 2 else torch.randn(3, 1, 32, 40, generator=torch.Generator().manual_seed(0))
        torch.manual_seed(0); np.random.seed(0)
        a = tr(inp, train=True, generator=make_generator(1))
        torch.manual_seed(123); torch.rand(17); np.random.seed(9)
        state = torch.get_rng_state()
        b = tr(inp, train=True, generator=make_generator(1))
        assert torch.equal(a, b), tr
        assert torch.equal(state, torch.get_rng_state()), f"{tr} consumed the global torch RNG"


def test_identity_when_p0_or_eval(bg_files):
    x = waves()
    s = torch.randn(2, 1, 16, 20)
    for tr in wave_transforms(bg_files):
        assert torch.equal(tr(x, train=False, generator=make_generator(0)), x)
        tr.p = 0.0
        assert torch.equal(tr(x, train=True, generator=make_generator(0)), x)
    for tr in [FreqMask(0.0), TimeMask(0.0)]:
        assert torch.equal(tr(s, train=True, generator=make_generator(0)), s)
    for mixer in (Mixup(0.0), BCMix(0.0), PatchMix(0.0)):
        xm, ym = mixer(s, torch.tensor([0, 1]), train=True, generator=make_generator(0), num_classes=2)
        assert torch.equal(xm, s) and torch.equal(ym, torch.eye(2))


def test_train_is_required():
    with pytest.raises(TypeError):
        Gain(1.0)(waves())                                                    # no train= given
    with pytest.raises(TypeError):
        Compose([Gain(1.0)])(waves())


@pytest.mark.parametrize('snr', [-5.0, 0.0, 7.5, 20.0, 40.0])
def test_noise_snr_within_half_db(snr):
    x = waves(b=4)
    y = AddNoise(1.0, snr, snr)(x, train=True, generator=make_generator(0))
    measured = snr_db(x, y)
    assert (measured - snr).abs().max() < 0.5


def test_background_snr_within_half_db(bg_files):
    x = waves(b=4, n=6000)
    import pandas as pd
    df = pd.DataFrame({'path': bg_files, 'start': [float('nan'), 0.1, float('nan')], 'end': [float('nan'), 0.4, float('nan')]})
    y = BackgroundMix(df, 1.0, 3.0, 3.0, sample_rate=SR)(x, train=True, generator=make_generator(0))
    assert (snr_db(x, y) - 3.0).abs().max() < 0.5


def test_probability_is_per_example():
    x = waves(b=400, n=64)
    y = Gain(0.3, 6, 6)(x, train=True, generator=make_generator(0))
    changed = (~torch.isclose(y, x).all(-1).all(-1)).float().mean().item()
    assert 0.22 < changed < 0.38


def test_silent_input_no_nan(bg_files):
    z = torch.zeros(2, 1, 4000)
    for tr in wave_transforms(bg_files):
        out = tr(z, train=True, generator=make_generator(0))
        assert torch.isfinite(out).all() and out.shape == z.shape, tr
    zs = torch.zeros(2, 1, 16, 20)
    for tr in SPEC:
        assert torch.isfinite(tr(zs, train=True, generator=make_generator(0))).all()
    for mixer in (Mixup(1.0), BCMix(1.0), PatchMix(1.0, patch=(4, 4))):
        xm, ym = mixer(zs, torch.tensor([0, 1]), train=True, generator=make_generator(0), num_classes=2)
        assert torch.isfinite(xm).all() and torch.isfinite(ym).all()


@settings(max_examples=25, deadline=None)
@given(b=st.integers(2, 6), k=st.integers(2, 4), seed=st.integers(0, 2**31), p=st.floats(0, 1))
def test_mixing_targets_are_distributions(b, k, seed, p):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 1, 12, 18, generator=g)
    y = torch.randint(0, k, (b,), generator=g)
    for mixer in (Mixup(p), BCMix(p), PatchMix(p, patch=(4, 6))):
        xm, ym = mixer(x, y, train=True, generator=make_generator(seed), num_classes=k)
        assert xm.shape == x.shape and ym.shape == (b, k) and ym.dtype == torch.float32
        assert torch.allclose(ym.sum(1), torch.ones(b), atol=1e-5) and (ym >= -1e-7).all()
        xm2, ym2 = mixer(x, y, train=True, generator=make_generator(seed), num_classes=k)
        assert torch.equal(xm, xm2) and torch.equal(ym, ym2)


def test_bc_partner_has_another_class():
    x = torch.randn(6, 1, 100)
    y = torch.tensor([0, 0, 0, 1, 1, 2])
    for seed in range(10):
        _, ym = BCMix(1.0)(x, y, train=True, generator=make_generator(seed), num_classes=3)
        assert ((ym > 0).sum(1) == 2).all()
    # a batch of one class cannot be mixed between classes
    xm, ym = BCMix(1.0)(x, torch.zeros(6, dtype=torch.long), train=True, generator=make_generator(0), num_classes=3)
    assert torch.equal(xm, x)


def test_patchmix_label_matches_area():
    x = torch.arange(2 * 1 * 16 * 16, dtype=torch.float32).view(2, 1, 16, 16)
    y = torch.tensor([0, 1])
    for seed in range(5):
        xm, ym = PatchMix(1.0, patch=(4, 4))(x, y, train=True, generator=make_generator(seed), num_classes=2)
        kept = (xm == x).float().mean((1, 2, 3))
        own = ym[torch.arange(2), y]
        # the partner is either the other example (own weight = kept area) or itself (unchanged)
        assert torch.allclose(own, kept) or torch.equal(xm, x)


def test_compose_epochs_and_example_generators(bg_files):
    cfg = AugmentConfig(gain_p=0.5, noise_p=0.5, shift_p=0.5, background_p=0.5, freq_mask_p=0.5, time_mask_p=0.5,
                        mix='bc', mix_p=0.5)
    w = build_augment(cfg, 'waveform', SR, seed=3, background=bg_files)
    x = waves(b=8)
    e2 = w.set_epoch(2)(x, train=True)
    w.set_epoch(0)(x, train=True)
    assert torch.equal(w.set_epoch(2)(x, train=True), e2)
    assert not torch.equal(build_augment(cfg, 'waveform', SR, seed=4, background=bg_files).set_epoch(2)(x, train=True), e2)
    s = build_augment(cfg, 'spectrogram', SR, seed=3)
    with pytest.raises(AugmentError, match='call the pipeline with y'):
        s(torch.randn(4, 1, 8, 8), train=True)
    a = w(x[0], train=True, generator=example_generator(3, 1, 17))
    assert torch.equal(a, w(x[0], train=True, generator=example_generator(3, 1, 17)))


def test_errors_are_clear():
    with pytest.raises(AugmentError, match=r'\(C, T\) or \(B, C, T\)'):
        Gain(1.0)(torch.zeros(5), train=True, generator=make_generator(0))
    with pytest.raises(AugmentError, match='num_classes'):
        soft_targets(torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match='probability'):
        Gain(1.5)
    with pytest.raises(ConfigError, match='Nyquist'):
        BandPass(sample_rate=4000, max_center_hz=1900)
    with pytest.raises(ConfigError, match='unknown setting'):
        AugmentConfig.from_dict({'noise': 1})


def test_background_comes_from_the_config_folder(tmp_path):
    # AugmentConfig.background names a folder of audio (or a manifest): the run spec can switch background mixing on
    import soundfile as sf
    from audiokit.core import ConfigError
    for i in range(2): sf.write(tmp_path / f'bg{i}.wav', (0.1 * np.random.default_rng(i).standard_normal(SR)).astype('float32'), SR)
    w = build_augment(AugmentConfig(background_p=1.0, background=str(tmp_path)), 'waveform', SR, seed=0)
    assert len(w) == 1 and type(w.transforms[0]).__name__ == 'BackgroundMix'
    with pytest.raises(ConfigError, match='augment.background'):
        build_augment(AugmentConfig(background_p=1.0), 'waveform', SR)
