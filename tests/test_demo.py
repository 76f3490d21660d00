"""The main job's data and exit status: the demo manifest written from a relative output folder reads from any
working directory (on a fresh clone it used to resolve paths against the cwd), and `audiokit demo` prints where
its report is and exits 1 when a run failed."""
import os
from pathlib import Path

import pandas as pd

import audiokit.demo
from audiokit.cli import main
from audiokit.demo import demo_data
from audiokit.manifest import read_manifest


def test_demo_manifest_reads_from_another_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    manifest = demo_data(Path('outputs') / 'demo_data', n_patients=12)    # relative, as `make demo` writes it
    raw = pd.read_csv(tmp_path / manifest)
    assert not raw['path'].map(os.path.isabs).any()                         # portable: relative to the manifest's folder
    elsewhere = tmp_path / 'elsewhere'; elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    df = read_manifest(tmp_path / manifest, check_files=True)
    assert df['path'].map(os.path.isfile).all() and set(df['subdb'].astype(str)) == {'1', '2'}
    assert demo_data(tmp_path / 'outputs' / 'demo_data') == tmp_path / manifest   # reused, not simulated again


def test_demo_exit_status_and_report_line(monkeypatch, capsys):
    ok = {'runs': 10, 'done': 10, 'failed': [], 'report': '/x/outputs/demo/summary.md'}
    monkeypatch.setattr(audiokit.demo, 'run_demo', lambda *a, **k: ok)
    assert main(['demo']) == 0 and 'report: /x/outputs/demo/summary.md' in capsys.readouterr().out
    bad = {**ok, 'done': 9, 'failed': [{'key': 'subdb1/fold3/cnn', 'ename': 'RuntimeError', 'evalue': 'boom'}]}
    monkeypatch.setattr(audiokit.demo, 'run_demo', lambda *a, **k: bad)
    assert main(['demo']) == 1
    out = capsys.readouterr().out
    assert 'FAILED subdb1/fold3/cnn: RuntimeError: boom' in out and 'report: /x/outputs/demo/summary.md' in out
