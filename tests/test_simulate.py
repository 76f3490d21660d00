"""The respiratory-sound simulator: determinism, class balance, the ICBHI round trip, event generators, and its CLI."""
import subprocess, sys, json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiokit.core import ConfigError, ResultExistsError, make_generator
from audiokit.labels import ICBHI
from audiokit.simulate import (SimulatorConfig, simulate_icbhi, inject_events, wheeze, crackle, breath_cycle)

SMALL = dict(n_patients=6, recordings_per_patient=2, recording_duration=8.0)

def run(*args):
    return subprocess.run([sys.executable, '-m', 'audiokit.cli', *args], capture_output=True, text=True)

def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = simulate_icbhi(tmp_path / 'a', SimulatorConfig(seed=7, **SMALL))
    b = simulate_icbhi(tmp_path / 'b', SimulatorConfig(seed=7, **SMALL))
    c = simulate_icbhi(tmp_path / 'c', SimulatorConfig(seed=8, **SMALL))
    assert a.drop(columns='path').equals(b.drop(columns='path'))
    names = sorted(p.name for p in (tmp_path / 'a').iterdir())
    assert names == sorted(p.name for p in (tmp_path / 'b').iterdir())
    for n in names: assert (tmp_path / 'a' / n).read_bytes() == (tmp_path / 'b' / n).read_bytes(), n
    assert sorted(p.name for p in (tmp_path / 'c').iterdir()) != names or not a[['start', 'label']].equals(c[['start', 'label']])

def test_global_rng_untouched(tmp_path):
    np.random.seed(123); before = np.random.random()
    np.random.seed(123); simulate_icbhi(tmp_path / 's', SimulatorConfig(**SMALL)); after = np.random.random()
    assert before == after

def test_configured_proportions_and_sample_rate(tmp_path):
    cfg = SimulatorConfig(n_patients=10, recordings_per_patient=2, recording_duration=20.0, sample_rate=8000,
                          class_proportions=(0.4, 0.3, 0.2, 0.1), seed=2)
    df = simulate_icbhi(tmp_path / 's', cfg)
    got = df.label.value_counts(normalize=True).reindex(list(ICBHI.classes)).to_numpy()
    assert np.abs(got - np.array(cfg.class_proportions)).max() <= 1 / len(df) + 1e-9   # exact up to rounding
    info = sf.info(df.path.iloc[0])
    assert info.samplerate == 8000 and abs(info.duration - 20.0) < 1e-3
    assert ((df.end - df.start) >= cfg.cycle_duration[0] - 1e-9).all() and (df.end <= 20.0).all()

def test_round_trip_through_the_icbhi_adapter(tmp_path):
    from audiokit.datasets import build_icbhi
    df = simulate_icbhi(tmp_path / 's', SimulatorConfig(subdbs=2, **SMALL))
    built = build_icbhi(tmp_path / 's')
    assert len(built.dropped) == 0
    key = ['filename', 'start']
    a = built.manifest.sort_values(key).reset_index(drop=True)
    b = df.sort_values(key).reset_index(drop=True)
    for c in ('path', 'label', 'group', 'subset', 'diagnosis', 'device', 'chest_location', 'filename'):
        assert (a[c].astype(str) == b[c].astype(str)).all(), c
    assert np.array_equal(a.start.to_numpy(), b.start.to_numpy()) and np.array_equal(a.end.to_numpy(), b.end.to_numpy())
    # the official split is by patient, about 60/40
    assert df.groupby('group').subset.nunique().max() == 1

def test_refuses_to_overwrite(tmp_path):
    simulate_icbhi(tmp_path / 's', SimulatorConfig(**SMALL))
    with pytest.raises(ResultExistsError, match='overwrite=True'): simulate_icbhi(tmp_path / 's', SimulatorConfig(**SMALL))
    df = simulate_icbhi(tmp_path / 's', SimulatorConfig(seed=3, n_patients=3, recordings_per_patient=1), overwrite=True)
    assert len(list((tmp_path / 's').glob('*.wav'))) == 3 == df.filename.nunique()

def test_bad_config():
    with pytest.raises(ConfigError, match='n_patients'): SimulatorConfig(n_patients=1)
    with pytest.raises(ConfigError, match='recording_duration'): SimulatorConfig(recording_duration=2.0)
    with pytest.raises(ConfigError, match='subdbs'): SimulatorConfig(subdbs=5)

def test_event_generators():
    sr = 4000
    for seed in range(10):
        rng = make_generator(seed, 'numpy')
        w = wheeze(sr, rng)
        assert len(w) >= 0.25 * sr
        f = np.argmax(np.abs(np.fft.rfft(w))) * sr / len(w)
        assert 100 <= f <= 1100, f        # fundamental or a harmonic of a 150-800 Hz tone, after glide
        assert len(crackle(sr, rng, 'fine')) / sr < 0.02
    x = breath_cycle(2.0, sr, make_generator(0, 'numpy'))
    for kind in ICBHI.classes:
        y, ev = inject_events(x, sr, kind, make_generator(1, 'numpy'), return_events=True)
        assert y.shape == x.shape and np.isfinite(y).all()
        assert ('crackle' in kind or kind == 'both') == any('crackle' in e['type'] for e in ev)
        assert (kind in ('wheeze', 'both')) == any(e['type'] == 'wheeze' for e in ev)
        assert all(0 <= e['start'] < e['end'] <= 2.0 + 1e-9 for e in ev)

def test_cli(tmp_path):
    r = run('simulate', '--out', str(tmp_path / 'sim'), '--patients', '4', '--recordings', '1', '--duration', '8', '--seed', '1')
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out['patients'] == 4 and out['recordings'] == 4 and (tmp_path / 'sim' / 'ICBHI_challenge_train_test.txt').exists()
    r2 = run('simulate', '--out', str(tmp_path / 'sim'), '--patients', '4')
    assert r2.returncode == 1 and 'overwrite' in r2.stderr
