"Respiratory models (`ast_patchmix`, `add_rsc`): shapes, auxiliary losses, the fit protocol, checkpoints."
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset

import audiokit.respiratory_models as rm
from audiokit.core import ModelConfig, TrainConfig
from audiokit.models import ModelError, build_model, load_checkpoint, save_checkpoint
from audiokit.train import fit

TINY = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, patch_size=8, frequency_stride=8, time_stride=8)


@pytest.mark.parametrize('name,extra', [('ast_patchmix', {}), ('add_rsc', {}), ('add_rsc', {'patch_mix': True, 'pooling': 'mean'})])
@pytest.mark.parametrize('frames', [16, 48, 130])
def test_shapes_and_aux(name, extra, frames):
    torch.manual_seed(0)
    m = build_model(ModelConfig(name=name, num_classes=3), (1, 32, 48), {**TINY, **extra})
    x = torch.randn(4, 1, 32, frames)
    assert m.eval()(x).shape == (4, 3)
    m.train()
    logits = m(x)
    aux = m.aux_loss(torch.tensor([0, 1, 2, 0]))
    assert torch.isfinite(aux) and aux.dim() == 0
    (logits.sum() + aux).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_aux_needs_training_forward():
    m = build_model(ModelConfig(name='add_rsc', num_classes=2), (1, 32, 48), TINY)
    with pytest.raises(ModelError, match='training-mode forward'): m.aux_loss(torch.zeros(2, dtype=torch.long))
    m.eval()(torch.randn(2, 1, 32, 48))
    with pytest.raises(ModelError, match='training-mode forward'): m.aux_loss(torch.zeros(2, dtype=torch.long))


def test_multilabel_and_soft_targets():
    m = build_model(ModelConfig(name='add_rsc', num_classes=3, multi_label=True), (1, 32, 48), {**TINY, 'patch_mix': True}).train()
    m(torch.randn(4, 1, 32, 48))
    assert torch.isfinite(m.aux_loss(torch.tensor([[1., 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]])))
    lg = torch.randn(5, 4); soft = torch.softmax(torch.randn(5, 4), -1)
    assert torch.isfinite(rm.bias_denoise_loss(lg, soft))
    assert torch.allclose(rm.bias_denoise_loss(lg, torch.arange(4).repeat(2)[:5], 0.1), F.cross_entropy(lg, torch.arange(4).repeat(2)[:5], label_smoothing=0.1), atol=1e-6)


def test_bad_kwargs_refused():
    for kw, match in [({'hiden_size': 8}, 'hiden_size'), ({'pooling': 'max'}, 'pooling'), ({'ddl_heads': 3}, 'ddl_heads'),
                      ({'aff_blocks': 5}, 'aff_blocks'), ({'smoothing': 1.0}, 'smoothing'), ({'denoise': False}, 'always has its denoiser')]:
        with pytest.raises(ModelError, match=match): build_model(ModelConfig(name='add_rsc'), (1, 32, 48), {**TINY, **kw})
    with pytest.raises(ModelError, match='always uses Patch-Mix'):
        build_model(ModelConfig(name='ast_patchmix'), (1, 32, 48), {**TINY, 'patch_mix': False})
    with pytest.raises(ModelError, match='cannot load an AST checkpoint'):
        build_model(ModelConfig(name='add_rsc', pretrained='/no/such/folder'), (1, 32, 48))


def test_patch_mix_keeps_lam_share():
    torch.manual_seed(1)
    tok = torch.arange(8.0).view(8, 1, 1).expand(8, 20, 2).clone()
    mixed, index, lam = rm.patch_mix(tok, beta=1.0)
    for i in range(8):
        assert set(mixed[i, :, 0].tolist()) <= {float(i), float(index[i])}
        if index[i] != i: assert abs((mixed[i, :, 0] == i).float().mean().item() - lam) < 1e-6


def test_pretrained_folder_and_position_interpolation(tmp_path):
    ref = build_model(ModelConfig(name='ast', num_classes=3), (1, 32, 48), TINY).eval()
    ref.ast.save_pretrained(tmp_path / 'ast')
    m = build_model(ModelConfig(name='ast_patchmix', num_classes=3, pretrained=str(tmp_path / 'ast')), (1, 32, 48)).eval()
    x = torch.randn(2, 1, 32, 48)
    with torch.no_grad():
        assert torch.allclose(m(x), ref(x), atol=1e-5)
        pe = m.position_embeddings((4, 12))
    assert pe.shape == (1, 4 * 12 + 2, 16) and torch.equal(pe[:, :2], m.position_embeddings(m.grid)[:, :2])


def test_checkpoint_round_trip(tmp_path):
    cfg = ModelConfig(name='add_rsc', num_classes=4, model_kwargs={**TINY, 'patch_mix': True, 'ddl_layers': 2})
    m = build_model(cfg, (1, 32, 48)).eval()
    save_checkpoint(tmp_path / 'm.pt', m, cfg, list('abcd'))
    ck = load_checkpoint(tmp_path / 'm.pt', expected_cfg=cfg, expected_classes=list('abcd'))
    x = torch.randn(3, 1, 32, 48)
    with torch.no_grad(): assert torch.equal(ck.model(x), m(x))


def _bands(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = 0.5 * torch.randn(n, 1, 32, 32, generator=g)
    for i, c in enumerate(y.tolist()): x[i, :, 4 + 16 * c: 12 + 16 * c] += 1.5
    return TensorDataset(x, y)


def test_fit_uses_aux_loss_and_learns(tmp_path):
    torch.manual_seed(0)
    m = build_model(ModelConfig(name='add_rsc', num_classes=2, dropout=0.0), (1, 32, 32), {**TINY, 'patch_mix': True})
    calls = []
    orig = m.aux_loss
    m.aux_loss = lambda y: (calls.append(1), orig(y))[1]
    cfg = TrainConfig(epochs=4, batch_size=16, lr=3e-3, early_stopping_metric='accuracy', patience=10)
    acc = lambda t, p, c, ml: {'accuracy': float((p.argmax(1) == t).mean())}
    res = fit(m, _bands(64, 0), _bands(32, 1), ['a', 'b'], cfg, tmp_path, metric_fn=acc, progress=False)
    assert len(calls) == 4 * 4
    losses = [h['train_loss'] for h in res['history']]
    assert losses[-1] < losses[0] and res['best_score'] > 0.6


def test_fit_unchanged_without_aux(tmp_path):
    "A model without aux_loss trains exactly as before; one whose aux term is a constant gets the same weights."
    class Const(nn.Module):
        def __init__(self, m): super().__init__(); self.m = m
        def forward(self, x): return self.m(x)
        def aux_loss(self, y): return torch.tensor(0.25)
    def net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 2))
    cfg = TrainConfig(epochs=2, batch_size=16, lr=1e-2, early_stopping_metric='accuracy', patience=10)
    acc = lambda t, p, c, ml: {'accuracy': float((p.argmax(1) == t).mean())}
    a, b = net(), Const(net())
    ra = fit(a, _bands(48, 0), _bands(16, 1), ['a', 'b'], cfg, tmp_path / 'a', metric_fn=acc, progress=False)
    rb = fit(b, _bands(48, 0), _bands(16, 1), ['a', 'b'], cfg, tmp_path / 'b', metric_fn=acc, progress=False)
    assert all(abs(y['train_loss'] - x['train_loss'] - 0.25) < 1e-6 for x, y in zip(ra['history'], rb['history']))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.m.state_dict().values()))
