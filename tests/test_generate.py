"""`audiokit generate`: the CLI as a user runs it (subprocess), reruns that fill only what is missing,
fault injection (bad model outputs, a crash mid-run), offline errors, and property tests of planning."""
import io, json, math, os, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings, strategies as st

from audiokit import generate as G
from audiokit.core import ConfigError


def run(*args, env=None):
    e = {**os.environ, 'OMP_NUM_THREADS': '1', **(env or {})}
    return subprocess.run([sys.executable, '-m', 'audiokit.cli', 'generate', *map(str, args)], capture_output=True, text=True, env=e)


@pytest.fixture(scope='module')
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('models') / 'tiny-audioldm'
    G.tiny_audioldm(d)
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
    args = ['--model', tiny_dir, '--output-dir', out, '--samples-per-class', 2, '--target-classes', 1, 3, '--steps', 2, '--duration', 1,
            '--batch-size', 2]
    r = run(*args)
    assert r.returncode == 0, r.stderr
    assert 'plan: class 1 (crackles): 2, class 3 (both): 2' in r.stdout
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
    assert s['model'] == str(tiny_dir) and s['pipeline_class'] == 'AudioLDMPipeline'
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


def test_cli_inject_with_ratio_and_prompts(tmp_path):
    data = write_icbhi(tmp_path / 'icbhi')
    out = tmp_path / 'inj'
    # 3 patients x (3 normal, 1 crackle, 1 wheeze, 1 both): ratio 1.0 -> each target class up to 9
    r = run('--model', 'inject', '--output-dir', out, '--augmentation-ratio', 1.0, '--target-classes', 2, 3, '--data', data, '--duration', 1.5)
    assert r.returncode == 0, r.stderr
    assert 'class 2 (wheezes): 6, class 3 (both): 6' in r.stdout
    s = json.loads((out / 'generation_summary.json').read_text())
    assert s['present'] == {'2': 6, '3': 6} and s['backend'] == 'inject'
    assert all(f['source'].startswith(str(data)) for f in s['files'])
    # the injected clips are the real normal cycles plus events: not silent, not clipped, 16 kHz, 1.5 s
    for p in (out / 'class_2_wheezes').glob('*.wav'):
        w, sr = sf.read(p)
        assert sr == 16000 and len(w) == 24000 and G.quality_check(torch.from_numpy(w)[None].float()) is None
    # the folder as manifest rows: valid under the manifest contract, synthetic, unassigned to folds
    sm = G.synthetic_manifest(out)
    assert len(sm) == 12 and sm['synthetic'].all() and set(sm['label']) == {'wheeze', 'both'}
    datasets = pytest.importorskip('audiokit.datasets')
    v = datasets.validate_manifest(sm)
    assert len(v) == 12 and v['synthetic'].all() and (v['fold'] == -1).all()


def test_cli_user_prompts_are_used(tiny_dir, tmp_path, capsys):
    y = tmp_path / 'prompts.yaml'
    y.write_text('wheezes:\n' + ''.join(f"  - wheeze prompt number {i}\n" for i in range(10)))
    out = tmp_path / 'p'
    code, _, err = run_inproc('--model', tiny_dir, '--output-dir', out, '--samples-per-class', 3, '--target-classes', 2, '--steps', 1,
                              '--duration', 1, '--prompts', y, capsys=capsys)
    assert code == 0, err
    s = json.loads((out / 'generation_summary.json').read_text())
    assert [f['prompt'] for f in sorted(s['files'], key=lambda f: f['index'])] == [f"wheeze prompt number {i}" for i in range(3)]
    assert s['prompts']['wheezes'][0] == 'wheeze prompt number 0'


@pytest.mark.parametrize('args,msg,code', [
    (['--model', 'inject', '--augmentation-ratio', 0.5, '--target-classes', 1], '--data', 1),
    (['--model', 'inject', '--samples-per-class', 1, '--target-classes', 1], 'needs the user\'s data', 1),
    (['--model', 'inject', '--samples-per-class', 1, '--target-classes', 0], 'target classes must be among', 1),
    (['--samples-per-class', 1, '--augmentation-ratio', 0.5], 'not allowed with', 2),
])
def test_cli_user_errors(tmp_path, capsys, args, msg, code):
    got, _, err = run_inproc('--output-dir', tmp_path / 'o', *args, capsys=capsys)
    assert got == code and msg in err, err


def test_offline_hub_id_and_bad_folder_are_clear_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    code, _, err = run_inproc('--model', 'no-such-org/no-such-audioldm', '--output-dir', tmp_path / 'o', '--samples-per-class', 1, capsys=capsys)
    assert code == 1 and 'cannot load AudioLDMPipeline' in err and 'offline' in err, err
    (tmp_path / 'empty').mkdir()
    code, _, err = run_inproc('--model', tmp_path / 'empty', '--output-dir', tmp_path / 'o', '--samples-per-class', 1, capsys=capsys)
    assert code == 1 and 'model_index.json' in err
    assert not (tmp_path / 'o' / 'generation_summary.json').exists()


def test_bad_outputs_are_rejected_with_reasons_and_retried(tiny_dir, tmp_path, monkeypatch):
    "Fault injection: the model returns NaN, clipped, then silent audio for some seeds; QC rejects them and retries with new seeds."
    real = G.generate_batch
    calls = []
    def faulty(pipe, prompts, seeds, cfg=None):
        waves, sr = real(pipe, prompts, seeds, cfg)
        out = []
        for w, s in zip(waves, seeds):
            calls.append(s)
            if s == G.seed_for(cfg.seed, 1, 0, 0): w = torch.full_like(w, float('nan'))
            elif s == G.seed_for(cfg.seed, 1, 0, 1): w = torch.sign(w) * 1.0
            elif s == G.seed_for(cfg.seed, 1, 1, 0): w = w * 0
            out.append(w)
        return out, sr
    monkeypatch.setattr(G, 'generate_batch', faulty)
    cfg = G.GenerationConfig(num_inference_steps=1, duration=1.0, batch_size=2, max_attempts=3)
    s = G.generate_synthetic(tmp_path / 'o', {1: 3}, cfg, pipe=G.load_pipeline(tiny_dir), progress=False)
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
    pipe = G.load_pipeline(tiny_dir)
    with pytest.raises(RuntimeError, match='disk full'):
        G.generate_synthetic(tmp_path / 'o', {2: 5}, cfg, pipe=pipe, progress=False)
    assert not [p for p in (tmp_path / 'o').rglob('.*')]          # no temporary files left behind
    assert len(G.existing_examples(tmp_path / 'o', 2)) == 2
    monkeypatch.setattr(G, 'save_audio', real)
    s = G.generate_synthetic(tmp_path / 'o', {2: 5}, cfg, pipe=pipe, progress=False)
    assert s['generated_this_run'] == 3 and s['present'] == {'2': 5}


def test_lora_folder_errors(tiny_dir, tmp_path):
    pipe = G.load_pipeline(tiny_dir)
    with pytest.raises(G.GenerateError, match='adapter_config.json not found'):
        G.load_lora(pipe, tmp_path)
    with pytest.raises(G.GenerateError, match='no LoRA adapters'):
        G.save_lora(pipe, tmp_path / 'l')


@settings(max_examples=200, deadline=None)
@given(counts=st.lists(st.integers(0, 5000), min_size=4, max_size=4).filter(lambda c: max(c) > 0),
       ratio=st.floats(0, 1), targets=st.sets(st.sampled_from([1, 2, 3]), min_size=1))
def test_plan_reaches_the_target_balance(counts, ratio, targets):
    c = dict(enumerate(counts))
    plan = G.plan_counts(sorted(targets), augmentation_ratio=ratio, counts=c)
    target = math.ceil(ratio * max(counts))
    for k in targets:
        assert plan[k] >= 0 and c[k] + plan[k] >= target
        assert plan[k] == 0 or c[k] + plan[k] == target       # never more than needed


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 30), d=st.integers(1, 5), shift=st.floats(-3, 3), seed=st.integers(0, 1000))
def test_frechet_distance_properties(n, d, shift, seed):
    g = np.random.default_rng(seed)
    a, b = g.standard_normal((n, d)), g.standard_normal((n, d)) + shift
    fd = G.frechet_distance(a, b)
    assert fd >= 0 and math.isclose(fd, G.frechet_distance(b, a), rel_tol=1e-4, abs_tol=1e-4)
    assert G.frechet_distance(a, a) < 1e-4


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match='num_inference_steps'): G.GenerationConfig(num_inference_steps=0)
    with pytest.raises(ConfigError, match='unknown setting'): G.GenerationConfig.from_dict({'guidance': 3.0})
