"""Fine-tuning pretrained encoders as the neural method's `encoder_classifier` (tiny random encoders written by
`make_tiny_encoder`): what each mode trains (frozen weights bitwise unchanged after `run_fold`), self-contained
checkpoints that reproduce the recorded test probabilities without the encoder folder, LoRA adapters saved and loaded
on their own, and clear errors.

`audiokit.finetune` is imported inside the fixtures, not at module level: importing it registers `encoder_classifier`,
and tests/test_models.py parametrises over every registered model when it is collected (this model needs an encoder)."""
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from audiokit.audio import load_clip
from audiokit.core import ConfigError
from audiokit.encoders import load_encoder, make_tiny_encoder
from audiokit.experiment import fold_data, run_fold
from audiokit.spec import load_spec

BASE = {'splits': {'k': 2}, 'eval': {'n_boot': 0}, 'window': {'seconds': 0.4},
        'train': {'epochs': 2, 'batch_size': 4, 'lr': 1e-3, 'patience': 5}}


@pytest.fixture(scope='module')
def ft():
    import audiokit.finetune as ft
    return ft


@pytest.fixture(scope='module')
def speech(speech_rows):
    return speech_rows(speakers=6, per_class=1, classes=('neutral', 'angry'), min_s=0.5, max_s=1.0, sample_rate=16000)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp('encoders')
    return {f: make_tiny_encoder(f, root / f) for f in ('wav2vec2', 'hubert', 'whisper', 'ast', 'clap')}


def _spec(encoder, *over, sample_rate=16000):
    return load_spec({**BASE, 'audio': {'sample_rate': sample_rate}},
                     ['model.name=encoder_classifier', 'features.kind=waveform', f"model.model_kwargs.encoder={encoder}", *over])


def _run(spec, speech, out):
    res = run_fold(spec, 0, out, speech, progress=False)
    return res, pd.read_csv(out / 'predictions.csv').filter(like='p_').to_numpy()


def _reproduces(out, spec, speech, probs):
    "model.ckpt, loaded back, gives the recorded test probabilities."
    from audiokit.clipmodel import load_clip_model
    clip, _ = load_clip_model(out / 'model.ckpt')
    with torch.inference_mode():
        again = torch.cat([clip(load_clip(p, spec.audio)) for p in fold_data(spec, 0, speech).test['path']]).numpy()
    assert np.abs(again - probs).max() < 1e-5
    return clip


def _saved_encoder(out) -> dict:
    "The trained encoder weights of a fold's checkpoint, under the pretrained model's names (LoRA's base_layer folded back)."
    from audiokit.models import load_checkpoint
    sd = load_checkpoint(out / 'model.ckpt', build=False).state_dict
    return {k.removeprefix('encoder.model.').replace('.base_layer', ''): v for k, v in sd.items()
            if k.startswith('encoder.') and 'lora_' not in k}


def _pretrained(folder) -> dict:
    return load_encoder(folder).model.state_dict()


@pytest.mark.parametrize('family', ['ast', 'clap'])
def test_head_keeps_the_encoder_bitwise(ft, speech, tiny, tmp_path, family):
    # CLAP reads 48 kHz: the 16 kHz windows are resampled inside the model
    spec = _spec(tiny[family], 'model.model_kwargs.finetune=head')
    res, probs = _run(spec, speech, tmp_path / 'f0')
    saved, orig = _saved_encoder(tmp_path / 'f0'), _pretrained(tiny[family])
    assert saved.keys() == orig.keys() and all(torch.equal(saved[k], orig[k]) for k in orig)
    _reproduces(tmp_path / 'f0', spec, speech, probs)
    assert res['n']['test'] > 0


def test_full_trains_all_but_the_front_end(ft, speech, tiny, tmp_path):
    spec = _spec(tiny['hubert'], 'model.model_kwargs.finetune=full', 'model.model_kwargs.pooling=mean_std')
    _, probs = _run(spec, speech, tmp_path / 'f0')
    saved, orig = _saved_encoder(tmp_path / 'f0'), _pretrained(tiny['hubert'])
    same = {k for k in orig if torch.equal(saved[k], orig[k])}
    assert {k for k in orig if k.startswith('feature_extractor.')} <= same            # the CNN front end: frozen
    assert {k for k in orig if k.startswith('encoder.layers.')}.isdisjoint(same)      # every transformer weight trained
    _reproduces(tmp_path / 'f0', spec, speech, probs)


def test_full_with_the_front_end_unfrozen(ft, speech, tiny, tmp_path):
    spec = _spec(tiny['wav2vec2'], 'model.model_kwargs.finetune=full', 'model.model_kwargs.freeze_feature_encoder=false')
    _run(spec, speech, tmp_path / 'f0')
    saved, orig = _saved_encoder(tmp_path / 'f0'), _pretrained(tiny['wav2vec2'])
    assert not torch.equal(saved['feature_extractor.conv_layers.0.conv.weight'], orig['feature_extractor.conv_layers.0.conv.weight'])


def test_lora_changes_only_adapters_and_head_and_ships_alone(ft, speech, tiny, tmp_path):
    # Whisper at a run rate of 8 kHz: resampled to 16 kHz inside; rank 4 on q_proj, k_proj, v_proj
    spec = _spec(tiny['whisper'], 'model.model_kwargs.finetune=lora', 'model.model_kwargs.lora.r=4',
                 'model.model_kwargs.lora.target_modules=[q_proj,k_proj,v_proj]', sample_rate=8000)
    _, probs = _run(spec, speech, tmp_path / 'f0')
    saved, orig = _saved_encoder(tmp_path / 'f0'), _pretrained(tiny['whisper'])
    assert saved.keys() == orig.keys() and all(torch.equal(saved[k], orig[k]) for k in orig)
    clip = _reproduces(tmp_path / 'f0', spec, speech, probs)
    lora_b = {k: v for k, v in clip.net.state_dict().items() if 'lora_B' in k}
    assert len(lora_b) == 2 * 3 and all(v.shape[1] == 4 for v in lora_b.values()) and any(v.abs().sum() > 0 for v in lora_b.values())
    # the adapter alone (no model.ckpt), loaded on the base encoder copied elsewhere, gives the same window outputs
    folder = ft.save_adapter(clip, tmp_path / 'adapter')
    assert (folder / 'adapter_model.safetensors').stat().st_size < (tmp_path / 'f0' / 'model.ckpt').stat().st_size
    copy = shutil.copytree(tiny['whisper'], tmp_path / 'base_copy')
    net = ft.load_adapter(folder, encoder=copy)
    x = 0.1 * torch.randn(3, 1, 3200, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(): assert torch.allclose(net(x), clip.net(x), atol=1e-6)
    assert net.sample_rate == 8000 and net.lora['r'] == 4
    ft.save_adapter(net, folder, overwrite=True)                  # an adapter loaded alone saves again
    assert torch.allclose(ft.load_adapter(folder)(x), net(x), atol=1e-6)


def test_the_checkpoint_needs_no_encoder_folder(ft, speech, tmp_path):
    folder = make_tiny_encoder('wav2vec2', tmp_path / 'enc')
    spec = _spec(folder, 'model.model_kwargs.finetune=lora')
    _, probs = _run(spec, speech, tmp_path / 'f0')
    shutil.rmtree(folder)                                          # the folder is gone: the checkpoint still rebuilds
    _reproduces(tmp_path / 'f0', spec, speech, probs)
    from audiokit.experiment import load_trained
    wave = load_clip(fold_data(spec, 0, speech).test['path'][0], spec.audio)
    assert np.abs(load_trained(tmp_path / 'f0')(wave) - probs[0]).max() < 1e-5
    # ... the adapter then needs the base encoder, and says where it looked
    from audiokit.clipmodel import load_clip_model
    ft.save_adapter(load_clip_model(tmp_path / 'f0' / 'model.ckpt')[0], tmp_path / 'adapter')
    with pytest.raises(ConfigError, match='does not exist'): ft.load_adapter(tmp_path / 'adapter')


def test_a_folder_overwritten_with_other_weights_does_not_change_the_checkpoint(ft, speech, tmp_path):
    folder = make_tiny_encoder('wav2vec2', tmp_path / 'enc', seed=0)
    spec = _spec(folder, 'model.model_kwargs.finetune=head')
    _, probs = _run(spec, speech, tmp_path / 'f0')
    make_tiny_encoder('wav2vec2', folder, seed=1)
    _reproduces(tmp_path / 'f0', spec, speech, probs)


@pytest.mark.parametrize('over,match', [
    (['features.kind=logmel'], 'set features.kind=waveform'),
    (['model.model_kwargs.pool=mean'], "does not take ['pool']"),
    (['model.model_kwargs.sample_rate=8000'], "takes ['sample_rate'] from the run spec"),
    (['model.model_kwargs.finetune=adapters'], "finetune"),
    (['model.model_kwargs.lora.r=4'], "need finetune='lora'"),
    (['model.model_kwargs.finetune=lora', 'model.model_kwargs.lora.rank=4'], 'lora.rank'),
    (['model.model_kwargs.finetune=lora', 'model.model_kwargs.lora.r=0'], 'lora.r'),
    (['model.model_kwargs.finetune=lora', 'model.model_kwargs.lora.target_modules=[query]'], "linear layers are named"),
    (['model.model_kwargs.freeze_feature_encoder=true'], "finetune='full' only"),
    (['model.model_kwargs.layer=7'], 'layer 7 is outside'),
    (['model.pretrained=weights.pt'], 'leave model.pretrained empty'),
])
def test_clear_errors(ft, speech, tiny, tmp_path, over, match):
    with pytest.raises(ConfigError, match=re.escape(match)) as e:
        run_fold(_spec(tiny['wav2vec2'], *over), 0, tmp_path / 'f0', speech, progress=False)
    assert e.value.path is not None


def test_missing_encoder_is_named(ft, speech, tmp_path):
    with pytest.raises(ConfigError, match="'org/not-downloaded'"):
        run_fold(_spec('org/not-downloaded'), 0, tmp_path / 'f0', speech, progress=False)


def test_adapter_errors(ft, tiny, tmp_path):
    from audiokit.models import build_model
    from audiokit.core import ModelConfig
    mc = ModelConfig(name='encoder_classifier', num_classes=2)
    head = build_model(mc, (1, 4000), {'encoder': str(tiny['ast']), 'sample_rate': 16000})
    with pytest.raises(ft.AdapterError, match="finetune='head'"): ft.save_adapter(head, tmp_path / 'a')
    lora = build_model(mc, (1, 4000), {'encoder': str(tiny['ast']), 'sample_rate': 16000, 'finetune': 'lora'})
    folder = ft.save_adapter(lora, tmp_path / 'a')
    with pytest.raises(ft.AdapterError, match='another config'): ft.load_adapter(folder, encoder=tiny['wav2vec2'])
    other = make_tiny_encoder('ast', tmp_path / 'ast_seed1', seed=1)          # same config, other weights
    with pytest.raises(ft.AdapterError, match='other weights'): ft.load_adapter(folder, encoder=other)
    (folder / 'head.safetensors').unlink()
    with pytest.raises(ft.AdapterError, match='head.safetensors not found'): ft.load_adapter(folder)
    bare = ft.EncoderClassifier(load_encoder(tiny['ast']), 2, 16000, 'lora')     # built without a recipe: base unknown
    with pytest.raises(ft.AdapterError, match='base encoder is unknown'): ft.save_adapter(bare, tmp_path / 'b')
    assert not (tmp_path / 'b').exists() and not list(tmp_path.glob('.b.*'))


def test_a_short_window_is_refused_by_name(ft, tiny):
    from audiokit.features import FeatureError
    net = ft.EncoderClassifier(load_encoder(tiny['wav2vec2']), 2, 16000, 'head')
    with pytest.raises(FeatureError, match='window.seconds'): net(torch.zeros(2, 1, 200))


def test_the_spec_finds_the_model_in_a_fresh_process():
    import subprocess, sys
    code = "from audiokit.spec import load_spec; print(load_spec(overrides=['model.name=encoder_classifier']).model.name)"
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == 'encoder_classifier', r.stderr[-2000:]
