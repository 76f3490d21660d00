"""Model zoo: every model forward/backward at a small size, pretrained loading, checkpoints and their errors, ONNX export."""
import numpy as np
import pytest
import torch

from audiokit.core import ConfigError, ModelConfig
from audiokit.models import (MODELS, CheckpointError, CheckpointMismatchError, ModelError, build_model,
                             fuse_for_inference, load_checkpoint, logits_to_proba, save_checkpoint, state_signature)

TINY_AST = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, patch_size=16,
                frequency_stride=16, time_stride=16)
SLOW = {'resnet50', 'efficientnet_b3', 'inception_v3'}


import audiokit.respiratory_models  # noqa: E402  (registers add_rsc, ast_patchmix)
# the zoo: models built from the input shape alone (finetune's encoder_classifier needs an encoder: tests/test_finetune.py)
ZOO = [n for n in MODELS.names() if MODELS[n].__module__ in ('audiokit.models', 'audiokit.respiratory_models')]


def _kw(name):
    return TINY_AST if name in ('ast', 'ast_patchmix', 'add_rsc') else None


@pytest.mark.parametrize('name,multi_label', [(n, False) for n in ZOO] + [(n, True) for n in ('cnn', 'crnn', 'lstm_attention', 'resnet18', 'ast')])
def test_forward_backward(name, multi_label):
    torch.manual_seed(0)
    cfg = ModelConfig(name=name, num_classes=3, multi_label=multi_label, width=8)
    m = build_model(cfg, (1, 64, 48), _kw(name))
    x = torch.randn(2, 1, 64, 48)
    logits = m(x)
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    y = torch.tensor([[1., 0, 1], [0, 1, 0]]) if multi_label else torch.tensor([0, 2])
    loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits, y) if multi_label
            else torch.nn.functional.cross_entropy(logits, y))
    if hasattr(m, 'aux_loss'): loss = loss + m.aux_loss(y)   # as train.fit does (respiratory_models)
    loss.backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert m.arch['name'] == name and m.arch['multi_label'] == multi_label
    p = logits_to_proba(logits.detach(), multi_label)
    assert ((p >= 0) & (p <= 1)).all()
    if not multi_label: assert torch.allclose(p.sum(1), torch.ones(2))


@pytest.mark.parametrize('name', ['cnn', 'crnn', 'lstm_attention', 'resnet18'])
def test_frame_level_features(name):
    m = build_model(ModelConfig(name=name, num_classes=4, width=8), (50, 40)).eval()
    assert m(torch.randn(3, 50, 40)).shape == (3, 4)


def test_lstm_wrong_feature_dim_is_clear():
    m = build_model(ModelConfig(name='lstm_attention', num_classes=2, width=8), (50, 40))
    with pytest.raises(ModelError, match='built for 40 features'): m(torch.randn(2, 50, 64))


def test_bad_config_errors():
    with pytest.raises(ConfigError, match="unknown model 'nope'"): build_model(ModelConfig(name='nope'))
    with pytest.raises(ConfigError, match='channel'): build_model(ModelConfig(in_channels=1), (3, 64, 64))
    with pytest.raises(ModelError, match='model_kwargs'): build_model(ModelConfig(name='crnn'), (1, 64, 48), {'bogus': 1})


def test_three_channel_input():
    m = build_model(ModelConfig(name='efficientnet_b0', num_classes=2, in_channels=3), (3, 64, 64))
    assert m(torch.randn(2, 3, 64, 64)).shape == (2, 2)


def test_pretrained_local_file_resnet(tmp_path):
    import torchvision
    ref = torchvision.models.resnet18(weights=None)
    torch.save(ref.state_dict(), tmp_path / 'w.pt')
    m = build_model(ModelConfig(name='resnet18', num_classes=3, pretrained=str(tmp_path / 'w.pt')), (1, 32, 32))
    assert torch.equal(m.net.layer3[0].conv1.weight, ref.layer3[0].conv1.weight)
    assert torch.allclose(m.net.conv1.weight, ref.conv1.weight.sum(1, keepdim=True))
    # a 1-channel model on a grey image = the RGB model on that image copied to 3 channels (up to the head)
    m.eval(); ref.eval()
    x = torch.randn(1, 1, 32, 32)
    feat = lambda net, z: torch.nn.Sequential(*list(net.children())[:-1])(z)
    assert torch.allclose(feat(m.net, x), feat(ref, x.repeat(1, 3, 1, 1)), atol=1e-4)


def test_pretrained_safetensors_efficientnet(tmp_path):
    import torchvision
    from safetensors.torch import save_file
    ref = torchvision.models.efficientnet_b0(weights=None)
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(tmp_path / 'w.safetensors'))
    m = build_model(ModelConfig(name='efficientnet_b0', num_classes=2, pretrained=str(tmp_path / 'w.safetensors')), (1, 32, 32))
    assert torch.equal(m.net.features[3][0].block[0][0].weight, ref.features[3][0].block[0][0].weight)
    assert set(m.pretrained_report['skipped']) == {'classifier.1.weight', 'classifier.1.bias'}


def test_pretrained_errors(tmp_path):
    torch.save({'fc.weight': torch.zeros(2, 2)}, tmp_path / 'partial.pt')
    with pytest.raises(ModelError, match='do not fit resnet18'):
        build_model(ModelConfig(name='resnet18', pretrained=str(tmp_path / 'partial.pt')))
    (tmp_path / 'junk.pt').write_bytes(b'not a torch file')
    with pytest.raises(ModelError, match='cannot read weights'):
        build_model(ModelConfig(name='resnet18', pretrained=str(tmp_path / 'junk.pt')))
    with pytest.raises(ModelError, match='neither an existing weights file'):
        build_model(ModelConfig(name='resnet18', pretrained='no/such/file.pt'))


def test_own_model_pretrained_strict(tmp_path):
    cfg = ModelConfig(name='cnn', num_classes=3, width=8)
    a = build_model(cfg, (1, 32, 32))
    torch.save(a.state_dict(), tmp_path / 'cnn.pt')
    b = build_model(cfg.replace(pretrained=str(tmp_path / 'cnn.pt')), (1, 32, 32))
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    with pytest.raises(ModelError, match='do not fit cnn'):
        build_model(cfg.replace(width=16, pretrained=str(tmp_path / 'cnn.pt')), (1, 32, 32))


def test_ast_local_checkpoint_dir(tmp_path):
    m = build_model(ModelConfig(name='ast', num_classes=5), (1, 64, 48), TINY_AST)
    m.ast.save_pretrained(tmp_path / 'ast')
    m2 = build_model(ModelConfig(name='ast', num_classes=5, pretrained=str(tmp_path / 'ast')), (1, 64, 48))
    m.eval(); m2.eval()
    x = torch.randn(2, 1, 64, 40)   # fewer frames than max_length: zero-padded
    assert torch.allclose(m(x), m2(x), atol=1e-6)
    m3 = build_model(ModelConfig(name='ast', num_classes=2, pretrained=str(tmp_path / 'ast')), (1, 64, 48))
    assert m3(x).shape == (2, 2)   # new head for another class count
    with pytest.raises(ModelError, match='cannot load an AST checkpoint'):
        build_model(ModelConfig(name='ast', num_classes=2, pretrained=str(tmp_path / 'missing_dir')), (1, 64, 48))


CLASSES = ['normal', 'crackle', 'wheeze', 'both']


@pytest.mark.parametrize('name', ['cnn', 'crnn', 'lstm_attention', 'resnet18', 'ast'])
def test_checkpoint_round_trip(tmp_path, name):
    cfg = ModelConfig(name=name, num_classes=4, width=8)
    m = build_model(cfg, (1, 64, 48), _kw(name)).eval()
    save_checkpoint(tmp_path / 'c.pt', m, cfg, CLASSES, extra={'epoch': 2, 'opt': {'lr': torch.tensor(0.1)}})
    ck = load_checkpoint(tmp_path / 'c.pt', expected_cfg=cfg, expected_classes=CLASSES)
    x = torch.randn(2, 1, 64, 48)
    assert torch.equal(ck.model(x), m(x)) and ck.extra['epoch'] == 2 and ck.classes == CLASSES
    assert state_signature(ck.model) == state_signature(m) and ck.config == cfg


def test_checkpoint_mismatches(tmp_path):
    cfg = ModelConfig(name='cnn', num_classes=4, width=8)
    m = build_model(cfg, (1, 64, 48))
    p = save_checkpoint(tmp_path / 'c.pt', m, cfg, CLASSES)
    with pytest.raises(CheckpointMismatchError, match="name: checkpoint 'cnn', expected 'resnet18'"):
        load_checkpoint(p, expected_cfg=cfg.replace(name='resnet18'))
    with pytest.raises(CheckpointMismatchError, match='num_classes'):
        load_checkpoint(p, expected_cfg=cfg.replace(num_classes=2))
    with pytest.raises(CheckpointMismatchError, match='width'):
        load_checkpoint(p, expected_cfg=cfg.replace(width=16))
    with pytest.raises(CheckpointMismatchError, match=r"lacks \['abnormal'\]"):
        load_checkpoint(p, expected_classes=['normal', 'abnormal'])
    with pytest.raises(CheckpointMismatchError, match='another order'):
        load_checkpoint(p, expected_classes=CLASSES[::-1])
    with pytest.raises(CheckpointMismatchError, match='input_shape'):
        load_checkpoint(p, expected_input_shape=(1, 128, 157))
    # dropout is not architecture: loads fine
    assert load_checkpoint(p, expected_cfg=cfg.replace(dropout=0.5)).model is not None


def test_checkpoint_save_checks(tmp_path):
    cfg = ModelConfig(name='cnn', num_classes=4, width=8)
    m = build_model(cfg, (1, 64, 48))
    with pytest.raises(CheckpointError, match='3 class names'): save_checkpoint(tmp_path / 'c.pt', m, cfg, CLASSES[:3])
    with pytest.raises(CheckpointError, match='width=8'): save_checkpoint(tmp_path / 'c.pt', m, cfg.replace(width=16), CLASSES)
    save_checkpoint(tmp_path / 'c.pt', m, cfg, CLASSES)
    from audiokit.core import ResultExistsError
    with pytest.raises(ResultExistsError): save_checkpoint(tmp_path / 'c.pt', m, cfg, CLASSES, overwrite=False)


def test_corrupt_checkpoints(tmp_path):
    cfg = ModelConfig(name='cnn', num_classes=4, width=8)
    p = save_checkpoint(tmp_path / 'c.pt', build_model(cfg, (1, 64, 48)), cfg, CLASSES)
    data = p.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 20):
        (tmp_path / 't.pt').write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match='corrupt'): load_checkpoint(tmp_path / 't.pt')
    at = data.index(b'model_config')      # inside the pickled header (flipping weight bytes is not detectable)
    flipped = bytearray(data); flipped[at:at + 64] = b'\xff' * 64
    (tmp_path / 'f.pt').write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError): load_checkpoint(tmp_path / 'f.pt')
    (tmp_path / 'e.pt').write_bytes(b'')
    with pytest.raises(CheckpointError, match='empty'): load_checkpoint(tmp_path / 'e.pt')
    with pytest.raises(CheckpointError, match='not found'): load_checkpoint(tmp_path / 'none.pt')
    torch.save({'a': torch.zeros(1)}, tmp_path / 'sd.pt')
    with pytest.raises(CheckpointError, match='not an audiokit checkpoint'): load_checkpoint(tmp_path / 'sd.pt')


def test_checkpoint_tampered_weights(tmp_path):
    cfg = ModelConfig(name='cnn', num_classes=4, width=8)
    p = save_checkpoint(tmp_path / 'c.pt', build_model(cfg, (1, 64, 48)), cfg, CLASSES)
    ck = torch.load(p, weights_only=True)
    ck['model_config']['width'] = 16; ck['arch']['width'] = 16      # config says another architecture than the weights
    torch.save(ck, tmp_path / 'x.pt')
    with pytest.raises(CheckpointMismatchError, match='another architecture'): load_checkpoint(tmp_path / 'x.pt')


def test_fuse_matches_eager():
    m = build_model(ModelConfig(num_classes=5, width=8), (1, 64, 47)).eval()
    for bn in (l for l in m.modules() if isinstance(l, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-1, 1); bn.running_var.uniform_(0.5, 2)
    x = torch.randn(3, 1, 64, 47)
    with torch.no_grad():
        assert torch.allclose(fuse_for_inference(m)(x), m(x), atol=1e-4)
    # export of the whole waveform -> probabilities module: tests/test_clipmodel.py


def test_registry_and_model_kwargs_from_config():
    from audiokit.core import MODELS as CORE_MODELS
    assert MODELS is CORE_MODELS and 'cnn' in MODELS
    m = build_model(ModelConfig(name='crnn', num_classes=2, width=4, model_kwargs={'freq_bins': 2}), (1, 32, 16))
    assert m.arch['model_kwargs'] == {'freq_bins': 2} and m.freq_pool.output_size == (2, None)


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(SLOW))
def test_big_models_at_real_size(name):
    m = build_model(ModelConfig(name=name, num_classes=10), (1, 128, 157))
    out = m(torch.randn(2, 1, 128, 157))
    out.sum().backward()
    assert out.shape == (2, 10)


def test_ast_refuses_settings_it_does_not_have():
    with pytest.raises(ModelError, match=r"no setting\(s\) \['patch_mix'\]"):
        build_model(ModelConfig(name='ast', num_classes=2), (1, 64, 48), {**TINY_AST, 'patch_mix': True})


def test_ast_hub_id_is_read_offline(tmp_path, monkeypatch):
    monkeypatch.setenv('HF_HOME', str(tmp_path / 'empty_hf_home'))   # nothing cached: the id must not be fetched
    with pytest.raises(ModelError, match='cannot load an AST checkpoint'):
        build_model(ModelConfig(name='ast', num_classes=2, pretrained='MIT/ast-finetuned-audioset-10-10-0.4593'), (1, 64, 48))

