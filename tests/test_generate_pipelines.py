"""The AudioLDM2 and Stable Audio Open paths of `audiokit.generate_backends` and `audiokit.generate`, run end to end on tiny, randomly
initialised pipelines built offline (component configs follow diffusers' own fast tests, shrunk; the
tokenizers come from vocabularies written here). Each pipeline is saved with `save_pretrained`, loaded
back through `load_pipeline(folder)` (local files only) and sampled on CPU with `generate_batch` and
`generate_synthetic`."""
import importlib.util, json, tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiokit import generate as G, generate_backends as B, generate_quality as Q

HAS_TORCHSDE = importlib.util.find_spec('torchsde') is not None    # Stable Audio Open's scheduler needs it (not in constraints.txt)
PROMPTS = ['fine crackles, inspiration', 'wheeze', 'coarse crackles and a wheeze']   # of different T5 lengths


def t5_tokenizer(max_len=32):
    "A T5TokenizerFast from a tiny unigram vocabulary (pad 0, eos 1, unk 2; letters with and without the word marker)."
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast
    pieces = [('<pad>', 0.0), ('</s>', 0.0), ('<unk>', 0.0), ('\u2581', -2.0)]
    pieces += [(c, -3.0) for c in 'abcdefghijklmnopqrstuvwxyz,-']
    pieces += [('\u2581' + c, -3.5) for c in 'abcdefghijklmnopqrstuvwxyz']
    tk = Tokenizer(models.Unigram(pieces, unk_id=2))
    tk.pre_tokenizer, tk.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
    tk.post_processor = processors.TemplateProcessing(single='$A </s>', pair='$A </s> $B </s>', special_tokens=[('</s>', 1)])
    return T5TokenizerFast(tokenizer_object=tk, pad_token='<pad>', eos_token='</s>', unk_token='<unk>', model_max_length=max_len, extra_ids=0)


def tiny_t5_encoder(vocab_size):
    from transformers import T5Config, T5EncoderModel
    return T5EncoderModel(T5Config(vocab_size=vocab_size, d_model=16, d_ff=32, d_kv=8, num_heads=2, num_layers=2,
                                   pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))


def tiny_audioldm2(save_dir, seed=0):
    "A randomly initialised AudioLDM2Pipeline: 16 kHz HiFi-GAN (hop 160, 16 mels), CLAP + T5 + GPT-2 conditioning."
    from transformers import (ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapTextConfig, GPT2Config, GPT2LMHeadModel,
                              RobertaTokenizer, SpeechT5HifiGan, SpeechT5HifiGanConfig)
    from diffusers import AudioLDM2Pipeline, AudioLDM2ProjectionModel, AudioLDM2UNet2DConditionModel, AutoencoderKL, DDIMScheduler
    with tempfile.TemporaryDirectory() as td:
        tok = RobertaTokenizer.from_pretrained(B._tiny_tokenizer_files(Path(td)), model_max_length=77)
    tok2 = t5_tokenizer(32)
    torch.manual_seed(seed)
    unet = AudioLDM2UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
                                         down_block_types=('DownBlock2D', 'CrossAttnDownBlock2D'), up_block_types=('CrossAttnUpBlock2D', 'UpBlock2D'),
                                         cross_attention_dim=([None, 16, 16], [None, 16, 16]), norm_num_groups=4, attention_head_dim=4)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule='scaled_linear', clip_sample=False, set_alpha_to_one=False)
    vae = AutoencoderKL(block_out_channels=[8, 16], in_channels=1, out_channels=1, down_block_types=['DownEncoderBlock2D'] * 2,
                        up_block_types=['UpDecoderBlock2D'] * 2, latent_channels=4, norm_num_groups=4)
    text_cfg = ClapTextConfig(bos_token_id=0, eos_token_id=2, hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=2,
                              pad_token_id=1, vocab_size=len(tok), projection_dim=16, max_position_embeddings=80)
    audio_cfg = ClapAudioConfig(spec_size=64, window_size=4, num_mel_bins=64, intermediate_size=37, depths=[2, 2], num_attention_heads=[2, 2],
                                num_hidden_layers=2, hidden_size=192, projection_dim=16, patch_size=2, patch_stride=2, patch_embed_input_channels=4)
    clap = ClapModel(ClapConfig(text_config=text_cfg.to_dict(), audio_config=audio_cfg.to_dict(), projection_dim=16))
    lm = GPT2LMHeadModel(GPT2Config(n_embd=16, n_head=2, n_layer=2, vocab_size=100, n_ctx=99, n_positions=99, bos_token_id=0, eos_token_id=0))
    lm.config.max_new_tokens = 4
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(model_in_dim=16, sampling_rate=16000, upsample_initial_channel=16, upsample_rates=[8, 5, 4],
                                                    upsample_kernel_sizes=[16, 10, 8], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
                                                    normalize_before=False))
    with torch.no_grad(): vocoder.conv_post.weight.mul_(5e5)     # random HiFi-GAN output is near-silent; make it pass QC
    pipe = AudioLDM2Pipeline(vae=vae, text_encoder=clap, text_encoder_2=tiny_t5_encoder(len(tok2)), tokenizer=tok, tokenizer_2=tok2,
                             projection_model=AudioLDM2ProjectionModel(text_encoder_dim=16, text_encoder_1_dim=16, langauge_model_dim=16),
                             language_model=lm, feature_extractor=ClapFeatureExtractor(feature_size=64, sampling_rate=16000, hop_length=7900),
                             unet=unet, scheduler=scheduler, vocoder=vocoder)
    pipe.save_pretrained(str(save_dir))
    return pipe


def tiny_stable_audio(save_dir, seed=0):
    "A randomly initialised StableAudioPipeline: stereo Oobleck VAE at 1024 Hz (hop 8), 128 latent frames (1 s max), T5 conditioning."
    from diffusers import AutoencoderOobleck, StableAudioDiTModel, StableAudioPipeline, StableAudioProjectionModel
    if HAS_TORCHSDE:       # the scheduler Stable Audio Open ships with
        from diffusers import CosineDPMSolverMultistepScheduler
        scheduler = CosineDPMSolverMultistepScheduler(solver_order=2, prediction_type='v_prediction', sigma_data=1.0, sigma_schedule='exponential')
    else:                  # CosineDPMSolverMultistepScheduler needs torchsde; exercise the pipeline with a deterministic EDM solver
        from diffusers import EDMDPMSolverMultistepScheduler
        scheduler = EDMDPMSolverMultistepScheduler(solver_order=2, prediction_type='v_prediction', sigma_data=1.0)
    tok = t5_tokenizer(32)
    torch.manual_seed(seed)
    transformer = StableAudioDiTModel(sample_size=128, in_channels=3, num_layers=2, attention_head_dim=4, num_key_value_attention_heads=2,
                                      out_channels=3, cross_attention_dim=4, time_proj_dim=8, global_states_input_dim=8, cross_attention_input_dim=4)
    vae = AutoencoderOobleck(encoder_hidden_size=6, downsampling_ratios=[2, 4], decoder_channels=3, decoder_input_channels=3, audio_channels=2,
                             channel_multiples=[2, 4], sampling_rate=1024)
    proj = StableAudioProjectionModel(text_encoder_dim=16, conditioning_dim=4, min_value=0, max_value=32)
    pipe = StableAudioPipeline(transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=tiny_t5_encoder(len(tok)), tokenizer=tok,
                               projection_model=proj)
    pipe.save_pretrained(str(save_dir))
    return pipe


@pytest.fixture(scope='module')
def a2_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('models') / 'tiny-audioldm2'
    tiny_audioldm2(d)
    return d


@pytest.fixture(scope='module')
def sa_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('models') / 'tiny-stable-audio'
    tiny_stable_audio(d)
    return d


def check_batch_equals_singles(pipe, kw, seeds=(11, 12, 13)):
    waves, sr = B.generate_batch(pipe, PROMPTS, list(seeds), **kw)
    for p, s, w in zip(PROMPTS, seeds, waves):
        one, sr1 = B.generate_batch(pipe, [p], [s], **kw)
        assert sr1 == sr and one[0].shape == w.shape
        assert torch.allclose(one[0], w, atol=1e-5), (p, float((one[0] - w).abs().max()))
    again, _ = B.generate_batch(pipe, PROMPTS[:1], [seeds[0]], **kw)
    other, _ = B.generate_batch(pipe, PROMPTS[:1], [seeds[0] + 1], **kw)
    assert torch.equal(again[0], waves[0]) or torch.allclose(again[0], waves[0], atol=1e-6)
    assert not torch.allclose(other[0], waves[0], atol=1e-4)       # the seed matters
    return waves, sr


# ---------------------------------------------------------------- AudioLDM2

def test_audioldm2_loads_from_folder(a2_dir):
    assert json.loads((a2_dir / 'model_index.json').read_text())['_class_name'] == 'AudioLDM2Pipeline'
    assert B.pipeline_class_name(a2_dir) == 'AudioLDM2Pipeline'
    pipe = B.load_pipeline(a2_dir, device='cpu')
    assert type(pipe).__name__ == 'AudioLDM2Pipeline' and pipe.unet.dtype == torch.float32
    assert B.pipeline_sample_rate(pipe) == 16000


def test_audioldm2_generate_batch(a2_dir):
    pipe = B.load_pipeline(a2_dir, device='cpu')
    kw = dict(steps=2, duration=0.5)
    assert len({len(t) for t in pipe.tokenizer_2(PROMPTS).input_ids}) >= 2     # the prompts pad differently in T5
    waves, sr = check_batch_equals_singles(pipe, kw)
    assert sr == 16000 and len(waves) == 3
    for w in waves:
        assert w.shape == (1, 8000) and w.dtype == torch.float32 and torch.isfinite(w).all()
        assert Q.quality_check(w) is None
    neg, _ = B.generate_batch(pipe, PROMPTS[:2], [11, 12], **kw, negative_prompt='static noise')
    assert [w.shape for w in neg] == [(1, 8000)] * 2 and all(torch.isfinite(w).all() for w in neg)
    assert not torch.allclose(neg[0], waves[0], atol=1e-4)             # the negative prompt is used


def test_audioldm2_generate_synthetic(a2_dir, tmp_path):
    pipe = B.load_pipeline(a2_dir, device='cpu')
    cfg = G.GenerationConfig(model=str(a2_dir), num_inference_steps=2, duration=0.5, batch_size=3, sample_rate=8000)
    s = G.generate_synthetic(tmp_path / 'o', {1: 2, 2: 1}, cfg, pipe=pipe, progress=False)
    assert s['present'] == {'1': 2, '2': 1} and s['missing'] == {}
    for f in s['files']:
        w, sr = sf.read(tmp_path / 'o' / f['file'])
        assert sr == 8000 and w.shape == (4000,) and np.isfinite(w).all() and np.abs(w).max() > 0
        assert f['raw_sample_rate'] == 16000


# ---------------------------------------------------------------- Stable Audio

def test_stable_audio_loads_from_folder(sa_dir):
    assert B.pipeline_class_name(sa_dir) == 'StableAudioPipeline'
    pipe = B.load_pipeline(sa_dir, device='cpu')
    assert type(pipe).__name__ == 'StableAudioPipeline' and pipe.transformer.dtype == torch.float32
    assert B.pipeline_sample_rate(pipe) == 1024
    expected = 'CosineDPMSolverMultistepScheduler' if HAS_TORCHSDE else 'EDMDPMSolverMultistepScheduler'
    assert type(pipe.scheduler).__name__ == expected


def test_stable_audio_generate_batch(sa_dir):
    pipe = B.load_pipeline(sa_dir, device='cpu')
    kw = dict(steps=3, duration=0.5)
    waves, sr = check_batch_equals_singles(pipe, kw)
    assert sr == 1024 and len(waves) == 3
    for w in waves:
        assert w.shape == (2, 512) and w.dtype == torch.float32 and torch.isfinite(w).all()   # stereo, audio_end_in_s honoured
    neg, _ = B.generate_batch(pipe, PROMPTS[:2], [11, 12], **kw, negative_prompt='static noise')
    assert [w.shape for w in neg] == [(2, 512)] * 2 and all(torch.isfinite(w).all() for w in neg)
    assert not torch.allclose(neg[0], waves[0], atol=1e-4)
    long, _ = B.generate_batch(pipe, PROMPTS[:1], [11], steps=3, duration=0.75)
    assert long[0].shape == (2, 768)


def test_stable_audio_generate_synthetic_is_mono(sa_dir, tmp_path):
    pipe = B.load_pipeline(sa_dir, device='cpu')
    cfg = G.GenerationConfig(model=str(sa_dir), num_inference_steps=2, duration=0.5, batch_size=2, sample_rate=4000)
    s = G.generate_synthetic(tmp_path / 'o', {3: 3}, cfg, pipe=pipe, progress=False)
    assert s['present'] == {'3': 3} and s['missing'] == {}
    for f in s['files']:
        w, sr = sf.read(tmp_path / 'o' / f['file'])
        assert sr == 4000 and w.shape == (2000,) and np.isfinite(w).all() and np.abs(w).max() > 0   # stereo -> mono, resampled
        assert f['raw_sample_rate'] == 1024


@pytest.mark.skipif(HAS_TORCHSDE, reason='torchsde is installed, so the real scheduler loads')
def test_stable_audio_without_torchsde_names_the_missing_package(tmp_path):
    d = tmp_path / 'sa'
    d.mkdir()
    (d / 'model_index.json').write_text(json.dumps({'_class_name': 'StableAudioPipeline',
                                                    'scheduler': ['diffusers', 'CosineDPMSolverMultistepScheduler']}))
    (d / 'scheduler').mkdir()
    (d / 'scheduler' / 'scheduler_config.json').write_text(json.dumps({'_class_name': 'CosineDPMSolverMultistepScheduler'}))
    with pytest.raises(B.GenerateError, match='torchsde'):
        B.load_pipeline(d, device='cpu')
