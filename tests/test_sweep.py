"""`audiokit sweep` end to end (papermill runs of the toy experiment notebook): resume after a kill,
a failing run reported alone, two sweeps on one folder, Dask, and every `-p` checked (against the run spec for
`train_eval`) before anything starts. Run as a user runs it: subprocesses."""
import json, os, signal, sqlite3, subprocess, sys, time
from pathlib import Path

import pandas as pd
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / 'nbs' / 'experiments' / 'toy_experiment.ipynb'
TRAIN_EVAL = ROOT / 'nbs' / 'experiments' / 'train_eval.ipynb'
GRID = ['--subdbs', '1', '2', '--folds', '0', '1', '--methods', 'a', 'b']


def cmd(out, *extra, experiment='toy', params=('work=20000', 'plot=false')):
    c = [sys.executable, '-m', 'audiokit.cli', 'sweep', '--notebook', str(TOY), *GRID, '--out', str(out),
         '--experiment', experiment, '--quiet']
    for p in params: c += ['-p', p]
    return c + list(extra)


def run(c, **kw):
    return subprocess.run(c, capture_output=True, text=True, cwd=ROOT, timeout=600, **kw)


def summary(stdout: str) -> dict:
    return json.loads(stdout[stdout.index('{'):stdout.rindex('}') + 1])


def ledger(exp_dir) -> pd.DataFrame:
    con = sqlite3.connect(Path(exp_dir) / 'ledger.sqlite', timeout=30)
    try: return pd.read_sql_query('SELECT * FROM runs ORDER BY key', con)
    finally: con.close()


def wait_for(pred, timeout=300, every=0.2):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if pred(): return True
        except (sqlite3.OperationalError, pd.errors.DatabaseError): pass
        time.sleep(every)
    raise AssertionError('condition not reached in time')


def n_done(exp_dir) -> int:
    p = Path(exp_dir) / 'ledger.sqlite'
    return int((ledger(exp_dir)['status'] == 'done').sum()) if p.exists() else 0


def comparable(exp_dir):
    "The aggregate, without anything that depends on when or where it ran."
    csv = pd.read_csv(Path(exp_dir) / 'aggregate.csv')
    agg = json.loads((Path(exp_dir) / 'aggregate.json').read_text())
    return csv, {k: agg[k] for k in ('metric', 'n_runs', 'summary', 'best', 'failed')}


@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGTERM])
def test_kill_midway_then_resume_runs_only_unfinished(tmp_path, sig):
    params = ('work=400000', 'plot=false')
    ref = run(cmd(tmp_path / 'ref', '--workers', '2', params=params))
    assert ref.returncode == 0, ref.stderr
    assert summary(ref.stdout)['executed'] == 8

    out = tmp_path / 'killed'; exp = out / 'toy'
    p = subprocess.Popen(cmd(out, params=params), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    wait_for(lambda: n_done(exp) >= 2)
    kids = psutil.Process(p.pid).children(recursive=True)
    if sig == signal.SIGKILL: os.killpg(p.pid, signal.SIGKILL)   # the whole job dies at once (kill -9 of a job)
    else: p.send_signal(signal.SIGTERM)                          # only the sweep: it must stop its kernels itself
    p.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert p.returncode == 130
        gone, alive = psutil.wait_procs(kids, timeout=10)
        assert not alive, f"kernels left running after SIGTERM: {alive}"
    led = ledger(exp)
    done_before = set(led.loc[led['status'] == 'done', 'key'])
    assert 2 <= len(done_before) < 8, 'the kill came too late to test resuming'
    mtimes = {k: (exp / k / 'run.ipynb').stat().st_mtime_ns for k in done_before}

    r = run(cmd(out, params=params))
    assert r.returncode == 0, r.stderr
    s = summary(r.stdout)
    assert s['skipped'] == len(done_before) and s['executed'] == 8 - len(done_before) and s['done'] == 8
    led = ledger(exp)
    assert (led['status'] == 'done').all()
    for k in done_before:   # finished runs were not run again
        assert (exp / k / 'run.ipynb').stat().st_mtime_ns == mtimes[k]
        assert int(led.loc[led['key'] == k, 'attempts'].iloc[0]) == 1
    assert not list(exp.rglob('.*.tmp-*')), 'temporary run folders left behind'
    csv_a, agg_a = comparable(tmp_path / 'ref' / 'toy')
    csv_b, agg_b = comparable(exp)
    pd.testing.assert_frame_equal(csv_a, csv_b)
    assert agg_a == agg_b


def test_bad_parameter_fails_alone_with_traceback(tmp_path):
    out = tmp_path / 'o'; exp = out / 'toy'
    r = run(cmd(out, '--workers', '2', params=('work=1000,-5', 'plot=false')))
    assert r.returncode == 2, r.stderr
    s = summary(r.stdout)
    assert s['runs'] == 16 and s['done'] == 8 and len(s['failed']) == 8
    assert all('work=-5' in k for k in s['failed'])
    assert 'FAILED subdb1/fold0/a_work=-5: ValueError' in r.stderr
    assert 'work must be a non-negative integer' in r.stderr and 'raise ValueError' in r.stderr   # the failing cell's traceback
    led = ledger(exp)
    bad = led[led['key'].str.contains('work=-5')]
    assert (bad['status'] == 'failed').all() and (bad['ename'] == 'ValueError').all()
    assert bad['error'].str.contains('work must be a non-negative integer').all()
    assert (led.loc[~led['key'].str.contains('work=-5'), 'status'] == 'done').all()
    assert (exp / 'subdb1/fold0/a_work=-5.failed/run.ipynb').is_file()   # executed notebook kept for inspection
    agg = json.loads((exp / 'aggregate.json').read_text())
    assert agg['n_runs'] == 8 and len(agg['failed']) == 8
    # rerun: done runs are skipped, failed ones are tried again (and fail again)
    r2 = run(cmd(out, params=('work=1000,-5', 'plot=false')))
    s2 = summary(r2.stdout)
    assert r2.returncode == 2 and s2['skipped'] == 8 and s2['executed'] == 8
    assert (ledger(exp).loc[lambda d: d['key'].str.contains('work=-5'), 'attempts'] == 2).all()


def test_two_sweeps_at_once_second_is_refused(tmp_path):
    out = tmp_path / 'o'; exp = out / 'toy'
    first = subprocess.Popen(cmd(out, params=('work=300000', 'plot=false')), cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (exp / 'ledger.sqlite').exists() and (ledger(exp)['status'] == 'running').any())
    second = run(cmd(out, params=('work=300000', 'plot=false')))
    assert second.returncode == 1
    assert 'another sweep is running' in second.stderr and str(exp) in second.stderr
    o, e = first.communicate(timeout=600)
    assert first.returncode == 0, e
    assert summary(o)['done'] == 8 and (ledger(exp)['status'] == 'done').all()
    assert (ledger(exp)['attempts'] == 1).all()
    assert pd.read_csv(exp / 'aggregate.csv').shape[0] == 8


def test_dask_local_cluster(tmp_path):
    out = tmp_path / 'o'
    c = [sys.executable, '-m', 'audiokit.cli', 'sweep', '--notebook', str(TOY), '--subdbs', '1', '--folds', '0', '1',
         '--methods', 'a', '-p', 'work=1000', '-p', 'plot=false', '--out', str(out), '--workers', '2',
         '--scheduler', 'local', '--aggregate', 'none', '--quiet']
    r = run(c)
    assert r.returncode == 0, r.stderr
    s = summary(r.stdout)
    assert s['done'] == 2 and s['report'] is None
    m = json.loads((out / 'toy_experiment/subdb1/fold1/a/metrics.json').read_text())
    assert 0 < m['accuracy'] < 1 and m['n_test'] == 101


def test_user_errors_exit_1(tmp_path):
    r = run([sys.executable, '-m', 'audiokit.cli', 'sweep', '--notebook', str(tmp_path / 'missing.ipynb'), '--out', str(tmp_path)])
    assert r.returncode == 1 and 'experiment notebook not found' in r.stderr
    r = run(cmd(tmp_path, '--folds', 'x'))
    assert r.returncode == 1 and "--folds takes 'all' or integers" in r.stderr
    r = run(cmd(tmp_path, params=('fold=3',)))
    assert r.returncode == 1 and 'set by the sweep itself' in r.stderr


def test_imbalmed_mode_builds_csvs_and_writes_cv_summaries(tmp_path):
    from audiokit.datasets import IMBALMED_COMBINED
    from audiokit.fixtures import make_imbalmed_fixture
    root = tmp_path / 'imbalmed'
    make_imbalmed_fixture(root, patients=30, n_subdbs=2, folds=3)
    out = tmp_path / 'outputs'
    c = [sys.executable, '-m', 'audiokit.cli', 'sweep', '--imbalmed', str(root), '--notebook', str(TOY), '--methods', 'a',
         '-p', 'work=1000', '-p', 'plot=false', '--out', str(out), '--workers', '2', '--quiet']
    r = run(c)
    assert r.returncode == 0, r.stderr
    s = summary(r.stdout)
    assert s['runs'] == 2 and s['done'] == 2 and s['experiment'] == 'audio_imbalmed'
    for k in (1, 2):
        assert (root / IMBALMED_COMBINED / f'audio_imbalmed_subdb{k}_combined.csv').is_file()
        cv = json.loads((out / f'audio_imbalmed/subdb{k}/a_cv_summary.json').read_text())
        assert cv['folds'] == [0, 1, 2]
    led = ledger(out / 'audio_imbalmed')
    assert sorted(led['key']) == ['subdb1/a', 'subdb2/a'] and (led['fold'] == -1).all()
    agg = pd.read_csv(out / 'audio_imbalmed/aggregate.csv')
    assert sorted(agg['fold'].unique()) == [0, 1, 2] and len(agg) == 6   # one row per (subdb, fold) from the CV summaries
    r2 = run(c)   # resume: nothing to do
    assert r2.returncode == 0 and summary(r2.stdout)['skipped'] == 2


def test_unknown_or_bad_p_refused_before_any_run_starts(tmp_path):
    "Papermill only logs a parameter the notebook lacks: two run folders with different names would train identically."
    base = [sys.executable, '-m', 'audiokit.cli', 'sweep', '--notebook', str(TRAIN_EVAL), '--subdbs', '1', '--folds', '0',
            '--out', str(tmp_path / 'o'), '--quiet']
    r = run(base + ['-p', 'train.epoch=1,2'])                    # misspelt run-spec setting
    assert r.returncode == 1, r.stderr
    assert "unknown setting(s) ['epoch']" in r.stderr and "'epochs'" in r.stderr     # names the valid settings
    r = run(base + ['-p', 'epochz=3'])                           # a name in no section
    assert r.returncode == 1 and "unknown setting 'epochz'" in r.stderr and 'train.epochs' in r.stderr
    r = run(base + ['-p', 'train.epochs=many'])                  # a bad value
    assert r.returncode == 1 and 'expected an integer' in r.stderr
    r = run(base + ['-p', 'balance.method=oversampel'])
    assert r.returncode == 1 and "'oversample'" in r.stderr
    r = run(base + ['--methods', 'cnn', 'no_such_model'])         # neither a method nor a model
    assert r.returncode == 1 and "'no_such_model' is neither a method" in r.stderr
    r = run(cmd(tmp_path / 'o', params=('epochs=3',)))            # not a run-spec notebook: its own parameters
    assert r.returncode == 1 and "unknown parameter 'epochs'" in r.stderr and "'work'" in r.stderr
    r = run(cmd(tmp_path / 'o', params=('work=many',)))
    assert r.returncode == 1 and 'is a str' in r.stderr
    assert not (tmp_path / 'o').exists(), 'a refused sweep must not start anything'


def test_p_uses_the_one_override_grammar():
    from audiokit.core import parse_overrides
    from audiokit.sweep import parse_params
    items = ['a=none', 'b=yes', 'c=1e-3', 'd=true', 'e=[1, 2]', 'f=null', 'g=No', 'h=5']
    ours = parse_params(items)
    for it in items:
        k = it.split('=')[0]
        assert ours[k] == [parse_overrides([it])[k]], it
    assert ours['b'] == ['yes'] and ours['a'] == [None] and ours['e'] == [[1, 2]]
    assert parse_params(['train.lr=1e-3,3e-4'])['train.lr'] == [0.001, 0.0003]     # a comma list: alternatives, swept


def test_spec_overrides_reach_the_runs(tmp_path):
    "Two runs that differ in a -p setting are trained differently: the overrides reach run_fold (run.yaml, history)."
    from audiokit.demo import demo_data
    data = demo_data(tmp_path / 'data', n_patients=12)
    c = [sys.executable, '-m', 'audiokit.cli', 'sweep', '--notebook', str(TRAIN_EVAL), '--subdbs', '1', '--folds', '0',
         '--data', str(data), '--out', str(tmp_path / 'o'), '--workers', '2', '--quiet', '--aggregate', 'library',
         '-p', 'train.epochs=1,2', '-p', 'eval.n_boot=10']
    r = run(c)
    assert r.returncode == 0, r.stderr
    exp = tmp_path / 'o' / 'train_eval'
    for e in (1, 2):
        d = exp / f'subdb1/fold0/cnn_train.epochs={e}'
        assert f'epochs: {e}\n' in (d / 'run.yaml').read_text() and 'sample_rate: 4000' in (d / 'run.yaml').read_text()   # notebook spec + override
        assert len(json.loads((d / 'metrics.json').read_text())['history']) == e
        params = json.loads((d / 'params.json').read_text())
        assert params['overrides'] == {'eval': {'n_boot': 10}, 'train': {'epochs': e}} and params['spec']['audio']['sample_rate'] == 4000
    agg = pd.read_csv(exp / 'aggregate.csv')
    assert sorted(agg['variant']) == ['train.epochs=1', 'train.epochs=2'] and agg['icbhi_score'].between(0, 1).all()
