"""`audiokit generate`: the CLI as a user runs it (subprocess), reruns that fill only what is missing,
settings from --config and -p, fault injection (bad model outputs, a crash mid-run), offline errors,
the inject backend's settings, backends registered by name, and property tests of planning."""
import io, json, math, os, re, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml
from hypothesis import given, settings, strategies as st

import audiokit
from audiokit import generate as G, generate_backends as B, generate_lora as L, generate_quality as Q, labels, balance
from audiokit.core import ConfigError


def run(*args, env=None):
    e = {**os.environ, 'OMP_NUM_THREADS': '1', **(env or {})}
    return subprocess.run([sys.executable, '-m', 'audiokit.cli', 'generate', *map(str, args)], capture_output=True, text=True, env=e)


@pytest.fixture(scope='module')
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('models') / 'tiny-audioldm'
    B.tiny_audioldm(d)
    return d


def write_icbhi(root: Path, sr=4000, seed=0):
    g = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    flags = [(0, 0), (0, 0), (1, 0), (0, 1), (0, 0), (1, 1)]
    for pid in ('101', '102', '103'):
        n = int(len(flags) * 1.5 * sr)
        wave = 0.1 * np.abs(np.sin(np.pi * np.arange(n) / sr / 1.5)) * g.standard_normal(n)
        sf.write(root / f"{pid}_1b1_Al_sc_Meditron.wav", wave.astype(np.float32), sr)
        (root / f"{pid}_1b1_Al_sc_Meditron.txt").write_text(''.join(f"{1.5 * j}\t{1.5 * j + 1.5}\t{c}\t{w}\n" for j, (c, w) in enumerate(flags)))
    return root


@pytest.fixture(scope='module')
def icbhi_dir(tmp_path_factory):
    return write_icbhi(tmp_path_factory.mktemp('data') / 'icbhi')


def run_inproc(*args, capsys=None):
    "The same command in this process (for the cheap cases: a subprocess costs ~10-20 s of imports on a busy machine)."
    from audiokit.cli import main
    try: code = main(['generate', *map(str, args)])
    except SystemExit as e: code = e.code
    out = capsys.readouterr() if capsys else None
    return code, (out.out if out else ''), (out.err if out else '')


def files(out: Path):
    return sorted(str(p.relative_to(out)) for p in out.rglob('*') if p.is_file())


def test_cli_tiny_pipeline_layout_rerun_and_overwrite(tiny_dir, tmp_path, capsys):
    out = tmp_path / 'syn'
    args = ['-p', f'model={tiny_dir}', '--out', out, '--samples-per-class', 2, '--target-classes', 1, 'both', '-p', 'num_inference_steps=2',
            '-p', 'duration=1', '-p', 'batch_size=2']
    r = run(*args)
    assert r.returncode == 0, r.stderr
    assert 'plan: class 1 (crackle): 2, class 3 (both): 2' in r.stdout
    fs = files(out)
    wavs = [f for f in fs if f.endswith('.wav')]
    assert len(wavs) == 4 and all(f.split('/')[0] in ('class_1_crackles', 'class_3_both') for f in wavs)
    for f in wavs:
        assert (out / f).with_suffix('.txt').is_file()
        data, sr = sf.read(out / f)
        assert sr == 16000 and len(data) == 16000 and np.isfinite(data).all()
    both = [f for f in wavs if f.startswith('class_3_both/')]
    assert all((out / f).with_suffix('.txt').read_text() == '0.000\t1.000\t1\t1\n' for f in both) and len(both) == 2
    ann = (out / 'annotations' / 'synthetic_crackles_annotations.txt').read_text().splitlines()
    assert len(ann) == 3 and ann[1].endswith('\t0.000\t1.000\t1\t0')
    s = json.loads((out / 'generation_summary.json').read_text())
    assert s['model'] == str(tiny_dir) and s['backend'] == 'diffusers' and s['backend_info'] == {'pipeline_class': 'AudioLDMPipeline'}
    assert s['settings']['num_inference_steps'] == 2 and s['settings']['guidance_scale'] == 7.5
    assert 'diffusers' in s['provenance']['versions'] and s['timings']['seconds_per_sample'] > 0
    assert {(f['class'], f['index']) for f in s['files']} == {(1, 0), (1, 1), (3, 0), (3, 1)}
    assert all(f['prompt'] in G.DEFAULT_PROMPTS[f['name']] and f['seed'] == G.seed_for(42, f['class'], f['index']) for f in s['files'])
    before = {f: (out / f).read_bytes() for f in wavs}
    # rerun: nothing missing, nothing made, nothing touched
    assert run_inproc(*args, capsys=capsys)[0] == 0
    assert json.loads((out / 'generation_summary.json').read_text())['generated_this_run'] == 0 and files(out) == fs
    # a lost file is remade alone, the same audio (same seed; batch 1 vs 2 may differ by float rounding: 1-2 LSB of PCM16)
    lost = out / wavs[1]
    lost_audio = sf.read(lost)[0]
    idx = lost.stem.rsplit('_', 1)[1]
    lost.unlink()
    r3 = run(*args)
    assert r3.returncode == 0 and json.loads((out / 'generation_summary.json').read_text())['generated_this_run'] == 1
    remade = sorted(lost.parent.glob(f"synthetic_crackles_*_{idx}.wav"))
    assert len(remade) == 1
    np.testing.assert_allclose(sf.read(remade[0])[0], lost_audio, atol=1e-4, rtol=0)
    # --overwrite makes everything again (same seeds -> same audio)
    r4 = run(*args, '--overwrite')
    assert r4.returncode == 0, r4.stderr
    s4 = json.loads((out / 'generation_summary.json').read_text())
    assert s4['generated_this_run'] == 4 and len(s4['runs']) == 1
    new = {f: (out / f) for f in files(out) if f.endswith('.wav')}
    assert len(new) == 4
    old_audio = {f.rsplit('_', 1)[0].split('/')[0] + f.rsplit('_', 1)[1]: sf.read(io.BytesIO(b))[0] for f, b in before.items()}
    new_audio = {f.rsplit('_', 1)[0].split('/')[0] + f.rsplit('_', 1)[1]: sf.read(p)[0] for f, p in new.items()}
    assert sorted(old_audio) == sorted(new_audio)
    for key in old_audio: np.testing.assert_allclose(new_audio[key], old_audio[key], atol=1e-4, rtol=0)


def test_cli_inject_with_ratio(icbhi_dir, tmp_path):
    out = tmp_path / 'inj'
    # 3 patients x (3 normal, 1 crackle, 1 wheeze, 1 both): ratio 1.0 -> each target class up to 9
    r = run('-p', 'model=inject', '--out', out, '--augmentation-ratio', 1.0, '--target-classes', 2, 3, '--data', icbhi_dir, '-p', 'duration=1.5')
    assert r.returncode == 0, r.stderr
    assert 'class 2 (wheeze): 6, class 3 (both): 6' in r.stdout
    s = json.loads((out / 'generation_summary.json').read_text())
    assert s['present'] == {'2': 6, '3': 6} and s['backend'] == 'inject'
    assert all(f['source'].startswith(str(icbhi_dir)) for f in s['files'])
    # the injected clips are the real normal cycles plus events: not silent, not clipped, 16 kHz, 1.5 s
    for p in (out / 'class_2_wheezes').glob('*.wav'):
        w, sr = sf.read(p)
        assert sr == 16000 and len(w) == 24000 and Q.quality_check(torch.from_numpy(w)[None].float()) is None
    # the folder as manifest rows: valid under the manifest contract, synthetic, unassigned to folds, labels in ICBHI's names
    sm = G.synthetic_manifest(out)
    assert len(sm) == 12 and sm['synthetic'].all() and set(sm['label']) == {'wheeze', 'both'}
    assert labels.ICBHI.counts(sm).to_dict() == {'normal': 0, 'crackle': 0, 'wheeze': 6, 'both': 6}
    from audiokit import datasets
    v = datasets.validate_manifest(sm)
    assert len(v) == 12 and v['synthetic'].all() and (v['fold'] == -1).all()


def test_cli_user_prompts_are_used(tiny_dir, tmp_path, capsys):
    y = tmp_path / 'prompts.yaml'
    y.write_text('wheezes:\n' + ''.join(f"  - wheeze prompt number {i}\n" for i in range(10)))
    out = tmp_path / 'p'
    code, _, err = run_inproc('-p', f'model={tiny_dir}', '--out', out, '--samples-per-class', 3, '--target-classes', 2,
                              '-p', 'num_inference_steps=1', '-p', 'duration=1', '-p', f'prompts_file={y}', capsys=capsys)
    assert code == 0, err
    s = json.loads((out / 'generation_summary.json').read_text())
    assert [f['prompt'] for f in sorted(s['files'], key=lambda f: f['index'])] == [f"wheeze prompt number {i}" for i in range(3)]
    assert s['prompts']['wheezes'][0] == 'wheeze prompt number 0'


def test_cli_config_model_is_not_overridden_by_a_default(tiny_dir, tmp_path, capsys):
    "Bug: `--config F` had its model replaced by `--model`'s default; flags (-p) override the file only when given."
    cfg = tmp_path / 'gen.yaml'
    cfg.write_text(yaml.safe_dump({'model': str(tiny_dir), 'num_inference_steps': 2, 'duration': 1.0, 'seed': 5}))
    out = tmp_path / 'c'
    code, _, err = run_inproc('--config', cfg, '--out', out, '--samples-per-class', 1, '--target-classes', 1, capsys=capsys)
    assert code == 0, err
    s = json.loads((out / 'generation_summary.json').read_text())
    assert s['model'] == str(tiny_dir) and s['settings']['num_inference_steps'] == 2 and s['settings']['seed'] == 5
    # -p overrides the file, and only the setting it names
    code, _, err = run_inproc('--config', cfg, '-p', 'num_inference_steps=1', '--out', tmp_path / 'c2', '--samples-per-class', 1,
                              '--target-classes', 1, capsys=capsys)
    assert code == 0, err
    s2 = json.loads((tmp_path / 'c2' / 'generation_summary.json').read_text())
    assert s2['model'] == str(tiny_dir) and s2['settings']['num_inference_steps'] == 1 and s2['settings']['seed'] == 5


def test_generation_config_layers():
    assert G.generation_config().model == G.DEFAULT_MODEL
    c = G.generation_config(None, ['model=inject', 'duration=2', 'negative_prompt=static noise', 'dtype=float32'])
    assert (c.model, c.duration, c.negative_prompt, c.dtype) == ('inject', 2.0, 'static noise', 'float32')
    with pytest.raises(ConfigError, match='unknown setting'): G.generation_config(None, ['steps=3'])
    with pytest.raises(ConfigError, match='expected key=value'): G.generation_config(None, ['model'])


@pytest.mark.parametrize('args,msg,code', [
    (['-p', 'model=inject', '--augmentation-ratio', 0.5, '--target-classes', 1], '--data', 1),
    (['-p', 'model=inject', '--samples-per-class', 1, '--target-classes', 1], 'needs the user\'s data', 1),
    (['-p', 'model=inject', '--samples-per-class', 1, '--target-classes', 0], 'target classes must be among', 1),
    (['-p', 'model=inject', '--samples-per-class', 1, '--target-classes', 'rhonchi'], 'not an ICBHI class', 1),
    (['--samples-per-class', 1, '--augmentation-ratio', 0.5], 'not allowed with', 2),
    (['-p', 'steps=3', '--samples-per-class', 1], "unknown setting(s) ['steps']", 1),
    (['-p', 'model', '--samples-per-class', 1], 'expected key=value', 1),
    (['--output-dir', 'x', '--samples-per-class', 1], 'unrecognized arguments', 2),
])
def test_cli_user_errors(tmp_path, capsys, args, msg, code):
    got, _, err = run_inproc('--out', tmp_path / 'o', *args, capsys=capsys)
    assert got == code and msg in err, err


def test_offline_hub_id_and_bad_folder_are_clear_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    code, _, err = run_inproc('-p', 'model=no-such-org/no-such-audioldm', '--out', tmp_path / 'o', '--samples-per-class', 1, capsys=capsys)
    assert code == 1 and 'cannot load AudioLDMPipeline' in err and 'offline' in err, err
    (tmp_path / 'empty').mkdir()
    code, _, err = run_inproc('-p', f"model={tmp_path / 'empty'}", '--out', tmp_path / 'o', '--samples-per-class', 1, capsys=capsys)
    assert code == 1 and 'model_index.json' in err
    assert not (tmp_path / 'o' / 'generation_summary.json').exists()


def test_inject_events_per_cycle_is_used(icbhi_dir, tmp_path):
    "Bug: `inject_events_per_cycle` was ignored (1 and 50 gave identical audio)."
    cfg = G.GenerationConfig(model='inject', duration=1.5)
    waves = {}
    for n in (1, 50):
        out = tmp_path / f"n{n}"
        s = G.generate_synthetic(out, {1: 2, 2: 1}, cfg.replace(inject_events_per_cycle=n), data=icbhi_dir, progress=False)
        assert s['present'] == {'1': 2, '2': 1}
        waves[n] = {(k, i): sf.read(p)[0] for k in (1, 2) for i, p in G.existing_examples(out, k).items()}
    for i in (0, 1):
        assert not np.allclose(waves[1][(1, i)], waves[50][(1, i)], atol=1e-3)     # crackles: the count matters
    # the backend on its own: same seed, same source cycle, only the number of crackles differs
    be = lambda n: B.InjectBackend.from_config(cfg.replace(inject_events_per_cycle=n), data=icbhi_dir)
    (w1, src1), (w50, src50) = be(1).one(1, 3), be(50).one(1, 3)
    assert src1 == src50 and not torch.allclose(w1, w50)
    assert float(w50.pow(2).sum()) > float(w1.pow(2).sum())       # raw clips (before loudness normalisation): 50 crackles add more energy


def test_backends_are_registered_by_name(tmp_path):
    "A user's backend: a Backend subclass registered in BACKENDS, selected by the `model` setting, with no edit of audiokit."
    @B.BACKENDS.register('test-tone')
    class Tone(B.Backend):
        prompted = False
        def __init__(self, duration): self.duration = duration
        @classmethod
        def from_config(cls, cfg, data=None, pipe=None): return cls(cfg.duration)
        def generate(self, k, prompts, seeds):
            t = torch.arange(int(self.duration * 8000)) / 8000
            return [0.2 * torch.sin(2 * torch.pi * 100 * (k + s % 3) * t)[None] for s in seeds], 8000, ['tone'] * len(seeds)
        def info(self): return {'kind': 'tone'}
    assert {'diffusers', 'inject', 'test-tone'} <= set(B.BACKENDS.names())
    s = G.generate_synthetic(tmp_path / 't', {'wheeze': 2}, G.GenerationConfig(model='test-tone', duration=0.5), progress=False)
    assert s['backend'] == 'test-tone' and s['backend_info'] == {'kind': 'tone'} and s['present'] == {'2': 2}
    assert {f['prompt'] for f in s['files']} == {'test-tone:wheezes'} and {f['source'] for f in s['files']} == {'tone'}
    w, sr = sf.read(G.existing_examples(tmp_path / 't', 2)[0])
    assert sr == 16000 and len(w) == 8000


def test_bad_outputs_are_rejected_with_reasons_and_retried(tiny_dir, tmp_path, monkeypatch):
    "Fault injection: the model returns NaN, clipped, then silent audio for some seeds; QC rejects them and retries with new seeds."
    real = B.generate_batch
    calls = []
    cfg = G.GenerationConfig(num_inference_steps=1, duration=1.0, batch_size=2, max_attempts=3)
    def faulty(pipe, prompts, seeds, **kw):
        waves, sr = real(pipe, prompts, seeds, **kw)
        out = []
        for w, s in zip(waves, seeds):
            calls.append(s)
            if s == G.seed_for(cfg.seed, 1, 0, 0): w = torch.full_like(w, float('nan'))
            elif s == G.seed_for(cfg.seed, 1, 0, 1): w = torch.sign(w) * 1.0
            elif s == G.seed_for(cfg.seed, 1, 1, 0): w = w * 0
            out.append(w)
        return out, sr
    monkeypatch.setattr(B, 'generate_batch', faulty)
    s = G.generate_synthetic(tmp_path / 'o', {1: 3}, cfg, pipe=B.load_pipeline(tiny_dir), progress=False)
    reasons = sorted((r['index'], r['attempt'], r['reason'].split(':')[0]) for r in s['rejections'])
    assert reasons == [(0, 0, 'non-finite'), (0, 1, 'clipped'), (1, 0, 'silent')]
    assert s['present'] == {'1': 3} and s['missing'] == {}
    got = {f['index']: f['attempt'] for f in s['files']}
    assert got == {0: 2, 1: 1, 2: 0}
    assert G.seed_for(cfg.seed, 1, 0, 2) in calls


def test_crash_mid_run_leaves_no_partial_files_and_resumes(tiny_dir, tmp_path, monkeypatch):
    real = G.save_audio
    n = {'calls': 0}
    def crashing(path, *a, **k):
        n['calls'] += 1
        if n['calls'] == 3: raise RuntimeError('disk full (injected)')
        return real(path, *a, **k)
    monkeypatch.setattr(G, 'save_audio', crashing)
    cfg = G.GenerationConfig(num_inference_steps=1, duration=1.0, batch_size=4)
    pipe = B.load_pipeline(tiny_dir)
    with pytest.raises(RuntimeError, match='disk full'):
        G.generate_synthetic(tmp_path / 'o', {2: 5}, cfg, pipe=pipe, progress=False)
    assert not [p for p in (tmp_path / 'o').rglob('.*')]          # no temporary files left behind
    assert len(G.existing_examples(tmp_path / 'o', 2)) == 2
    monkeypatch.setattr(G, 'save_audio', real)
    s = G.generate_synthetic(tmp_path / 'o', {2: 5}, cfg, pipe=pipe, progress=False)
    assert s['generated_this_run'] == 3 and s['present'] == {'2': 5}


def test_lora_folder_errors(tiny_dir, tmp_path):
    pipe = B.load_pipeline(tiny_dir)
    with pytest.raises(B.GenerateError, match='adapter_config.json not found'):
        L.load_lora(pipe, tmp_path)
    with pytest.raises(B.GenerateError, match='no LoRA adapters'):
        L.save_lora(pipe, tmp_path / 'l')
    with pytest.raises(B.GenerateError, match='adapter_config.json not found'):     # through the run settings
        G.generate_synthetic(tmp_path / 'o', {1: 1}, G.GenerationConfig(model=str(tiny_dir), lora_path=str(tmp_path)), progress=False)


def test_generate_has_no_fallbacks_or_duplicates():
    "Bug: generate.py wrapped imports of audiokit's own modules in try/except ImportError, with duplicate fallback implementations."
    pkg = Path(audiokit.__file__).parent
    for name in ('generate', 'generate_backends', 'generate_quality', 'generate_lora'):
        src = (pkg / f"{name}.py").read_text()
        assert not re.search(r'except\s+\(?\s*ImportError', src), name
        assert len(src.splitlines()) < 500, name
    # ICBHI classes and counts come from audiokit.labels, the target counts from audiokit.balance
    for dup in ('_builtin_events', '_read_icbhi_dir', '_LABEL_TO_CLASS', 'class_counts', 'icbhi_class', 'ICBHI_CLASSES', 'MANIFEST_LABELS'):
        assert not hasattr(G, dup) and not hasattr(B, dup), dup
    assert G.ICBHI is labels.ICBHI and B.inject_events is audiokit.simulate.inject_events and G.samples_needed is balance.samples_needed


def test_read_cycles_uses_the_icbhi_label_space(tmp_path):
    d = write_icbhi(tmp_path / 'icbhi', seed=1)
    rows = pd.DataFrame({'path': [str(next(d.glob('*.wav')))] * 4, 'start': [0.0, 1.5, 3.0, 4.5], 'end': [1.5, 3.0, 4.5, 6.0],
                         'label': ['crackles', 'none', '2', 'both'], 'group': '101'})
    rows.to_csv(tmp_path / 'm.csv', index=False)
    assert B.read_cycles(tmp_path / 'm.csv')['icbhi_class'].tolist() == [1, 0, 2, 3]
    rows.assign(label=['crackles', 'rhonchi', '2', 'both']).to_csv(tmp_path / 'bad.csv', index=False)
    with pytest.raises(B.GenerateError, match=r"bad.csv row 1: label 'rhonchi' is not one of the classes .* generation needs ICBHI labels"):
        B.read_cycles(tmp_path / 'bad.csv')


def test_plan_uses_balance_samples_needed(monkeypatch):
    "The one target-count calculation: plan_counts asks audiokit.balance.samples_needed."
    seen = {}
    def fake(counts, ratio):
        seen.update(counts=counts.to_dict(), ratio=ratio)
        return {'normal': 0, 'crackle': 7, 'wheeze': 8, 'both': 9}
    monkeypatch.setattr(G, 'samples_needed', fake)
    assert G.plan_counts(['crackles', 3], augmentation_ratio=0.5, counts={'normal': 10, '1': 4, 'wheeze': 2}) == {1: 7, 3: 9}
    assert seen == {'counts': {'normal': 10, 'crackle': 4, 'wheeze': 2, 'both': 0}, 'ratio': 0.5}


@settings(max_examples=200, deadline=None)
@given(counts=st.lists(st.integers(0, 5000), min_size=4, max_size=4).filter(lambda c: max(c) > 0),
       ratio=st.floats(0, 1), targets=st.sets(st.sampled_from([1, 2, 3]), min_size=1))
def test_plan_reaches_the_target_balance(counts, ratio, targets):
    c = pd.Series(counts, index=list(labels.ICBHI.classes))
    plan = G.plan_counts(sorted(targets), augmentation_ratio=ratio, counts=c)
    need = balance.samples_needed(c, ratio)
    for k in targets:
        n_k = counts[k]
        assert plan[k] == need[labels.ICBHI.classes[k]] >= 0
        assert n_k + plan[k] >= ratio * max(counts) - 1e-6                    # reaches the target
        assert plan[k] == 0 or n_k + plan[k] - 1 < ratio * max(counts)        # never more than needed


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 30), d=st.integers(1, 5), shift=st.floats(-3, 3), seed=st.integers(0, 1000))
def test_frechet_distance_properties(n, d, shift, seed):
    g = np.random.default_rng(seed)
    a, b = g.standard_normal((n, d)), g.standard_normal((n, d)) + shift
    fd = Q.frechet_distance(a, b)
    assert fd >= 0 and math.isclose(fd, Q.frechet_distance(b, a), rel_tol=1e-4, abs_tol=1e-4)
    assert Q.frechet_distance(a, a) < 1e-4


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match='num_inference_steps'): G.GenerationConfig(num_inference_steps=0)
    with pytest.raises(ConfigError, match='inject_events_per_cycle'): G.GenerationConfig(inject_events_per_cycle=0)
    with pytest.raises(ConfigError, match='unknown setting'): G.GenerationConfig.from_dict({'guidance': 3.0})
