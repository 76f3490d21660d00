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

def test_demo_help_names_the_grid():
    r = run('demo', '--help')
    assert r.returncode == 0 and '--workers' in r.stdout and '--overwrite' in r.stdout

def test_subcommand_imports_only_its_module():
    # `audiokit audit` must not import the heavy generation stack (diffusers/transformers)
    code = ("import sys; from audiokit.cli import build_parser; build_parser('audit'); "
            "print('diffusers' in sys.modules, 'audiokit.generate' in sys.modules)")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.split() == ['False', 'False'], r.stdout + r.stderr
