"""Generated datasets: the speech fixture (lengths, speakers x classes, determinism, refusals) and the command-line path
it feeds (`audiokit analyze DATA.csv --format csv --group-col speaker`)."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audiokit.core import ConfigError, ResultExistsError
from audiokit.datasets import load_dataset
from audiokit.fixtures import EMOTIONS, SPEECH_CLASSES, make_speech_fixture


def test_speech_fixture_layout_and_lengths(tmp_path):
    csv = make_speech_fixture(tmp_path / 's', speakers=4, per_class=2, classes=('neutral', 'sad', 'angry'), min_s=1.0, max_s=6.0)
    df = pd.read_csv(csv)
    assert list(df.columns[:3]) == ['path', 'label', 'speaker'] and len(df) == 4 * 3 * 2
    assert (df.groupby(['speaker', 'label']).size() == 2).all() and set(df['gender']) == {'m', 'f'}
    for rel, dur in zip(df['path'], df['duration']):
        info = sf.info(str(csv.parent / rel))
        assert info.samplerate == 16000 and abs(info.duration - dur) < 1e-3 and 1.0 <= info.duration <= 6.0
    r = load_dataset(csv, 'csv', group_col='speaker')
    assert len(r.dropped) == 0 and r.manifest['group'].nunique() == 4 and r.labels.classes == ('angry', 'neutral', 'sad')


def test_speech_fixture_is_deterministic_and_refuses_to_overwrite(tmp_path):
    a = make_speech_fixture(tmp_path / 'a', speakers=2, per_class=1, seed=3)
    b = make_speech_fixture(tmp_path / 'b', speakers=2, per_class=1, seed=3)
    c = make_speech_fixture(tmp_path / 'c', speakers=2, per_class=1, seed=4)
    da, db, dc = (pd.read_csv(p) for p in (a, b, c))
    assert da.equals(db) and not da['duration'].equals(dc['duration'])
    for rel in da['path']: assert (a.parent / rel).read_bytes() == (b.parent / rel).read_bytes()
    with pytest.raises(ResultExistsError, match='overwrite=True'): make_speech_fixture(tmp_path / 'a', speakers=2, per_class=1, seed=3)
    assert make_speech_fixture(tmp_path / 'a', speakers=2, per_class=1, seed=3, overwrite=True) == a


@pytest.mark.parametrize('kw, match', [
    ({'classes': ('neutral', 'bored')}, "unknown speech class(es) ['bored']"),
    ({'classes': ('sad',)}, 'at least 2 distinct classes'),
    ({'min_s': 3.0, 'max_s': 2.0}, 'min_s <= max_s'),
    ({'speakers': 1}, 'speakers >= 2'),
    ({'sample_rate': 4000}, 'below 8000'),
])
def test_speech_fixture_refuses_bad_settings(tmp_path, kw, match):
    with pytest.raises(ConfigError, match=match.replace('(', r'\(').replace(')', r'\)').replace('[', r'\[').replace(']', r'\]')):
        make_speech_fixture(tmp_path, **kw)


def test_every_speech_class_has_a_voice():
    assert set(SPEECH_CLASSES) <= set(EMOTIONS)
    assert len({v['f0'] for v in EMOTIONS.values()}) == len(EMOTIONS)


def test_analyze_cli_on_the_speech_csv_groups_by_speaker(tmp_path):
    csv = make_speech_fixture(tmp_path / 's', speakers=4, per_class=2)
    out = tmp_path / 'analysis'
    r = subprocess.run([sys.executable, '-m', 'audiokit.cli', 'analyze', str(csv), '--format', 'csv', '--group-col', 'speaker',
                        '--out', str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / 'analysis.json').read_text())
    assert summary['build']['groups'] == 4 and summary['build']['rows'] == 4 * 4 * 2 and summary['build']['dropped'] == 0
