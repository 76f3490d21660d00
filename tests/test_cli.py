"""The `audiokit` console command, run as a user runs it (a subprocess of the installed entry point)."""
import subprocess, sys, json
from pathlib import Path
import audiokit

def run(*args, cwd=None):
    return subprocess.run([sys.executable, '-m', 'audiokit.cli', *args], capture_output=True, text=True, cwd=cwd)

def test_version():
    r = run('--version')
    assert r.returncode == 0 and r.stdout.strip() == f"audiokit {audiokit.__version__}"

def test_help_lists_subcommands():
    r = run('--help')
    assert r.returncode == 0
    for cmd in ('demo', 'bench'): assert cmd in r.stdout

def test_unknown_benchmark_is_a_clear_error():
    r = run('bench', 'no-such-bench')
    assert r.returncode == 1 and "unknown benchmark(s) ['no-such-bench']" in r.stderr

def test_demo_refuses_to_overwrite(tmp_path):
    out = tmp_path / 'demo'
    r = run('demo', '--out', str(out))
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['clips'] > 0
    r2 = run('demo', '--out', str(out))
    assert r2.returncode == 1 and 'overwrite' in r2.stderr
    assert run('demo', '--out', str(out), '--overwrite').returncode == 0
