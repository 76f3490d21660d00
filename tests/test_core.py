"""audiokit.core: config round trips (hypothesis), refusals, crash-safe atomic writes, run dirs, determinism."""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from audiokit.core import (AudioConfig, AudioKitError, Config, ConfigError, FeatureConfig, InferenceConfig, ModelConfig,
                           ResultExistsError, TrainConfig, WindowConfig, atomic_path, atomic_write_bytes, atomic_write_json,
                           atomic_write_text, make_generator, make_run_dir, seed_everything)
from audiokit.spec import RunSpec

HSET = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
finite = dict(allow_nan=False, allow_infinity=False)

audio_cfgs = st.builds(AudioConfig, sample_rate=st.integers(100, 384_000), mono=st.booleans(),
                       duration=st.none() | st.floats(1e-3, 600, **finite),
                       length_policy=st.sampled_from(['pad', 'repeat', 'center_crop', 'random_crop', 'none']),
                       normalize=st.sampled_from(['none', 'peak', 'loudness']), target_peak=st.floats(1e-3, 1.0, **finite),
                       target_lufs=st.floats(-70, 0, **finite), fade_in=st.floats(0, 5, **finite), fade_out=st.floats(0, 5, **finite))


@st.composite
def feature_cfgs(draw):
    n_fft = draw(st.integers(16, 8192))
    f_min = draw(st.floats(0, 8000, **finite))
    return FeatureConfig(kind=draw(st.sampled_from(['logmel', 'mfcc', 'frames', 'image', 'waveform'])), n_fft=n_fft,
                         win_length=draw(st.none() | st.integers(1, n_fft)), hop_length=draw(st.integers(1, 4 * n_fft)),
                         n_mels=draw(st.integers(1, 256)), f_min=f_min, f_max=draw(st.none() | st.floats(f_min + 1, f_min + 20000, **finite)),
                         n_mfcc=draw(st.integers(1, 128)), deltas=draw(st.booleans()), top_db=draw(st.none() | st.floats(1, 120, **finite)),
                         image_size=(draw(st.integers(8, 512)), draw(st.integers(8, 512))), channels=draw(st.sampled_from([1, 3])),
                         normalize=draw(st.sampled_from(['none', 'example', 'dataset'])), short_clip=draw(st.sampled_from(['pad', 'error'])))


model_cfgs = st.builds(ModelConfig, name=st.text(min_size=1, max_size=20), num_classes=st.integers(1, 1000), multi_label=st.booleans(),
                       pretrained=st.none() | st.text(max_size=30), in_channels=st.integers(1, 3), dropout=st.floats(0, 0.99, **finite),
                       width=st.integers(1, 512),
                       model_kwargs=st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=10) | st.booleans(), max_size=3))
train_cfgs = st.builds(TrainConfig, epochs=st.integers(1, 500), batch_size=st.integers(1, 1024), lr=st.floats(1e-8, 10, **finite),
                       weight_decay=st.floats(0, 1, **finite), scheduler=st.sampled_from(['cosine', 'onecycle', 'none']),
                       loss=st.sampled_from(['ce', 'focal']), focal_gamma=st.floats(0, 5, **finite),
                       early_stopping_metric=st.sampled_from(['balanced_accuracy', 'macro_f1', 'loss']), patience=st.integers(1, 100),
                       grad_clip=st.none() | st.floats(1e-3, 100, **finite), amp=st.booleans(), seed=st.integers(0, 2**32 - 1),
                       num_workers=st.integers(0, 8), device=st.sampled_from(['auto', 'cpu', 'cuda', 'mps']))
inference_cfgs = st.builds(InferenceConfig, batch_size=st.integers(1, 512), top_k=st.integers(1, 50),
                           device=st.sampled_from(['auto', 'cpu', 'cuda', 'mps']))


@st.composite
def window_cfgs(draw):
    lo = draw(st.floats(1e-3, 30, **finite))
    return WindowConfig(seconds=draw(st.none() | st.floats(1e-3, 60, **finite)), min_seconds=lo, max_seconds=draw(st.floats(lo, 60, **finite)),
                        hop=draw(st.floats(1e-3, 1, **finite)), aggregate=draw(st.sampled_from(['mean', 'max'])),
                        train_crop=draw(st.sampled_from(['random', 'center'])))


# a nested config: the run spec, its core sections drawn (the others, owned by their modules, at their defaults)
run_specs = st.builds(RunSpec, name=st.text(min_size=1, max_size=30), audio=audio_cfgs, window=window_cfgs(), features=feature_cfgs(),
                      model=model_cfgs, train=train_cfgs)
any_cfg = st.one_of(audio_cfgs, feature_cfgs(), window_cfgs(), model_cfgs, train_cfgs, inference_cfgs, run_specs)


# ------------------------------------------------------------------ config round trips
@HSET
@given(cfg=any_cfg)
def test_dict_json_yaml_round_trip(cfg):
    cls = type(cfg)
    assert cls.from_dict(cfg.to_dict()) == cfg
    assert cls.from_dict(json.loads(cfg.to_json())) == cfg
    assert cls.from_dict(yaml.safe_load(cfg.to_yaml())) == cfg
    assert cls.from_dict(cfg.to_dict()).hash() == cfg.hash()


@HSET
@given(cfg=run_specs, suffix=st.sampled_from(['.json', '.yaml', '.yml']))
def test_save_load_round_trip(tmp_path_factory, cfg, suffix):
    p = tmp_path_factory.mktemp('cfg') / f'exp{suffix}'
    cfg.save(p)
    assert RunSpec.load(p) == cfg
    with pytest.raises(ResultExistsError): cfg.save(p)
    cfg.replace(name='other').save(p, overwrite=True)
    assert RunSpec.load(p).name == 'other'


def test_defaults_are_valid_and_stable():
    for cls in (AudioConfig, FeatureConfig, WindowConfig, ModelConfig, TrainConfig, InferenceConfig, RunSpec):
        c = cls()
        assert cls.from_dict({}) == c and cls.from_dict(c.to_dict()).hash() == c.hash()


# ------------------------------------------------------------------ refusals
@pytest.mark.parametrize('cls', [AudioConfig, FeatureConfig, WindowConfig, ModelConfig, TrainConfig, InferenceConfig, RunSpec])
def test_unknown_keys_refused(cls):
    with pytest.raises(ConfigError) as ei: cls.from_dict({'no_such_setting': 1})
    msg = str(ei.value)
    assert 'no_such_setting' in msg and cls.__name__ in msg
    assert all(f.name in msg for f in fields(cls))  # the valid names are listed


def test_unknown_nested_key_refused():
    with pytest.raises(ConfigError, match='smaple_rate'):
        RunSpec.from_dict({'audio': {'smaple_rate': 16000}})


@pytest.mark.parametrize('cls,key,value', [
    (AudioConfig, 'sample_rate', 'fast'), (AudioConfig, 'sample_rate', 16000.5), (AudioConfig, 'mono', 'yes'),
    (AudioConfig, 'length_policy', 'stretch'), (AudioConfig, 'normalize', 1),
    (FeatureConfig, 'image_size', 'big'), (FeatureConfig, 'kind', 3), (FeatureConfig, 'n_mels', None),   # an unknown kind name: tests/test_features.py
    (TrainConfig, 'epochs', '10'), (TrainConfig, 'lr', 'high'), (TrainConfig, 'amp', 1.0),
    (ModelConfig, 'num_classes', [2]), (InferenceConfig, 'top_k', {'k': 1}),
    (WindowConfig, 'aggregate', 'median'), (WindowConfig, 'seconds', 'long'),
    (RunSpec, 'audio', 5), (RunSpec, 'name', 3),
])
def test_bad_types_refused(cls, key, value):
    with pytest.raises(ConfigError) as ei: cls.from_dict({key: value})
    assert key in str(ei.value)


@pytest.mark.parametrize('cls,key,value', [
    (AudioConfig, 'sample_rate', 50), (AudioConfig, 'duration', 0.0), (AudioConfig, 'target_peak', 1.5),
    (FeatureConfig, 'n_fft', 8), (FeatureConfig, 'channels', 2), (TrainConfig, 'lr', 0.0),
    (TrainConfig, 'epochs', 0), (ModelConfig, 'dropout', 1.0), (InferenceConfig, 'top_k', 0),
    (WindowConfig, 'hop', 1.5), (WindowConfig, 'seconds', 0.0), (WindowConfig, 'min_seconds', 10.0),
])
def test_out_of_range_refused(cls, key, value):
    with pytest.raises(ConfigError) as ei: cls.from_dict({key: value})
    assert f"{cls.__name__}.{key}" in str(ei.value)


def test_load_refuses_bad_files(tmp_path):
    with pytest.raises(ConfigError, match='not found'): AudioConfig.load(tmp_path / 'none.json')
    (tmp_path / 'bad.json').write_text('{"sample_rate": ')
    with pytest.raises(ConfigError, match='cannot parse') as ei: AudioConfig.load(tmp_path / 'bad.json')
    assert 'bad.json' in str(ei.value)
    (tmp_path / 'list.yaml').write_text('- 1\n- 2\n')
    with pytest.raises(ConfigError, match='mapping'): AudioConfig.load(tmp_path / 'list.yaml')
    (tmp_path / 'typo.yaml').write_text('sample_rat: 16000\n')
    with pytest.raises(ConfigError) as ei: AudioConfig.load(tmp_path / 'typo.yaml')
    assert 'typo.yaml' in str(ei.value) and 'sample_rat' in str(ei.value)


# ------------------------------------------------------------------ atomic writes
def _only(d: Path):
    return sorted(p.name for p in d.iterdir())


def test_exception_mid_write_keeps_old_content(tmp_path):
    target = tmp_path / 'result.json'
    atomic_write_json(target, {'v': 1})
    with pytest.raises(RuntimeError, match='disk on fire'):
        with atomic_path(target, overwrite=True) as tmp:
            tmp.write_text('{"v": 2, "partial')
            raise RuntimeError('disk on fire')
    assert json.loads(target.read_text()) == {'v': 1}
    assert _only(tmp_path) == ['result.json']  # temp file removed


def test_exception_mid_write_new_file_leaves_nothing(tmp_path):
    target = tmp_path / 'sub' / 'new.bin'
    class Boom(Exception): pass
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            with open(tmp, 'wb') as f:
                f.write(b'x' * 10_000); raise Boom()
    assert not target.exists() and _only(target.parent) == []


def test_unserialisable_json_leaves_old_file(tmp_path):
    target = tmp_path / 'r.json'
    atomic_write_json(target, {'ok': True})
    with pytest.raises(TypeError):
        atomic_write_json(target, {'bad': object()}, overwrite=True)
    assert json.loads(target.read_text()) == {'ok': True} and _only(tmp_path) == ['r.json']


def test_refuses_overwrite_without_flag(tmp_path):
    p = atomic_write_text(tmp_path / 'a.txt', 'one')
    with pytest.raises(ResultExistsError, match='overwrite=True') as ei: atomic_write_text(p, 'two')
    assert str(p) in str(ei.value) and isinstance(ei.value, AudioKitError) and isinstance(ei.value, FileExistsError)
    assert p.read_text() == 'one'
    atomic_write_bytes(p, b'two', overwrite=True)
    assert p.read_text() == 'two'


def test_json_numpy_values(tmp_path):
    p = atomic_write_json(tmp_path / 'n.json', {'i': np.int64(3), 'f': np.float32(0.5), 'a': np.arange(3), 'p': Path('x')})
    assert json.loads(p.read_text()) == {'i': 3, 'f': 0.5, 'a': [0, 1, 2], 'p': 'x'}


_WRITER = textwrap.dedent('''
    import sys
    from pathlib import Path
    from audiokit.core import atomic_path
    target, mb = Path(sys.argv[1]), int(sys.argv[2])
    chunk = bytes([7]) * (1 << 20)
    with atomic_path(target, overwrite=True) as tmp:
        with open(tmp, 'wb') as f:
            print('writing', flush=True)
            for _ in range(mb):
                f.write(chunk); f.flush()
    print('done', flush=True)
''')


@pytest.mark.parametrize('old', [True, False])
def test_sigkill_during_write(tmp_path, old):
    "A writer killed with SIGKILL mid-write: the target holds the old content (or is absent), never a partial file."
    target = tmp_path / 'big.bin'
    if old: target.write_bytes(b'old content')
    script = tmp_path / 'writer.py'; script.write_text(_WRITER)
    for delay in (0.05, 0.3):
        p = subprocess.Popen([sys.executable, str(script), str(target), '4000'], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == 'writing'  # the temp file is open and being filled
        time.sleep(delay)
        tmps = [q for q in tmp_path.iterdir() if q.name.startswith('.big.bin.')]
        assert tmps and tmps[0].stat().st_size >= 0
        p.send_signal(signal.SIGKILL); p.wait(timeout=30)
        assert p.returncode == -signal.SIGKILL
        if old: assert target.read_bytes() == b'old content'
        else: assert not target.exists()
    # a writer left alone finishes and replaces the target whole
    r = subprocess.run([sys.executable, str(script), str(target), '3'], capture_output=True, text=True)
    assert r.returncode == 0 and target.stat().st_size == 3 << 20


# ------------------------------------------------------------------ run directories
def test_make_run_dir_refusal(tmp_path):
    d = make_run_dir(tmp_path, 'run1')
    assert d.is_dir() and d == tmp_path / 'run1'
    assert make_run_dir(tmp_path, 'run1') == d  # empty: reused
    (d / 'metrics.json').write_text('{}')
    with pytest.raises(ResultExistsError, match='overwrite') as ei: make_run_dir(tmp_path, 'run1')
    assert str(d) in str(ei.value) and (d / 'metrics.json').exists()
    d2 = make_run_dir(tmp_path, 'run1', overwrite=True)
    assert d2 == d and list(d.iterdir()) == []
    assert make_run_dir(tmp_path / 'a' / 'b').is_dir()  # parents created


# ------------------------------------------------------------------ determinism
def _draws():
    return (random.random(), float(np.random.rand()), torch.rand(3).tolist(), torch.randn(2, 2).sum().item(),
            torch.randperm(10).tolist())


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_seed_everything_repeats(seed):
    try:
        assert seed_everything(seed) == seed
        a = _draws()
        seed_everything(seed)
        assert _draws() == a
    finally:
        torch.use_deterministic_algorithms(False)


def test_seed_everything_differs_between_seeds():
    try:
        seed_everything(1); a = _draws()
        seed_everything(2); b = _draws()
        assert a != b
    finally:
        torch.use_deterministic_algorithms(False)


def test_seed_everything_across_processes():
    "Two fresh interpreters seeded alike draw alike, including a tiny training step."
    code = textwrap.dedent('''
        import json, random, numpy as np, torch
        from audiokit.core import seed_everything
        seed_everything(123)
        m = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        x = torch.randn(16, 8); y = torch.randint(0, 2, (16,))
        loss = torch.nn.functional.cross_entropy(m(x), y); loss.backward(); opt.step()
        print(json.dumps([random.random(), float(np.random.rand()), loss.item(), m[0].weight.sum().item(),
                          torch.are_deterministic_algorithms_enabled()]))
    ''')
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    procs = [subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]  # side by side: each pays torch's import once
    outs = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    assert all(o[2] == 0 for o in outs), outs[0][1][-2000:]
    a, b = (json.loads(o[0].strip().splitlines()[-1]) for o in outs)
    assert a == b and a[-1] is True


@pytest.mark.parametrize('bad', ['42', 4.2, None, True])
def test_seed_everything_refuses_non_int(bad):
    with pytest.raises(ConfigError, match='seed'): seed_everything(bad)


@given(seed=st.integers(0, 2**63 - 1))
@settings(max_examples=30, deadline=None)
def test_make_generator_private_and_repeatable(seed):
    torch.manual_seed(0); before = torch.rand(1)
    g1, g2 = make_generator(seed), make_generator(seed)
    assert torch.equal(torch.rand(5, generator=g1), torch.rand(5, generator=g2))
    torch.manual_seed(0); make_generator(seed); assert torch.equal(torch.rand(1), before)  # global RNG untouched
    n1, n2 = make_generator(seed, 'numpy'), make_generator(seed, 'numpy')
    assert n1.random() == n2.random()


def test_builtin_parts_resolve_in_a_fresh_process():
    "A checkpoint of a model registered outside audiokit.models loads without importing that module first."
    import subprocess, sys
    code = ("from audiokit.core import MODELS, METHODS, LOSSES\n"
            "assert 'add_rsc' in MODELS and 'auto' in METHODS and 'egemaps_svm' in METHODS and 'focal' in LOSSES\n"
            "try: MODELS['no_such_model']\n"
            "except Exception as e: assert 'add_rsc' in str(e), e\n")
    subprocess.run([sys.executable, '-c', code], check=True)
