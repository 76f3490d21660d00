"""Feature cache: reuse, invalidation, concurrent fills, corruption, and the training dataset."""
import json
import multiprocessing as mp
import os
import time

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from audiokit.cache import CacheError, FeatureDataset, build_cache, cache_index, cache_key, check_entry, clear_cache
from audiokit.core import AudioConfig, FeatureConfig
from audiokit.labels import LabelSpace

AB = LabelSpace(classes=('a', 'b'))

SR = 8000
ACFG = AudioConfig(sample_rate=SR, duration=0.5)
FCFG = FeatureConfig(kind='logmel', n_fft=256, hop_length=128, n_mels=32)


def make_manifest(folder, n=10, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        p = folder / f'c{i:02d}.wav'
        sf.write(p, (0.2 * rng.standard_normal(SR // 2)).astype('float32'), SR)
        rows.append({'path': str(p), 'start': np.nan, 'end': np.nan, 'label': 'ab'[i % 2], 'group': f'g{i}', 'subdb': 'all', 'fold': -1, 'subset': ''})
    return pd.DataFrame(rows)


def test_reuse_and_recompute_on_config_change(tmp_path):
    man = make_manifest(tmp_path)
    a = build_cache(man, ACFG, FCFG, tmp_path / 'c', progress=False)
    b = build_cache(man, ACFG, FCFG, tmp_path / 'c', progress=False)
    assert (a.status, b.status) == ('built', 'hit') and a.key == b.key
    mtime = a.npy_path.stat().st_mtime_ns
    assert build_cache(man, ACFG, FCFG, tmp_path / 'c', progress=False).npy_path.stat().st_mtime_ns == mtime   # not rewritten
    for acfg, fcfg in [(ACFG.replace(sample_rate=16000), FCFG), (ACFG, FCFG.replace(hop_length=64)), (ACFG, FCFG.replace(kind='mfcc')),
                       (ACFG.replace(normalize='peak'), FCFG)]:
        e = build_cache(man, acfg, fcfg, tmp_path / 'c', progress=False)
        assert e.status == 'built' and e.key != a.key
    # row order, segments and the row set are part of the key
    assert cache_key(man.iloc[::-1], ACFG, FCFG) != a.key
    assert cache_key(man.assign(start=0.0, end=0.25), ACFG, FCFG) != a.key
    assert cache_key(man.head(5), ACFG, FCFG) != a.key
    assert cache_key(man.assign(label='z', group='q'), ACFG, FCFG) == a.key
    assert len(cache_index(tmp_path / 'c')) == 5


def test_changed_file_invalidates(tmp_path):
    man = make_manifest(tmp_path)
    a = build_cache(man, ACFG, FCFG, tmp_path / 'c', progress=False)
    y, _ = sf.read(man.path[3], dtype='float32')
    sf.write(man.path[3], y[::-1].copy(), SR)                            # same size, new content and mtime
    b = build_cache(man, ACFG, FCFG, tmp_path / 'c', progress=False)
    assert b.status == 'built' and b.key != a.key
    assert not np.allclose(a[3], b[3]) and np.allclose(a[2], b[2])
    # content fingerprints ignore a touch that changes nothing
    c = build_cache(man, ACFG, FCFG, tmp_path / 'c', content=True, progress=False)
    os.utime(man.path[0], ns=(time.time_ns(), time.time_ns() + 10**9))
    assert build_cache(man, ACFG, FCFG, tmp_path / 'c', content=True, progress=False).status == 'hit'
    assert cache_key(man, ACFG, FCFG) != b.key                          # but mtime keys do change


def _fill_worker(args):
    man_csv, cache_dir = args
    man = pd.read_csv(man_csv)
    e = build_cache(man, ACFG, FCFG, cache_dir, progress=False, workers=1)
    return e.status, e.key, np.asarray(e.features).tolist()


def test_two_processes_fill_at_once(tmp_path):
    man = make_manifest(tmp_path, n=40)
    man.to_csv(tmp_path / 'man.csv', index=False)
    ctx = mp.get_context('spawn')
    with ctx.Pool(2) as pool:
        res = pool.map(_fill_worker, [(str(tmp_path / 'man.csv'), str(tmp_path / 'c'))] * 2)
    statuses = sorted(r[0] for r in res)
    assert statuses == ['built', 'hit'], statuses               # one filled it, the other waited and read it
    assert res[0][1] == res[1][1] and np.array_equal(np.array(res[0][2]), np.array(res[1][2]))
    key = res[0][1]
    names = sorted(p.name for p in (tmp_path / 'c').iterdir())
    assert f'{key}.npy' in names and f'{key}.json' in names and not [n for n in names if n.endswith('.tmp')]
    assert check_entry(tmp_path / 'c', key)[0] is not None
    assert len(cache_index(tmp_path / 'c')) == 1


@pytest.mark.parametrize('damage', ['flip', 'truncate', 'header', 'meta', 'no_meta', 'no_array'])
def test_corrupt_entry_is_detected_and_rebuilt(tmp_path, damage):
    man = make_manifest(tmp_path)
    a = build_cache(man, ACFG, FCFG, tmp_path / 'c', progress=False)
    good = np.array(a.features)
    npy, meta = a.npy_path, a.root / f'{a.key}.json'
    if damage == 'flip':
        with open(npy, 'r+b') as f: f.seek(-64, 2); f.write(bytes(32))
    elif damage == 'truncate': os.truncate(npy, npy.stat().st_size // 2)
    elif damage == 'header':
        with open(npy, 'r+b') as f: f.write(b'garbage!')
    elif damage == 'meta': meta.write_text('{not json')
    elif damage == 'no_meta': meta.unlink()
    elif damage == 'no_array': npy.unlink()
    assert check_entry(tmp_path / 'c', a.key)[0] is None
    b = build_cache(man, ACFG, FCFG, tmp_path / 'c', progress=False)
    assert b.status == 'rebuilt' and b.key == a.key and np.array_equal(np.asarray(b.features), good)
    assert check_entry(tmp_path / 'c', a.key)[0] is not None


def test_errors_name_file_and_row(tmp_path):
    man = make_manifest(tmp_path, n=4)
    (tmp_path / 'bad.wav').write_bytes(b'RIFFxxxxWAVEjunk' * 8)
    bad = man.copy(); bad.loc[2, 'path'] = str(tmp_path / 'bad.wav')
    with pytest.raises(CacheError, match=r'bad.wav row 2: cannot load'):
        build_cache(bad, ACFG, FCFG, tmp_path / 'c', progress=False)
    assert not list((tmp_path / 'c').glob('*.npy')) and not list((tmp_path / 'c').glob('.*tmp'))
    with pytest.raises(CacheError, match='no rows'):
        build_cache(man.head(0), ACFG, FCFG, tmp_path / 'c')
    assert clear_cache(tmp_path / 'c') == 0
    build_cache(man, ACFG, FCFG, tmp_path / 'c', progress=False)
    assert clear_cache(tmp_path / 'c') == 1 and not list((tmp_path / 'c').glob('*.npy')) and len(cache_index(tmp_path / 'c')) == 0


def test_dataset_cached_equals_on_the_fly_and_is_reproducible(tmp_path):
    man = make_manifest(tmp_path, n=6)
    for norm in ('none', 'example', 'dataset'):
        f = FCFG.replace(normalize=norm)
        cached = FeatureDataset(man, AB, ACFG, f, cache_dir=tmp_path / 'c', window=32, crop='center')
        fly = FeatureDataset(man, AB, ACFG, f, window=32, crop='center')
        assert cached.use_cache and not fly.use_cache
        for i in range(len(man)):
            (x1, y1), (x2, y2) = cached[i], fly[i]
            assert x1.dtype == torch.float32 and x1.shape == (1, 32, 32) and torch.allclose(x1, x2, atol=1e-3) and y1 == y2 == 'ab'.index(man.label[i])

    def noise(w, generator=None): return w + 0.01 * torch.randn(w.shape, generator=generator)
    ds = FeatureDataset(man, AB, ACFG, FCFG, cache_dir=tmp_path / 'c', window=32, wave_transform=noise, seed=3)
    ds2 = FeatureDataset(man, AB, ACFG, FCFG, window=32, wave_transform=noise, seed=3)
    assert not ds.use_cache and torch.equal(ds[2][0], ds2[2][0])             # same seed, same epoch: same example
    e0 = ds[2][0]; ds.set_epoch(1)
    assert not torch.equal(ds[2][0], e0)                                     # next epoch: new draw
    assert not torch.equal(FeatureDataset(man, AB, ACFG, FCFG, window=32, wave_transform=noise, seed=4)[2][0], e0)


def test_dataset_random_crop_is_not_cached(tmp_path):
    man = make_manifest(tmp_path, n=3)
    ds = FeatureDataset(man, AB, ACFG.replace(duration=0.25, length_policy='random_crop'), FCFG, cache_dir=tmp_path / 'c', window=16)
    assert not ds.use_cache and ds[0][0].shape == (1, 32, 16)


def test_clips_of_any_length_share_an_entry_and_crop_to_windows(tmp_path):
    # clips of different lengths used to be refused ("need AudioConfig.duration") or crash the collate function
    rng = np.random.default_rng(1)
    rows = []
    for i, sec in enumerate([0.1, 0.4, 1.3, 2.0]):
        p = tmp_path / f'v{i}.wav'; sf.write(p, (0.2 * rng.standard_normal(int(sec * SR))).astype('float32'), SR)
        rows.append({'path': str(p), 'label': 'ab'[i % 2], 'group': f'g{i}'})
    man = pd.DataFrame(rows)
    ds = FeatureDataset(man, AB, AudioConfig(sample_rate=SR), FCFG, cache_dir=tmp_path / 'c', window=10)
    assert ds.lengths() == [1 + max(int(s * SR), 256) // 128 for s in (0.1, 0.4, 1.3, 2.0)]
    xb, yb = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert xb.shape == (4, 1, 32, 10)
    whole = FeatureDataset(man, AB, AudioConfig(sample_rate=SR), FCFG, cache_dir=tmp_path / 'c')
    assert [whole[i][0].shape[-1] for i in range(4)] == ds.lengths() and whole.entry.key == ds.entry.key


def test_multilabel_targets(tmp_path):
    man = make_manifest(tmp_path, n=4).assign(label_a=[1, 0, 1, 0], label_b=[1, 1, 0, 0])
    man['label'] = ['a+b', 'b', 'a', 'none']
    ds = FeatureDataset(man, LabelSpace.from_manifest(man), ACFG, FCFG, cache_dir=tmp_path / 'c')
    assert [ds[i][1].tolist() for i in range(4)] == [[1, 1], [0, 1], [1, 0], [0, 0]] and ds[0][1].dtype == torch.float32


def test_cli_build_list_clear(tmp_path):
    import subprocess, sys
    from audiokit.spec import RunSpec
    man = make_manifest(tmp_path, n=3)
    man.to_csv(tmp_path / 'man.csv', index=False)
    RunSpec(audio=ACFG, features=FCFG).save(tmp_path / 'exp.yaml')
    run = lambda *a: subprocess.run([sys.executable, '-m', 'audiokit.cli', 'cache', *a], capture_output=True, text=True)
    r = run('build', str(tmp_path / 'man.csv'), '--cache', str(tmp_path / 'c'), '--config', str(tmp_path / 'exp.yaml'))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out['status'] == 'built' and out['rows'] == 3 and out['shape'] == [1, 32]
    assert out['key'] == build_cache(man, ACFG, FCFG, tmp_path / 'c', progress=False).key   # the same entry as the API
    r2 = run('build', str(tmp_path / 'man.csv'), '--cache', str(tmp_path / 'c'), '--config', str(tmp_path / 'exp.yaml'))
    assert json.loads(r2.stdout.strip().splitlines()[-1])['status'] == 'hit'
    assert out['key'] in run('list', '--cache', str(tmp_path / 'c')).stdout
    assert 'removed 1' in run('clear', '--cache', str(tmp_path / 'c')).stdout
    bad = run('build', '--cache', str(tmp_path / 'c'))
    assert bad.returncode == 1 and 'needs a MANIFEST' in bad.stderr


def test_dataset_pickles_without_the_array(tmp_path):
    import pickle
    man = make_manifest(tmp_path, n=4)
    ds = FeatureDataset(man, AB, ACFG, FCFG, cache_dir=tmp_path / 'c')
    x = ds[1][0]
    blob = pickle.dumps(ds)
    assert len(blob) < 200_000 and torch.equal(pickle.loads(blob)[1][0], x)
